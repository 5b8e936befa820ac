import { describe, expect, it } from '@jest/globals';
import { predict, type CostCoefficients, type ModelShape } from './cost-model.ts';
import { equalWorkBoundaries, searchBalanced } from './partition-search.ts';
import { validateBoundaries } from './partition.ts';

// Shaped like the small preset on 4 CPU threads: attention dominates at long contexts.
const c: CostCoefficients = {
  project: [0.2, 0.01],
  attend: [0.5, 0.03, 4e-6],
  transfer: [0.3, 2e-6],
  fixedMs: 5,
};
const shape: ModelShape = { numLayers: 12, kvBytesPerToken: 2048 };

/** Every split of [0, C) into n chunks of ≥ 1 token. */
function* allSplits(contextLength: number, n: number, prefix: number[] = [0]): Generator<number[]> {
  const last = prefix.at(-1)!;
  if (prefix.length === n) {
    yield [...prefix, contextLength];
    return;
  }
  for (let b = last + 1; b <= contextLength - (n - prefix.length); b++)
    yield* allSplits(contextLength, n, [...prefix, b]);
}

describe('partition search', () => {
  it.each([
    [24, 2],
    [24, 3],
    [30, 4],
    [16, 5],
  ])('finds the brute-force optimum for C=%i, N=%i (KV-Runahead and TSP)', (contextLength, n) => {
    // Scale the attention term so that these tiny contexts have the shape of long ones.
    const tiny: CostCoefficients = { ...c, attend: [0.5, 0.03, 0.05], transfer: [0.01, 1e-4] };
    for (const scheme of ['runahead', 'tsp'] as const) {
      let bestBrute = Infinity;
      for (const split of allSplits(contextLength, n))
        bestBrute = Math.min(bestBrute, predict(tiny, shape, scheme, split).ttftMs);
      const found = searchBalanced(tiny, shape, contextLength, n, { scheme });
      expect(found.predictedMs).toBeCloseTo(bestBrute, 9);
    }
  });

  it('gives earlier ranks longer chunks and beats the even split at long contexts', () => {
    const r = searchBalanced(c, shape, 8192, 4);
    const chunks = r.boundaries.slice(1).map((e, i) => e - r.boundaries[i]!);
    for (let i = 1; i < chunks.length; i++) expect(chunks[i]!).toBeLessThan(chunks[i - 1]!);
    expect(r.predictedMs).toBeLessThan(r.evenPredictedMs * 0.9);
  });

  it('never predicts more ranks to be slower at long contexts', () => {
    let previous = Infinity;
    for (let n = 1; n <= 16; n++) {
      const t = searchBalanced(c, shape, 32768, n).predictedMs;
      expect(t).toBeLessThanOrEqual(previous);
      previous = t;
    }
  });

  it('always returns a valid split, aligned to the granularity', () => {
    for (const [cl, n, g] of [
      [1000, 7, 16],
      [4096, 16, 64],
      [17, 16, 1],
      [100, 3, 33],
    ] as const) {
      const r = searchBalanced(c, shape, cl, n, { granularity: g });
      expect(() => {
        validateBoundaries(r.boundaries, cl, n);
      }).not.toThrow();
      expect(r.boundaries.slice(0, -1).every((b) => b % g === 0)).toBe(true);
      expect(r.boundaries.slice(1).every((b, i) => b - r.boundaries[i]! >= g)).toBe(true);
    }
  });

  it('handles 16 ranks at 32k tokens quickly', () => {
    const r = searchBalanced(c, shape, 32768, 16);
    expect(r.searchMs).toBeLessThan(2000); // measured ~20 ms; generous for CI
    expect(r.evaluations).toBeGreaterThan(10);
  });

  it('starts from chunks of equal own work', () => {
    const b = equalWorkBoundaries(c, 8192, 4);
    const work = b.slice(1).map((e, i) => 0.01 * (e - b[i]!) + 0.03 * (e - b[i]!) + 4e-6 * (e - b[i]!) * e);
    const spread = (Math.max(...work) - Math.min(...work)) / Math.max(...work);
    expect(spread).toBeLessThan(0.01);
  });

  it.each([
    [() => searchBalanced(c, shape, 3, 4), /too short for 4 ranks/],
    [() => searchBalanced(c, shape, 100, 0), /ranks must be a positive integer, got 0/],
    [() => searchBalanced(c, shape, -5, 2), /context length must be a positive integer, got -5/],
    [
      () => searchBalanced({ ...c, attend: [0.5, Number.NaN, 1e-6] }, shape, 100, 2),
      /coefficient attend\[1\] is NaN/,
    ],
    [
      () => searchBalanced({ ...c, transfer: [-1, 0] }, shape, 100, 2),
      /coefficient transfer\[0\] is -1; costs cannot be negative/,
    ],
    [() => searchBalanced(c, shape, 100, 2, { granularity: 0 }), /granularity must be a positive integer/],
  ])('refuses invalid input %#', (call, message) => {
    expect(call).toThrow(message);
  });
});
