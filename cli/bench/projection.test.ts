import { describe, expect, it } from '@jest/globals';
import { predict } from '../../core/cost-model.ts';
import { checkCoefficients } from '../../core/cost-model.ts';
import { searchBalanced } from '../../core/partition-search.ts';
import { validateBoundaries } from '../../core/partition.ts';
import { PRESETS } from '../../worker/model/presets.ts';
import { stageLayers, stagePlan } from '../../worker/runtime/stage-plan.ts';
import {
  alignedEven,
  balancedSplit,
  costCoefficients,
  costShape,
  crossover,
  equalWorkSplit,
  fitCompute,
  fitEgressGBps,
  fitMemory,
  graphPlan,
  project,
  projectConfiguration,
  projectRunahead,
  projectShare,
  projectSingle,
  projectTsp,
  rankPeaksMiB,
  refineSplit,
  tensorBytes,
  type ComputeTerms,
  type DataPath,
  type ProjectionSetup,
} from './projection.ts';

const llama7b = PRESETS['llama-7b'];
const llama3 = PRESETS['llama3-8b'];

/** Whole-model TTFT f + λ·C + κ·C², shaped like llama-7b on one H200 (h200-cuda.json's fit). */
const WHOLE = [3.7, 0.0272, 4.74e-7] as const;
const ttftOf = (c: number) => WHOLE[0] + WHOLE[1] * c + WHOLE[2] * c * c;
const MEASURED = [2048, 4096, 8192, 16384, 32768].map((contextLength) => ({
  contextLength,
  ttftMs: ttftOf(contextLength),
}));
const terms: ComputeTerms = fitCompute(MEASURED, llama7b).terms;

const free: DataPath = {
  egressGBps: Infinity,
  ingressGBps: Infinity,
  linkGBps: Infinity,
  linkLatencyMs: 0,
  copies: 'kv-overlapped',
  queueBytes: 64 * 2 ** 20,
};

function setup(path: Partial<DataPath> = {}, more: Partial<ProjectionSetup> = {}): ProjectionSetup {
  return {
    model: llama7b,
    compute: terms,
    path: { ...free, ...path },
    layersPerGraph: 1,
    attention: 'causal',
    ...more,
  };
}

const speedup = (s: ProjectionSetup, b: readonly number[], scheme: 'tsp' | 'runahead' = 'runahead') =>
  projectSingle(s, b.at(-1)!).ttftMs / project(s, scheme, b).ttftMs;

describe('shapes', () => {
  it('K/V of one token of one layer is 2 × kvHeads × headDim × 2 bytes', () => {
    expect(tensorBytes(llama7b).kv).toBe(16384);
    expect(tensorBytes(llama3).kv).toBe(4096);
    expect(tensorBytes(llama7b).hidden).toBe(8192);
  });

  it('the projection share of the linear FLOPs follows the shapes (GQA shrinks k and v)', () => {
    // llama-7b: q|k|v 3·4096² against o 4096² and MLP 3·4096·11008.
    expect(projectShare(llama7b)).toBeCloseTo((3 * 4096) / (3 * 4096 + 4096 + 3 * 11008), 12);
    expect(projectShare(llama3)).toBeLessThan(projectShare(llama7b));
  });
});

describe('graphPlan', () => {
  it.each([
    [1, 0],
    [1, 1],
    [2, 1],
    [5, 2],
    [5, 3],
    [32, 1],
    [32, 8],
    [32, 16],
    [32, 40],
  ])('agrees with the engine stage plan for %i layers, %i per graph', (layers, perGraph) => {
    const ours = graphPlan(layers, perGraph);
    const engine = stagePlan(layers, perGraph);
    expect(ours).toHaveLength(engine.length);
    engine.forEach((range, i) => {
      const { projects, attends } = stageLayers(range);
      expect(ours[i]!.projects).toEqual(projects);
      expect(ours[i]!.attends).toEqual(attends);
      expect(ours[i]!.last).toBe(range.to === 2 * layers);
      expect(ours[i]!.endsAfterProject).toBe((range.to - 1) % 2 === 0);
    });
  });
});

