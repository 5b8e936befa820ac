import { describe, expect, it } from '@jest/globals';
import { lookupBoundaries, parsePartitionTable, toBoundaries } from './partition-table.ts';

const table = parsePartitionTable({
  version: 1,
  model: 'synthetic:small',
  ranks: 3,
  entries: [
    { contextLength: 1000, boundaries: [0, 400, 750, 1000] },
    { contextLength: 2000, boundaries: [0, 900, 1600, 2000] },
  ],
});

describe('partition lookup table', () => {
  it('returns the stored split for a tabulated length', () => {
    expect(lookupBoundaries(table, 2000)).toEqual([0, 900, 1600, 2000]);
  });

  it('interpolates boundary fractions between neighbours', () => {
    // halfway: fractions (0.4+0.45)/2 = 0.425 and (0.75+0.8)/2 = 0.775 of 1500
    expect(lookupBoundaries(table, 1500)).toEqual([0, 638, 1163, 1500]);
  });

  it('scales the nearest entry outside the table', () => {
    expect(lookupBoundaries(table, 500)).toEqual([0, 200, 375, 500]);
    expect(lookupBoundaries(table, 4000)).toEqual([0, 1800, 3200, 4000]);
  });

  it('keeps every chunk non-empty for tiny contexts', () => {
    expect(lookupBoundaries(table, 3)).toEqual([0, 1, 2, 3]);
    expect(toBoundaries([0, 0.98, 0.99, 1], 10)).toEqual([0, 8, 9, 10]);
  });

  it.each([
    [
      { version: 1, model: 'm', ranks: 2, entries: [{ contextLength: 10, boundaries: [0, 10] }] },
      /entries\.0\.boundaries: a split for 2 ranks needs 3 boundaries/,
    ],
    [
      { version: 1, model: 'm', ranks: 2, entries: [{ contextLength: 10, boundaries: [0, 7, 5] }] },
      /entries\.0\.boundaries: .*last boundary must be the context length 10/,
    ],
    [
      { version: 1, model: 'm', ranks: 2, entries: [] },
      /entries: a partition table needs at least one entry/,
    ],
    [{ version: 2, model: 'm', ranks: 2, entries: [{ contextLength: 4, boundaries: [0, 2, 4] }] }, /version/],
    [
      {
        version: 1,
        model: 'm',
        ranks: 2,
        entries: [
          { contextLength: 8, boundaries: [0, 4, 8] },
          { contextLength: 4, boundaries: [0, 2, 4] },
        ],
      },
      /entries\.1\.contextLength: entries must be sorted/,
    ],
  ])('refuses a malformed table %#', (json, message) => {
    expect(() => parsePartitionTable(json, 'table.json')).toThrow(message);
  });

  it('refuses a context shorter than the ranks', () => {
    expect(() => lookupBoundaries(table, 2)).toThrow(/at least one token per rank/);
  });
});
