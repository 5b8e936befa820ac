import { describe, expect, it } from '@jest/globals';
import {
  CostModelError,
  CostProfileSchema,
  PROFILE_VERSION,
  attendMs,
  checkCoefficients,
  predict,
  projectMs,
  transferMs,
  type CostCoefficients,
  type ModelShape,
  type Scheme,
} from './cost-model.ts';

const c = (over: Partial<CostCoefficients> = {}): CostCoefficients => ({
  project: [1, 0],
  attend: [0, 1, 0],
  transfer: [0, 0],
  fixedMs: 0,
  ...over,
});
const oneLayer: ModelShape = { numLayers: 1, kvBytesPerToken: 100 };

/** Deterministic coefficients for property checks (a small linear congruential generator). */
function* coefficientSets(count: number): Generator<CostCoefficients> {
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let i = 0; i < count; i++) {
    yield {
      project: [next() * 2, next() * 0.01],
      attend: [next() * 2, next() * 0.02, next() * 1e-5],
      transfer: [next() * 3, next() * 1e-6],
      fixedMs: next() * 10,
    };
  }
}

const schemes: Scheme[] = ['single', 'runahead', 'tsp'];
const shape: ModelShape = { numLayers: 4, kvBytesPerToken: 4096 };
const splits = [
  [0, 4096],
  [0, 2048, 4096],
  [0, 1500, 2700, 3500, 4096],
];

describe('per-layer costs', () => {
  it('follow the formulas of the file header', () => {
    const k = c({ project: [2, 0.5], attend: [1, 0.25, 0.01], transfer: [3, 0.001] });
    expect(projectMs(k, 10)).toBe(2 + 5);
    expect(attendMs(k, 10, 100)).toBe(1 + 2.5 + 10);
    expect(transferMs(k, 1000)).toBe(3 + 1);
  });

  it('charge nothing for a transfer of no bytes (rank 0 receives nothing)', () => {
    expect(transferMs(c({ transfer: [3, 1] }), 0)).toBe(0);
  });
});

describe('checkCoefficients', () => {
  it('accepts finite, non-negative coefficients', () => {
    expect(() => {
      checkCoefficients(c());
    }).not.toThrow();
  });

  it.each<[string, CostCoefficients, RegExp]>([
    ['a negative cost', c({ attend: [0, -1, 0] }), /coefficient attend\[1\] is -1; costs cannot be negative/],
    [
      'NaN',
      c({ transfer: [Number.NaN, 0] }),
      /coefficient transfer\[0\] is NaN; every coefficient must be a finite/,
    ],
    ['Infinity', c({ fixedMs: Infinity }), /coefficient fixedMs is Infinity/],
    ['a negative projection', c({ project: [0, -0.5] }), /coefficient project\[1\] is -0.5/],
  ])('refuses %s, naming the coefficient', (_, k, message) => {
    expect(() => {
      checkCoefficients(k);
    }).toThrow(CostModelError);
    expect(() => {
      checkCoefficients(k);
    }).toThrow(message);
  });
});

