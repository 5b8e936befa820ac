// The lookup table of balanced splits (the paper's "KVR-P"): best boundaries precomputed for a set
// of context lengths, interpolated for the lengths in between. Interpolation works on boundary
// fractions b_i / C, which change slowly with C, then scales back to tokens.
import { z } from 'zod';
import { PartitionError, validateBoundaries } from './partition.ts';
import { SPLIT_MODES } from './api/v1alpha1/runahead-job.ts';

export const TABLE_VERSION = 1;

export const PartitionTableSchema = z
  .object({
    version: z.literal(TABLE_VERSION),
    model: z.string(),
    ranks: z.number().int().positive(),
    scheme: z.enum(SPLIT_MODES).default('runahead'),
    granularity: z.number().int().positive().default(1),
    /** Where the costs came from (a profile's hardware and file), for people reading the table. */
    profile: z.string().optional(),
    entries: z
      .array(
        z.object({
          contextLength: z.number().int().positive(),
          /** ranks + 1 increasing token offsets from 0 to contextLength. */
          boundaries: z.array(z.number().int().nonnegative()),
          predictedMs: z.number().optional(),
          evenPredictedMs: z.number().optional(),
        }),
      )
      .min(1, 'a partition table needs at least one entry'),
  })
  .superRefine((t, ctx) => {
    t.entries.forEach((e, i) => {
      try {
        validateBoundaries(e.boundaries, e.contextLength, t.ranks);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['entries', i, 'boundaries'], message: (err as Error).message });
      }
      if (i > 0 && e.contextLength <= t.entries[i - 1]!.contextLength) {
        ctx.addIssue({
          code: 'custom',
          path: ['entries', i, 'contextLength'],
          message: 'entries must be sorted by increasing contextLength',
        });
      }
    });
  });
export type PartitionTable = z.infer<typeof PartitionTableSchema>;

export function parsePartitionTable(json: unknown, source = 'partition table'): PartitionTable {
  const r = PartitionTableSchema.safeParse(json);
  if (!r.success) {
    throw new PartitionError(
      `${source}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  }
  return r.data;
}

/** Boundaries for `contextLength` from the table: exact entry, or fractions interpolated between the neighbours. */
export function lookupBoundaries(table: PartitionTable, contextLength: number): number[] {
  const n = table.ranks;
  const g = table.granularity;
  if (!Number.isInteger(contextLength) || contextLength < n) {
    throw new PartitionError(
      `the context (${contextLength} tokens) must have at least one token per rank (${n} ranks)`,
    );
  }
  const exact = table.entries.find((e) => e.contextLength === contextLength);
  if (exact) return [...exact.boundaries];
  const fractions = (e: PartitionTable['entries'][number]) => e.boundaries.map((b) => b / e.contextLength);
  const above = table.entries.findIndex((e) => e.contextLength > contextLength);
  let f: number[];
  if (above === 0) f = fractions(table.entries[0]!);
  else if (above === -1) f = fractions(table.entries.at(-1)!);
  else {
    const lo = table.entries[above - 1]!;
    const hi = table.entries[above]!;
    const t = (contextLength - lo.contextLength) / (hi.contextLength - lo.contextLength);
    const a = fractions(lo);
    const b = fractions(hi);
    f = a.map((x, i) => x + t * (b[i]! - x));
  }
  return toBoundaries(f, contextLength, g);
}

/** Fractions → token offsets, rounded to the granularity, each chunk kept at least one unit long. */
export function toBoundaries(fractions: readonly number[], contextLength: number, granularity = 1): number[] {
  const n = fractions.length - 1;
  const unit = contextLength >= n * granularity ? granularity : 1;
  const b = fractions.map((x) => Math.round((x * contextLength) / unit) * unit);
  b[0] = 0;
  b[n] = contextLength;
  for (let i = 1; i < n; i++) b[i] = Math.max(b[i]!, b[i - 1]! + unit);
  for (let i = n - 1; i >= 1; i--) b[i] = Math.min(b[i]!, b[i + 1]! - unit);
  validateBoundaries(b, contextLength, n);
  return b;
}
