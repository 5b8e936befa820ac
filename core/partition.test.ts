import { describe, expect, it } from '@jest/globals';
import { chunkLengths, evenBoundaries, parseSplit, validateBoundaries } from './partition.ts';

describe('partitions', () => {
  it('splits evenly, giving the remainder to the earliest ranks', () => {
    expect(evenBoundaries(10, 3)).toEqual([0, 4, 7, 10]);
    expect(evenBoundaries(8, 4)).toEqual([0, 2, 4, 6, 8]);
    expect(chunkLengths(evenBoundaries(10, 3))).toEqual([4, 3, 3]);
    expect(evenBoundaries(5, 1)).toEqual([0, 5]);
  });

  it('accepts valid boundaries', () => {
    expect(() => {
      validateBoundaries([0, 5000, 8200, 10000], 10000, 3);
    }).not.toThrow();
  });

  it.each([
    [[0, 5, 5, 10], 10, 3, /rank 1 would own \[5, 5\)/],
    [[0, 6, 4, 10], 10, 3, /rank 1 would own \[6, 4\)/],
    [[1, 5, 10], 10, 2, /first boundary must be 0/],
    [[0, 5, 9], 10, 2, /last boundary must be the context length 10, got 9/],
    [[0, 10], 10, 2, /needs 3 boundaries, got 2/],
    [[0, 1.5, 10], 10, 2, /increasing integers/],
  ])('refuses %j', (b, c, n, message) => {
    expect(() => {
      validateBoundaries(b, c, n);
    }).toThrow(message);
  });

  it('refuses fewer tokens than ranks and non-positive rank counts', () => {
    expect(() => evenBoundaries(3, 4)).toThrow(/at least one token per rank/);
    expect(() => evenBoundaries(3, 0)).toThrow(/ranks must be a positive integer/);
  });

  it('parses --split', () => {
    expect(parseSplit('0, 5000,8200,10000')).toEqual([0, 5000, 8200, 10000]);
    expect(() => parseSplit('0,a,9')).toThrow(/comma-separated non-negative integers/);
    expect(() => parseSplit('0,,9')).toThrow(/comma-separated/);
  });
});