describe('predict', () => {
  it('one rank: fixed cost plus every layer projecting and attending the whole context', () => {
    const k = c({ project: [1, 0.5], attend: [2, 0.25, 0.01], fixedMs: 7 });
    const p = predict(k, { numLayers: 3, kvBytesPerToken: 10 }, 'single', [0, 20]);
    expect(p.ttftMs).toBeCloseTo(7 + 3 * (1 + 10 + 2 + 5 + 4));
    expect(p.rankWaitMs).toEqual([0]);
    // A "chain" of one rank is the same thing.
    expect(predict(k, { numLayers: 3, kvBytesPerToken: 10 }, 'runahead', [0, 20])).toEqual(p);
  });

  it('KV-Runahead: rank 1 attends once rank 0’s K/V arrived (hand-computed)', () => {
    // project 1 ms, attend 1 ms/token, transfer 5 ms: rank 1 waits 5 ms, then attends 2 tokens.
    const p = predict(c({ transfer: [5, 0] }), oneLayer, 'runahead', [0, 2, 4]);
    expect(p.rankWaitMs).toEqual([0, 5]);
    expect(p.rankFinishMs).toEqual([3, 8]);
    expect(p.ttftMs).toBe(8);
  });

  it('both schemes attend the prefix [0, e_i) only: TSP’s later chunks are masked (hand-computed)', () => {
    const quadratic = c({ attend: [0, 0, 1] }); // 1 ms per query × key
    expect(predict(quadratic, oneLayer, 'runahead', [0, 2, 4]).rankFinishMs).toEqual([1 + 4, 1 + 8]);
    expect(predict(quadratic, oneLayer, 'tsp', [0, 2, 4]).rankFinishMs).toEqual([1 + 4, 1 + 8]);
  });

  it('KV-Runahead: a middle rank’s link carries [0, e_i) every layer and can become the bottleneck (hand-computed)', () => {
    // project 1 ms, no attention cost, 1 ms per token through any link, 2 layers, chunks of 2 tokens.
    // Layer 0: rank 0's link sends [0, 2) by 3; rank 1's forwards them cut-through (1–3) and its own
    // [2, 4) by 5. Layer 1: rank 0 sends [0, 2) 3–5; rank 1's link must carry 4 tokens from 5 on and is
    // done at 9, while rank 1 was ready at 5: the last rank attends at 9, not at 6 as it would if
    // only the own chunk cost link time.
    const k = c({ project: [1, 0], attend: [0, 0, 0], transfer: [0, 0.01] });
    const p = predict(k, { numLayers: 2, kvBytesPerToken: 100 }, 'runahead', [0, 2, 4, 6]);
    expect(p).toEqual({ ttftMs: 9, rankFinishMs: [2, 5, 9], rankWaitMs: [0, 3, 7] });
  });

  it('TSP: a rank’s link sends a layer only after its previous one (hand-computed)', () => {
    // Rank 0 sends 3 tokens (3 ms) a layer, rank 1 one (1 ms). Layer 1's projection of rank 0 ends at
    // 3, but its link is busy with layer 0 until 4: rank 1 gets layer 1 at 7, not 6.
    const k = c({ project: [1, 0], attend: [0, 0, 0], transfer: [0, 0.01] });
    const p = predict(k, { numLayers: 2, kvBytesPerToken: 100 }, 'tsp', [0, 3, 4]);
    expect(p).toEqual({ ttftMs: 7, rankFinishMs: [6, 7], rankWaitMs: [4, 5] });
  });

  it('TSP: every rank waits for the slowest other rank’s all-gather (hand-computed)', () => {
    // Rank 0 sends its 1 token to 2 ranks, rank 1 its 2 tokens, rank 2 its 3: 100 B/token, 0.01 ms/B.
    const p = predict(
      c({ project: [1, 0], attend: [0, 0, 0], transfer: [0, 0.01] }),
      oneLayer,
      'tsp',
      [0, 1, 3, 6],
    );
    // arrive = 1 + [2·1, 2·2, 2·3] tokens × 1 ms = [3, 5, 7]
    expect(p.rankWaitMs).toEqual([7 - 1, 7 - 1, 5 - 1]);
  });

  it('is consistent: TTFT is the fixed cost plus the last rank’s finish, and nothing is negative', () => {
    for (const k of coefficientSets(20))
      for (const scheme of schemes)
        for (const b of splits) {
          const p = predict(k, shape, scheme, b);
          const n = scheme === 'single' ? 1 : b.length - 1;
          expect(p.rankFinishMs).toHaveLength(n);
          expect(p.rankWaitMs).toHaveLength(n);
          expect(p.ttftMs).toBeCloseTo(k.fixedMs + p.rankFinishMs.at(-1)!);
          expect(p.rankWaitMs.every((w) => w >= 0)).toBe(true);
          expect(p.rankFinishMs.every((f) => f > 0)).toBe(true);
          if (scheme === 'runahead') expect(p.rankWaitMs[0]).toBe(0);
        }
  });

  it('is monotonic: a larger coefficient never predicts a lower TTFT', () => {
    const larger = (k: CostCoefficients): [string, CostCoefficients][] => {
      const [p0, p1] = k.project;
      const [a0, a1, a2] = k.attend;
      const [r0, r1] = k.transfer;
      return [
        ['project[0]', { ...k, project: [p0 + 1, p1] }],
        ['project[1]', { ...k, project: [p0, 2 * p1 + 1e-3] }],
        ['attend[0]', { ...k, attend: [a0 + 1, a1, a2] }],
        ['attend[1]', { ...k, attend: [a0, 2 * a1 + 1e-3, a2] }],
        ['attend[2]', { ...k, attend: [a0, a1, 2 * a2 + 1e-6] }],
        ['transfer[0]', { ...k, transfer: [r0 + 1, r1] }],
        ['transfer[1]', { ...k, transfer: [r0, 2 * r1 + 1e-6] }],
        ['fixedMs', { ...k, fixedMs: k.fixedMs + 1 }],
      ];
    };
    for (const k of coefficientSets(10))
      for (const scheme of schemes)
        for (const b of splits) {
          const base = predict(k, shape, scheme, b).ttftMs;
          for (const [name, more] of larger(k)) {
            const ttft = predict(more, shape, scheme, b).ttftMs;
            if (ttft < base - 1e-9)
              throw new Error(`${scheme} ${b.join(',')}: a larger ${name} lowered TTFT`);
          }
        }
  });

  it('is monotonic: a longer context or more layers never predict a lower TTFT', () => {
    for (const k of coefficientSets(10))
      for (const scheme of schemes)
        for (const b of splits) {
          const base = predict(k, shape, scheme, b).ttftMs;
          expect(
            predict(
              k,
              shape,
              scheme,
              b.map((x) => 2 * x),
            ).ttftMs,
          ).toBeGreaterThan(base);
          expect(predict(k, { ...shape, numLayers: shape.numLayers + 1 }, scheme, b).ttftMs).toBeGreaterThan(
            base,
          );
        }
  });

  it('favours KV-Runahead over TSP when sending has no per-message cost (the paper’s setting)', () => {
    for (const k of coefficientSets(20)) {
      const cheap = { ...k, transfer: [0, k.transfer[1]] as [number, number] };
      for (const b of splits.slice(1))
        expect(predict(cheap, shape, 'runahead', b).ttftMs).toBeLessThanOrEqual(
          predict(cheap, shape, 'tsp', b).ttftMs + 1e-9,
        );
    }
  });
});

describe('CostProfileSchema', () => {
  const profile = {
    version: PROFILE_VERSION,
    model: 'synthetic:small',
    hardware: 'cpu',
    ep: 'cpu',
    dtype: 'float32',
    threadsPerRank: 1,
    numLayers: 12,
    kvBytesPerToken: 6144,
    coefficients: c(),
  };

  it('reads a profile it wrote', () => {
    expect(CostProfileSchema.parse(JSON.parse(JSON.stringify(profile)))).toEqual(profile);
  });

  it('refuses another version and impossible shapes', () => {
    expect(CostProfileSchema.safeParse({ ...profile, version: PROFILE_VERSION + 1 }).success).toBe(false);
    expect(CostProfileSchema.safeParse({ ...profile, numLayers: 0 }).success).toBe(false);
    expect(
      CostProfileSchema.safeParse({ ...profile, coefficients: { ...c(), attend: [1, 2] } }).success,
    ).toBe(false);
  });
});
