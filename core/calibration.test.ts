// Calibration recovers known coefficients from runs synthesised with them (timelines whose spans
// follow the model exactly, with multiplicative noise).
import { describe, expect, it } from '@jest/globals';
import { attendMs, predict, projectMs, type CostCoefficients, type ModelShape } from './cost-model.ts';
import {
  CalibrationError,
  fitLinkMsPerByte,
  fitNonNegative,
  fitProfile,
  msPerByteOf,
  stageSamples,
  transferSamples,
  type MeasuredRun,
  type MeasuredSpan,
} from './calibration.ts';
import { evenBoundaries } from './partition.ts';

const truth: CostCoefficients = {
  project: [0.3, 0.012],
  attend: [0.4, 0.035, 5e-6],
  transfer: [0.2, 3e-6],
  fixedMs: 12,
};
const shape: ModelShape = { numLayers: 12, kvBytesPerToken: 2048 };

/**
 * A run whose spans follow `truth`; with `sendMsPerByte`, each sending rank's links are busy that
 * long per byte of every layer (a send span per layer, one after the other).
 */
function synthRun(
  mode: 'single' | 'runahead' | 'tsp',
  boundaries: number[],
  noise: () => number,
  sendMsPerByte: number | null = null,
  k: CostCoefficients = truth,
): MeasuredRun {
  const n = boundaries.length - 1;
  const timeline: MeasuredSpan[] = [];
  for (let rank = 0; rank < n; rank++) {
    const c = boundaries[rank + 1]! - boundaries[rank]!;
    const keys = mode === 'single' ? boundaries[n]! : boundaries[rank + 1]!;
    const sent =
      mode === 'runahead' ? (rank < n - 1 ? boundaries[rank + 1]! : 0) : mode === 'tsp' ? (n - 1) * c : 0;
    let t = 0;
    for (let l = 0; l < shape.numLayers; l++) {
      timeline.push({ rank, kind: 'project', start: 0, end: projectMs(k, c) * noise() });
      timeline.push({ rank, kind: 'attend', start: 0, end: attendMs(k, c, keys) * noise() });
      if (sendMsPerByte !== null && sent > 0) {
        const ms = sendMsPerByte * sent * shape.kvBytesPerToken * noise();
        timeline.push({ rank, kind: 'send', layer: l, start: t, end: t + ms });
        t += ms + 5;
      }
    }
  }
  return { mode, boundaries, ttftMs: predict(k, shape, mode, boundaries).ttftMs * noise(), timeline };
}

/** Every mode at 1k–8k tokens on 2 and 4 ranks. */
function synthRuns(noise: () => number, sendMsPerByte: number | null, k: CostCoefficients = truth) {
  const runs: MeasuredRun[] = [];
  for (const c of [1024, 2048, 4096, 8192]) {
    runs.push(synthRun('single', [0, c], noise, sendMsPerByte, k));
    for (const n of [2, 4]) {
      runs.push(synthRun('runahead', evenBoundaries(c, n), noise, sendMsPerByte, k));
      runs.push(synthRun('tsp', evenBoundaries(c, n), noise, sendMsPerByte, k));
    }
  }
  return runs;
}

function noisy(amplitude: number, seed = 7): () => number {
  let s = seed;
  return () => 1 + amplitude * (((s = (s * 16807) % 2147483647) / 2147483647) * 2 - 1);
}

