// The one place a partition choice becomes a split, and its conversions at each edge.
import { describe, expect, test } from '@jest/globals';
import {
  partitionFlags,
  partitionFromFlags,
  partitionFromRequest,
  partitionFromSpec,
  partitionProblem,
  partitionToRequest,
  resolvePartition,
  type PartitionChoice,
} from './partition-choice.ts';
import { PartitionError } from './partition.ts';
import type { PartitionTable } from './partition-table.ts';

const table = (ranks: number): PartitionTable => ({
  version: 1,
  model: 'synthetic:tiny',
  ranks,
  scheme: 'runahead',
  granularity: 1,
  entries: [{ contextLength: 100, boundaries: ranks === 2 ? [0, 60, 100] : [0, 40, 75, 100] }],
});

describe('partition choice', () => {
  test('each kind resolves to its split', () => {
    expect(resolvePartition({ kind: 'even' }, 11, 2, null)).toEqual({
      boundaries: [0, 6, 11],
      partition: 'even',
    });
    expect(resolvePartition({ kind: 'explicit', boundaries: [0, 3, 11] }, 11, 2, null)).toEqual({
      boundaries: [0, 3, 11],
      partition: 'explicit',
    });
    expect(resolvePartition({ kind: 'balanced' }, 100, 2, table(2))).toEqual({
      boundaries: [0, 60, 100],
      partition: 'balanced',
    });
    // One rank needs no table: the split is the whole prompt.
    expect(resolvePartition({ kind: 'balanced' }, 100, 1, null).boundaries).toEqual([0, 100]);
  });

  test('what cannot run is a configuration error, wherever it is found', () => {
    const cases: [PartitionChoice, number, number, PartitionTable | null, string][] = [
      [{ kind: 'balanced' }, 100, 2, null, 'needs a partition table'],
      [{ kind: 'balanced' }, 100, 3, table(2), 'the partition table is for 2 ranks; this run has 3'],
      [
        { kind: 'explicit', boundaries: [0, 50, 90] },
        100,
        2,
        null,
        'the last boundary must be the context length',
      ],
      [{ kind: 'even' }, 3, 8, null, 'at least one token per rank'],
    ];
    for (const [choice, tokens, ranks, t, message] of cases) {
      expect(() => resolvePartition(choice, tokens, ranks, t)).toThrow(PartitionError);
      expect(() => resolvePartition(choice, tokens, ranks, t)).toThrow(message);
      expect(partitionProblem(choice, ranks, t, tokens)).toContain(message);
    }
    // Before the prompt's length is known: what the rank count alone decides.
    expect(partitionProblem({ kind: 'balanced' }, 3, table(2))).toContain('for 2 ranks');
    expect(partitionProblem({ kind: 'explicit', boundaries: [0, 5] }, 2, null)).toContain(
      'needs 3 boundaries',
    );
    expect(partitionProblem({ kind: 'even' }, 4, null)).toBeNull();
  });

  test('flags, the job spec and the rank protocol carry the same choice', () => {
    const choices: PartitionChoice[] = [
      { kind: 'even' },
      { kind: 'balanced' },
      { kind: 'explicit', boundaries: [0, 7, 10] },
    ];
    for (const c of choices) {
      const flags = partitionFlags(c);
      const value = (f: string) => (flags[0] === f ? flags[1] : undefined);
      expect(partitionFromFlags(value('--partition'), value('--split'))).toEqual(c);
      expect(partitionFromRequest(partitionToRequest(c))).toEqual(c);
    }
    expect(partitionFromSpec({ strategy: 'explicit', boundaries: [0, 7, 10] })).toEqual(choices[2]);
    expect(partitionFromSpec({ strategy: 'balanced' })).toEqual({ kind: 'balanced' });
    expect(partitionFromRequest({ boundaries: [], partition: '' })).toEqual({ kind: 'even' });
    expect(() => partitionFromRequest({ boundaries: [], partition: 'greedy' })).toThrow(PartitionError);
    expect(() => partitionFromFlags('greedy', undefined)).toThrow('--partition must be even or balanced');
    expect(() => partitionFromFlags('even', '0,x,9')).toThrow('--split must be comma-separated');
  });
});