describe('fitCompute', () => {
  it('recovers f, λ, κ from exact data and splits them per layer', () => {
    const fit = fitCompute(MEASURED, llama7b);
    expect(fit.whole[0]).toBeCloseTo(WHOLE[0], 6);
    expect(fit.whole[1] / WHOLE[1]).toBeCloseTo(1, 9);
    expect(fit.whole[2] / WHOLE[2]).toBeCloseTo(1, 9);
    expect(fit.maxRelativeError).toBeLessThan(1e-9);
    const t = fit.terms;
    expect((t.projectMsPerToken + t.attendMsPerToken) * 32).toBeCloseTo(WHOLE[1], 12);
    expect(t.projectMsPerToken / (t.projectMsPerToken + t.attendMsPerToken)).toBeCloseTo(
      projectShare(llama7b),
      12,
    );
  });

  it('one rank alone reproduces the fitted TTFT at any length, extrapolated ones too', () => {
    for (const c of [1000, 8192, 131072]) expect(projectSingle(setup(), c).ttftMs).toBeCloseTo(ttftOf(c), 6);
  });

  it('refuses fewer than three lengths', () => {
    expect(() => fitCompute(MEASURED.slice(0, 2), llama7b)).toThrow(/3 context lengths/);
  });
});

describe('one rank', () => {
  it.each(['single', 'tsp', 'runahead'] as const)('%s on one rank is the single projection', (scheme) => {
    for (const path of [
      free,
      { ...free, egressGBps: 1.3, ingressGBps: 7, linkGBps: 2, copies: 'serial' as const },
    ]) {
      const s = setup(path, { layersPerGraph: 8 });
      for (const c of [8192, 65536])
        expect(project(s, scheme, [0, c]).ttftMs).toBe(projectSingle(s, c).ttftMs);
    }
  });

  it('graphs of g layers on one rank cost only their host crossings, none when copies are free', () => {
    const crossing = setup({ egressGBps: 1, ingressGBps: 10, copies: 'serial' }, { layersPerGraph: 8 });
    const extra = projectRunahead(crossing, [0, 8192]).ttftMs - projectSingle(crossing, 8192).ttftMs;
    // 4 boundaries after a projection: hidden, q, k, v of 8192 tokens (4 × 64 MiB) out at 1 GB/s, in at 10.
    const perBoundary = 4 * 8192 * 8192;
    expect(extra).toBeCloseTo(4 * (perBoundary / 1e6 + perBoundary / 1e7), 6);
    const freeCopies = setup({ copies: 'serial' }, { layersPerGraph: 8 });
    expect(projectRunahead(freeCopies, [0, 8192]).ttftMs).toBeCloseTo(
      projectSingle(freeCopies, 8192).ttftMs,
      9,
    );
  });
});

describe('graph runs', () => {
  it('cost their overhead once per graph after the first, on every rank', () => {
    const s = setup({}, { layersPerGraph: 8, graphOverheadMs: 0.5 });
    const b = [0, 16384, 32768];
    const without = projectRunahead({ ...s, graphOverheadMs: 0 }, b);
    // graphPlan(32, 8): 5 graphs, 4 runs after the first.
    expect(projectRunahead(s, b).ranks[0]!.finishMs - without.ranks[0]!.finishMs).toBeCloseTo(2, 9);
    expect(
      projectRunahead(s, [0, 8192]).ttftMs - projectRunahead({ ...s, graphOverheadMs: 0 }, [0, 8192]).ttftMs,
    ).toBeCloseTo(2, 9);
    // TSP: 64 graphs of one stage.
    const tsp =
      projectTsp(s, b).ranks[1]!.finishMs - projectTsp({ ...s, graphOverheadMs: 0 }, b).ranks[1]!.finishMs;
    expect(tsp).toBeCloseTo(63 * 0.5, 6);
  });
});