describe('calibration', () => {
  it('recovers the coefficients that generated the runs, and predicts TTFT within a few percent', () => {
    let seed = 7;
    const noise = () => 1 + 0.03 * (((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1);
    const runs: MeasuredRun[] = [];
    for (const c of [1024, 2048, 4096, 8192]) {
      runs.push(synthRun('single', [0, c], noise));
      for (const n of [2, 4]) {
        runs.push(synthRun('runahead', evenBoundaries(c, n), noise));
        runs.push(synthRun('tsp', evenBoundaries(c, n), noise));
      }
    }
    const fit = fitProfile(runs, shape);
    const k = fit.coefficients;
    expect(k.project[1]).toBeCloseTo(truth.project[1], 3);
    expect(k.attend[1] / truth.attend[1]).toBeGreaterThan(0.9);
    expect(k.attend[1] / truth.attend[1]).toBeLessThan(1.1);
    expect(k.attend[2] / truth.attend[2]).toBeGreaterThan(0.95);
    expect(k.attend[2] / truth.attend[2]).toBeLessThan(1.05);
    expect(fit.rmsRelativeError).toBeLessThan(0.05);
    for (const r of fit.residuals)
      expect(Math.abs(r.predictedMs - r.measuredMs) / r.measuredMs).toBeLessThan(0.1);
  });

  it('keeps coefficients non-negative', () => {
    // y = 2x exactly: an intercept would come out negative with noise; it is dropped instead.
    const x = fitNonNegative(
      [
        [1, 1],
        [1, 2],
        [1, 3],
      ],
      [1.9, 4.0, 6.1],
    );
    expect(x.every((v) => v >= 0)).toBe(true);
    expect(x[1]).toBeCloseTo(2, 1);
  });

  it('refuses runs that cannot determine the model', () => {
    expect(() => fitProfile([], shape)).toThrow(CalibrationError);
    const one = synthRun('single', [0, 1024], () => 1);
    expect(() => fitProfile([one], shape)).toThrow(/too few distinct chunks/);
  });
});

describe('the transfer term, from the runs’ own sends', () => {
  it('counts each instant of a rank’s links for the lowest layer being sent, with the bytes each mode sends', () => {
    const kv = 10;
    const run = (mode: 'runahead' | 'tsp', timeline: MeasuredSpan[]): MeasuredRun => ({
      mode,
      boundaries: [0, 100, 200, 300],
      ttftMs: 1,
      timeline,
    });
    // Rank 1's layer 1 started while layer 0 still went out: 5–10 counts for layer 0 only.
    const ra = run('runahead', [
      { rank: 1, kind: 'send', layer: 0, start: 0, end: 10 },
      { rank: 1, kind: 'send', layer: 1, start: 5, end: 30 },
      { rank: 1, kind: 'attend', layer: 0, start: 0, end: 99 },
      { rank: 0, kind: 'send', layer: 0, start: 2, end: 4 },
    ]);
    expect(transferSamples([ra], kv)).toEqual([
      { rank: 0, layer: 0, bytes: 100 * kv, ms: 2 },
      { rank: 1, layer: 0, bytes: 200 * kv, ms: 10 },
      { rank: 1, layer: 1, bytes: 200 * kv, ms: 20 },
    ]);
    // TSP: rank 2 sends its 100 tokens to 2 ranks over two links at once: their union, 200 tokens.
    const tsp = run('tsp', [
      { rank: 2, kind: 'send', layer: 0, start: 0, end: 8 },
      { rank: 2, kind: 'send', layer: 0, start: 1, end: 12 },
    ]);
    expect(transferSamples([tsp], kv)).toEqual([{ rank: 2, layer: 0, bytes: 2 * 100 * kv, ms: 12 }]);
    expect(transferSamples([{ ...tsp, mode: 'single' }], kv)).toEqual([]);
  });

  it('fits the rate of a busy link: its busy time over its bytes', () => {
    const samples = [1000, 4000, 16000].map((bytes, i) => ({ rank: 0, layer: i, bytes, ms: bytes * 0.002 }));
    expect(fitLinkMsPerByte(samples)).toBeCloseTo(0.002, 9);
    // A fast layer (1 ms) and a slow one (9 ms) of 1000 bytes each: 10 ms for 2000 bytes.
    const mixed = [1, 9].map((ms, layer) => ({ rank: 1, layer, bytes: 1000, ms }));
    expect(fitLinkMsPerByte(mixed)).toBeCloseTo(0.005, 9);
    expect(fitLinkMsPerByte([])).toBeNull();
    expect(msPerByteOf(2)).toBe(5e-7);
  });

  it('takes the link’s rate from sends measured while the ranks computed, within 3%', () => {
    // The cost of sending while computing: 25 MB/s (4e-5 ms/B), measured per layer with ±3% noise.
    const loaded = 4e-5;
    const k = { ...truth, transfer: [0.2, loaded] as [number, number] };
    const fit = fitProfile(synthRuns(noisy(0.03), loaded, k), shape);
    expect(fit.transfer.source).toBe('sends');
    expect(fit.transfer.samples).toBe(4 * (12 * (1 + 3) + 12 * (2 + 4)));
    expect(fit.coefficients.transfer[1] / loaded).toBeGreaterThan(0.97);
    expect(fit.coefficients.transfer[1] / loaded).toBeLessThan(1.03);
    expect(fit.transfer.loadedGBps).toBeCloseTo(0.025, 3);
    for (const r of fit.residuals)
      expect(Math.abs(r.predictedMs - r.measuredMs) / r.measuredMs).toBeLessThan(0.1);
  });

  it('uses a link benchmark’s rate as a floor under the loaded one, and alone when the runs have no sends', () => {
    const loaded = 4e-5; // 0.025 GB/s
    const runs = synthRuns(noisy(0.01), loaded);
    // An idle link at 1 GB/s is faster than the loaded one: the loaded rate stands.
    const fast = fitProfile(runs, shape, { linkGBps: 1 });
    expect(fast.transfer).toMatchObject({ source: 'sends', linkGBps: 1 });
    expect(fast.coefficients.transfer[1] / loaded).toBeCloseTo(1, 1);
    // A benchmark slower than what the runs measured: no link is faster busy than idle.
    const slow = fitProfile(runs, shape, { linkGBps: 0.01 });
    expect(slow.coefficients.transfer[1]).toBeCloseTo(msPerByteOf(0.01), 12);
    // No sends in the runs: the benchmark's rate is the link's.
    const silent = synthRuns(noisy(0.01), null);
    const seeded = fitProfile(silent, shape, { linkGBps: 2 });
    expect(seeded.transfer).toEqual({ source: 'link', samples: 0, linkGBps: 2 });
    expect(seeded.coefficients.transfer[1]).toBe(5e-7);
    expect(fitProfile(silent, shape).transfer).toEqual({ source: 'ttft', samples: 0 });
  });
});

describe('fused graphs (a GPU engine runs several layers per graph)', () => {
  /**
   * A run as the GPU engine records it: one graph of the whole model for a rank alone; in a chain,
   * layer 0's projection alone, then graphs of `perGraph` layers cut after a projection (attention
   * l … projection l+perGraph), so a span holds both terms.
   */
  function fusedRun(
    mode: 'single' | 'runahead',
    boundaries: number[],
    perGraph: number,
    noise: () => number,
  ) {
    const n = boundaries.length - 1;
    const timeline: MeasuredSpan[] = [];
    for (let rank = 0; rank < n; rank++) {
      const c = boundaries[rank + 1]! - boundaries[rank]!;
      const keys = mode === 'single' ? boundaries[n]! : boundaries[rank + 1]!;
      let t = 0;
      const span = (kind: string, layer: number, projects: number, attends: number) => {
        const ms = (projects * projectMs(truth, c) + attends * attendMs(truth, c, keys)) * noise();
        timeline.push({ rank, kind, layer, start: t, end: t + ms });
        t += ms + 1;
      };
      if (mode === 'single') span('layers', 0, shape.numLayers, shape.numLayers);
      else {
        span('project', 0, 1, 0);
        for (let l = 0; l < shape.numLayers; l += perGraph) {
          const last = l + perGraph >= shape.numLayers;
          span(
            'layers',
            l,
            last ? shape.numLayers - l - 1 : perGraph,
            Math.min(perGraph, shape.numLayers - l),
          );
        }
      }
    }
    return { mode, boundaries, ttftMs: predict(truth, shape, mode, boundaries).ttftMs * noise(), timeline };
  }

  it('counts the projections and attentions in each graph', () => {
    const run = fusedRun('runahead', [0, 512, 1024], 4, () => 1);
    const rank0 = stageSamples([run], shape.numLayers).filter((s) => s.tokens === 512 && s.keys === 512);
    expect(rank0.map((s) => [s.projects, s.attends])).toEqual([
      [1, 0],
      [4, 4],
      [4, 4],
      [3, 4],
    ]);
    const single = stageSamples([fusedRun('single', [0, 1024], 4, () => 1)], shape.numLayers);
    expect(single.map((s) => [s.tokens, s.keys, s.projects, s.attends])).toEqual([[1024, 1024, 12, 12]]);
  });

  it('recovers the coefficients from fused spans alone', () => {
    const runs: MeasuredRun[] = [];
    for (const c of [1024, 2048, 4096, 8192]) {
      runs.push(fusedRun('single', [0, c], 4, noisy(0.02)));
      runs.push(fusedRun('runahead', evenBoundaries(c, 2), 4, noisy(0.02)));
    }
    const k = fitProfile(runs, shape).coefficients;
    expect(k.project[1] / truth.project[1]).toBeGreaterThan(0.8);
    expect(k.project[1] / truth.project[1]).toBeLessThan(1.2);
    expect(k.attend[1] / truth.attend[1]).toBeGreaterThan(0.9);
    expect(k.attend[1] / truth.attend[1]).toBeLessThan(1.1);
    expect(k.attend[2] / truth.attend[2]).toBeGreaterThan(0.9);
    expect(k.attend[2] / truth.attend[2]).toBeLessThan(1.1);
  });
});
