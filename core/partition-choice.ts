// How a run's context is split among its ranks, as one discriminated union, and the one function
// that turns it into boundaries (resolvePartition). The job's spec.partition, the CLI's
// --partition/--split flags and the rank protocol's RunRequest fields are each converted to a
// PartitionChoice at their edge; every check — a table for the wrong rank count, a missing table, a
// split that does not fit the prompt — happens here, and always fails as a configuration error
// (PartitionError): running the same job again cannot fix it.
import { z } from 'zod';
import { evenBoundaries, parseSplit, PartitionError, validateBoundaries } from './partition.ts';
import { lookupBoundaries, type PartitionTable } from './partition-table.ts';

export const PartitionChoiceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('even') }),
  z.object({ kind: z.literal('balanced') }),
  z.object({ kind: z.literal('explicit'), boundaries: z.array(z.int().min(0)).min(2) }),
]);
export type PartitionChoice = z.infer<typeof PartitionChoiceSchema>;
export type PartitionKind = PartitionChoice['kind'];

export const EVEN: PartitionChoice = { kind: 'even' };

/** The flags that give `choice` to `runahead worker` (and run, bench). */
export function partitionFlags(choice: PartitionChoice): string[] {
  return choice.kind === 'explicit' ? ['--split', choice.boundaries.join(',')] : ['--partition', choice.kind];
}

/** --partition even|balanced and --split b0,…,bN (a split overrides --partition). */
export function partitionFromFlags(
  partition: string | undefined,
  split: string | undefined,
): PartitionChoice {
  if (split !== undefined) return { kind: 'explicit', boundaries: parseSplit(split) };
  if (partition === undefined || partition === 'even') return EVEN;
  if (partition === 'balanced') return { kind: 'balanced' };
  throw new PartitionError(`--partition must be even or balanced, got "${partition}"`);
}

/** A RunaheadJob's spec.partition (strategy, boundaries). */
export function partitionFromSpec(p: {
  readonly strategy: 'even' | 'balanced' | 'explicit';
  readonly boundaries?: readonly number[] | undefined;
}): PartitionChoice {
  if (p.strategy === 'explicit') return { kind: 'explicit', boundaries: [...(p.boundaries ?? [])] };
  return { kind: p.strategy };
}

/** The rank protocol's RunRequest carries a choice as (boundaries, partition name). */
export function partitionToRequest(choice: PartitionChoice): { boundaries: number[]; partition: string } {
  return choice.kind === 'explicit'
    ? { boundaries: [...choice.boundaries], partition: 'explicit' }
    : { boundaries: [], partition: choice.kind };
}

export function partitionFromRequest(request: {
  readonly boundaries: readonly number[];
  readonly partition: string;
}): PartitionChoice {
  if (request.boundaries.length > 0) return { kind: 'explicit', boundaries: [...request.boundaries] };
  if (request.partition === '' || request.partition === 'even') return EVEN;
  if (request.partition === 'balanced') return { kind: 'balanced' };
  throw new PartitionError(
    `partition must be "even", "balanced" or explicit boundaries, got "${request.partition}"`,
  );
}

/**
 * Why `choice` cannot run on `ranks` ranks with `table`, or null — what can be known before the
 * prompt's length is (a CLI's or a worker's start-up check). `contextLength` adds the checks that
 * need it when it is known (a synthetic prompt).
 */
export function partitionProblem(
  choice: PartitionChoice,
  ranks: number,
  table: PartitionTable | null,
  contextLength?: number,
): string | null {
  try {
    if (contextLength !== undefined) resolvePartition(choice, contextLength, ranks, table);
    else if (choice.kind === 'balanced') balancedTable(ranks, table);
    // Without the prompt's length, the split is checked as a split of its own last boundary.
    else if (choice.kind === 'explicit')
      validateBoundaries(choice.boundaries, choice.boundaries.at(-1) ?? 0, ranks);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function balancedTable(ranks: number, table: PartitionTable | null): PartitionTable | null {
  if (ranks === 1) return null;
  if (!table)
    throw new PartitionError(
      'partition "balanced" needs a partition table: give rank 0 --partition-table <table.json> (runahead tune makes one)',
    );
  if (table.ranks !== ranks)
    throw new PartitionError(`the partition table is for ${table.ranks} ranks; this run has ${ranks}`);
  return table;
}

/** The boundaries of a run: the one place a choice becomes a split. */
export function resolvePartition(
  choice: PartitionChoice,
  contextLength: number,
  ranks: number,
  table: PartitionTable | null,
): { boundaries: number[]; partition: PartitionKind } {
  switch (choice.kind) {
    case 'explicit':
      validateBoundaries(choice.boundaries, contextLength, ranks);
      return { boundaries: [...choice.boundaries], partition: 'explicit' };
    case 'balanced': {
      const t = balancedTable(ranks, table);
      if (t) return { boundaries: lookupBoundaries(t, contextLength), partition: 'balanced' };
      return { boundaries: evenBoundaries(contextLength, ranks), partition: 'even' };
    }
    case 'even':
      return { boundaries: evenBoundaries(contextLength, ranks), partition: 'even' };
  }
}