describe('against the repo cost model', () => {
  it('with dense attention, per-stage graphs and free transfers it is predict() exactly', () => {
    const s = setup({}, { attention: 'dense' });
    const c = costCoefficients(s);
    checkCoefficients(c);
    expect(c.transfer[1]).toBe(0);
    for (const b of [
      [0, 16384, 32768],
      [0, 20000, 28000, 32768],
      [0, 3000, 9000, 20000, 32768],
    ]) {
      expect(projectRunahead(s, b).ttftMs).toBeCloseTo(predict(c, costShape(s), 'runahead', b).ttftMs, 6);
    }
  });

  it('with an infinitely fast link and free copies, balanced reaches the compute terms alone', () => {
    // The repo's search on the cost model's compute terms (transfers free): the speedup to expect.
    const dense = setup({}, { attention: 'dense' });
    for (const [c, p] of [
      [32768, 4],
      [131072, 8],
    ] as const) {
      const repo = searchBalanced(costCoefficients(dense), costShape(dense), c, p, { granularity: 256 });
      const computeOnly = projectSingle(dense, c).ttftMs / repo.predictedMs;
      const ours = balancedSplit(dense, c, p, 256);
      expect(projectSingle(dense, c).ttftMs / ours.ttftMs).toBeGreaterThanOrEqual(computeOnly * 0.999);
      // The cost model's c·S, fitted on one rank's C·C, counts fewer pairs than a chain rank's
      // kernel computes (c·S − c²/2 causal pairs at 2·a2 each): it promises more than p×.
      expect(computeOnly).toBeGreaterThan(p);
    }
    // Causal attention (what flash kernels do): balanced close to ideal, even well below it.
    const causal = setup();
    const b = balancedSplit(causal, 131072, 8, 256);
    const s8 = projectSingle(causal, 131072).ttftMs / b.ttftMs;
    expect(s8).toBeGreaterThan(7.6);
    expect(s8).toBeLessThanOrEqual(8);
    expect(speedup(causal, alignedEven(131072, 8, 256))).toBeLessThan(5.5);
    const s2 = projectSingle(causal, 32768).ttftMs / balancedSplit(causal, 32768, 2, 256).ttftMs;
    expect(s2).toBeGreaterThan(1.95);
    expect(s2).toBeLessThanOrEqual(2);
  });

  it('even on two ranks with free transfers is single / (3/4 of attention + half the linear work)', () => {
    const s = setup();
    const c = 65536;
    const t = s.compute;
    const last =
      32 * (((t.projectMsPerToken + t.attendMsPerToken) * c) / 2 + t.attendMsPerPair * ((3 / 8) * c * c));
    // Rank 0 starts every layer's projection before rank 1 needs it; rank 1 never waits.
    expect(projectRunahead(s, [0, c / 2, c]).ttftMs).toBeCloseTo(t.fixedMs + last, 6);
  });
});

describe('links and copies', () => {
  it('a slow link makes KV-Runahead lose to one GPU; a faster one never makes it slower', () => {
    const b = alignedEven(8192, 4, 256);
    expect(speedup(setup({ linkGBps: 2 }), b)).toBeLessThan(1);
    let previous = Infinity;
    for (const link of [1, 2, 10, 25, 100, Infinity]) {
      const t = projectRunahead(setup({ linkGBps: link, egressGBps: 10, ingressGBps: 10 }), b).ttftMs;
      expect(t).toBeLessThanOrEqual(previous + 1e-9);
      previous = t;
    }
  });

  it("today's copies (serial, ≈1.3 GB/s out) lose at every length, even on 8 ranks at 128k", () => {
    const today = setup(
      { egressGBps: 1.37, ingressGBps: 7.25, linkGBps: 100, copies: 'serial' },
      { layersPerGraph: 8 },
    );
    for (const c of [8192, 131072]) {
      expect(balancedSplit(today, c, 8, 256).ttftMs).toBeGreaterThan(projectSingle(today, c).ttftMs);
    }
  });

  it('every rank ingests its whole past: at 10 GB/s that bounds llama-7b at L·C·K / I', () => {
    const s = setup({ egressGBps: 10, ingressGBps: 10, linkGBps: 100 });
    const c = 131072;
    const b = balancedSplit(s, c, 8, 256);
    const bound = (32 * b.boundaries[7]! * 16384) / 1e7;
    expect(b.ttftMs).toBeGreaterThan(bound);
    expect(projectSingle(s, c).ttftMs / b.ttftMs).toBeLessThan(2.5);
  });

  it('IO binding (kv-serial) keeps the hidden state on the GPU: a rank alone pays no boundary', () => {
    const s = setup({ egressGBps: 1, ingressGBps: 1, copies: 'kv-serial' }, { layersPerGraph: 4 });
    expect(projectRunahead(s, [0, 8192]).ttftMs).toBeCloseTo(projectSingle(s, 8192).ttftMs, 9);
    // In a chain it still copies its own K/V out (c·K per layer) and its past in (s·K per layer).
    const b = [0, 4096, 8192];
    const ranks = projectRunahead(s, b).ranks;
    expect(ranks[0]!.copyMs).toBeCloseTo((32 * 4096 * 16384) / 1e6, 6);
    expect(ranks[1]!.copyMs).toBeCloseTo((32 * 4096 * 16384) / 1e6, 6);
  });

  it('serial copies cost more than overlapped ones at the same rates', () => {
    const b = alignedEven(32768, 4, 256);
    const rates = { egressGBps: 10, ingressGBps: 10, linkGBps: 25 };
    const serial = projectRunahead(setup({ ...rates, copies: 'serial' }), b).ttftMs;
    const kvSerial = projectRunahead(setup({ ...rates, copies: 'kv-serial' }), b).ttftMs;
    const overlapped = projectRunahead(setup({ ...rates, copies: 'kv-overlapped' }), b).ttftMs;
    expect(serial).toBeGreaterThan(kvSerial * 1.2);
    expect(kvSerial).toBeGreaterThan(overlapped * 1.2);
  });

  it('layer groups delay the chain by a group per hop even when transfers are free', () => {
    const b = equalWorkSplit(setup(), 32768, 4, 256);
    const perLayer = projectRunahead(setup(), b).ttftMs;
    const grouped = projectRunahead(setup({}, { layersPerGraph: 8 }), b).ttftMs;
    // Each of the 3 hops waits for its predecessor's group of 8 layers (≈ 8/32 of a rank's work).
    const rankWork = projectRunahead(setup(), b).ranks[0]!.computeMs;
    expect(grouped - perLayer).toBeGreaterThan(3 * 0.2 * rankWork);
    expect(grouped - perLayer).toBeLessThan(3 * 0.3 * rankWork);
  });

  it('TSP with free transfers waits for every rank each layer: never faster than KV-Runahead', () => {
    const s = setup();
    for (const b of [alignedEven(32768, 4, 256), [0, 20000, 28000, 32768]])
      expect(projectTsp(s, b).ttftMs).toBeGreaterThanOrEqual(projectRunahead(s, b).ttftMs - 1e-9);
  });

  it('TSP moves (p − 1)·C K/V per layer through each port: 2 GB/s loses, 100 GB/s wins at 64k', () => {
    const b = alignedEven(65536, 4, 256);
    expect(speedup(setup({ linkGBps: 2 }), b, 'tsp')).toBeLessThan(1);
    expect(speedup(setup({ linkGBps: 100 }), b, 'tsp')).toBeGreaterThan(1.5);
  });
});

describe('balanced search', () => {
  it('finds the best two-rank split on its grid', () => {
    const s = setup({ egressGBps: 10, ingressGBps: 10, linkGBps: 25 }, { layersPerGraph: 8 });
    const c = 32768;
    let best = Infinity;
    for (let x = 256; x < c; x += 256) best = Math.min(best, projectRunahead(s, [0, x, c]).ttftMs);
    expect(balancedSplit(s, c, 2, 256).ttftMs).toBeCloseTo(best, 6);
  });

  it('returns a valid split on the grid, never worse than even or the cost model split', () => {
    const s = setup(
      { egressGBps: 10, ingressGBps: 10, linkGBps: 10, copies: 'serial' },
      { layersPerGraph: 8 },
    );
    const b = balancedSplit(s, 65536, 4, 256);
    validateBoundaries(b.boundaries, 65536, 4);
    expect(b.boundaries.every((x) => x % 256 === 0)).toBe(true);
    expect(b.ttftMs).toBeLessThanOrEqual(projectRunahead(s, alignedEven(65536, 4, 256)).ttftMs);
    expect(b.ttftMs).toBeLessThanOrEqual(b.costModel.projectedMs);
  });

  it('refineSplit descends a convex cost to its minimum', () => {
    const target = [0, 3000, 7000, 10000];
    const cost = (b: readonly number[]) => b.reduce((s, x, i) => s + (x - target[i]!) ** 2, 0);
    expect(refineSplit(cost, [0, 2500, 5000, 10000], 100).boundaries).toEqual(target);
  });

  it('equal work gives earlier ranks longer chunks', () => {
    const b = equalWorkSplit(setup(), 65536, 4, 256);
    const chunks = b.slice(1).map((x, i) => x - b[i]!);
    for (let i = 1; i < 4; i++) expect(chunks[i]!).toBeLessThan(chunks[i - 1]!);
  });
});

describe('memory', () => {
  // h200-cuda.json, llama-7b: 31991 MiB at 16k, 51449 MiB at 32k; 143771 MiB on the H200.
  const mem = fitMemory(
    [
      { contextLength: 8192, peakGpuMiB: 23799 },
      { contextLength: 16384, peakGpuMiB: 31991 },
      { contextLength: 32768, peakGpuMiB: 51449 },
    ],
    143771,
  );

  it('extrapolates the line through the two longest lengths', () => {
    expect(mem.miBPerToken).toBeCloseTo((51449 - 31991) / 16384, 12);
    expect(mem.baseMiB + mem.miBPerToken * 32768).toBeCloseTo(51449, 6);
  });

  it('llama-7b alone fits at 64k and not at 128k; two ranks fit at 128k', () => {
    const s = setup({}, { layersPerGraph: 8 });
    expect(projectConfiguration(s, mem, 'single', 1, 65536, 256).fits).toBe(true);
    expect(projectConfiguration(s, mem, 'single', 1, 131072, 256).fits).toBe(false);
    expect(projectConfiguration(s, mem, 'even', 2, 131072, 256).fits).toBe(true);
  });

  it('balanced keeps every rank in memory when a split that fits exists', () => {
    // Slow copies push work onto one rank; at 128k that rank would not fit.
    const s = setup(
      { egressGBps: 1.37, ingressGBps: 7.25, linkGBps: 25, copies: 'serial' },
      { layersPerGraph: 8 },
    );
    const free = balancedSplit(s, 131072, 2, 256);
    const kept = balancedSplit(s, 131072, 2, 256, mem);
    expect(Math.max(...rankPeaksMiB(s, mem, 'runahead', free.boundaries))).toBeGreaterThan(mem.capacityMiB);
    expect(Math.max(...rankPeaksMiB(s, mem, 'runahead', kept.boundaries))).toBeLessThanOrEqual(
      mem.capacityMiB,
    );
    expect(kept.ttftMs).toBeGreaterThanOrEqual(free.ttftMs);
  });

  it('a configuration takes the best layers per graph it is offered', () => {
    const s = setup({ egressGBps: 10, ingressGBps: 10, linkGBps: 25, copies: 'kv-overlapped' });
    const points = [1, 8].map((g) => projectConfiguration(s, mem, 'balanced', 4, 32768, 256, [g]));
    const best = projectConfiguration(s, mem, 'balanced', 4, 32768, 256, [8, 1]);
    expect(best.ttftMs).toBe(Math.min(...points.map((p) => p.ttftMs)));
    expect(best.layersPerGraph).toBe(1);
    expect(projectConfiguration(s, mem, 'tsp', 4, 32768, 256, [8]).layersPerGraph).toBe(1);
  });

  it('a chain rank holds its chunk and the past of one graph', () => {
    const s = setup({}, { layersPerGraph: 8 });
    const peaks = rankPeaksMiB(s, mem, 'runahead', [0, 65536, 131072]);
    expect(peaks[1]! - peaks[0]!).toBeCloseTo((8 * 65536 * 16384) / 2 ** 20, 6);
  });
});

describe('crossover', () => {
  it('finds where a rising speedup passes 1, within the granularity', () => {
    const x = crossover((c) => c / 10000, 1024, 131072, 256);
    expect(x.kind).toBe('from');
    if (x.kind === 'from') expect(Math.abs(x.contextLength - 10000)).toBeLessThanOrEqual(256);
  });

  it('says always or never', () => {
    expect(crossover(() => 2, 2048, 131072, 256)).toEqual({ kind: 'always', from: 2048 });
    expect(crossover(() => 0.5, 2048, 131072, 256)).toEqual({ kind: 'never', upTo: 131072 });
  });

  it('asks that the win holds up to the end', () => {
    // Wins only between 4k and 16k: not "from 4k".
    expect(crossover((c) => (c > 4096 && c < 16384 ? 2 : 0.5), 2048, 131072, 256).kind).toBe('never');
  });
});

describe('fitEgressGBps', () => {
  it('recovers the egress rate that made a set of grouped runs', () => {
    const s = setup({ egressGBps: 0.65, ingressGBps: 7.25, copies: 'serial' });
    const runs = [16, 8, 4].map((g) => ({
      layersPerGraph: g,
      ttftMs: projectRunahead({ ...s, layersPerGraph: g }, [0, 8192]).ttftMs,
    }));
    const fit = fitEgressGBps({ ...s, path: { ...s.path, egressGBps: 5 } }, 8192, runs);
    expect(fit.egressGBps).toBeCloseTo(0.65, 4);
    expect(fit.rmsRelativeError).toBeLessThan(1e-6);
  });
});
