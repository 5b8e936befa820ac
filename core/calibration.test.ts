// Calibration recovers known coefficients from runs synthesised with them (timelines whose spans
// follow the model exactly, with multiplicative noise).
import { describe, expect, it } from '@jest/globals';
import { attendMs, predict, projectMs, type CostCoefficients, type ModelShape } from './cost-model.ts';
import { CalibrationError, fitNonNegative, fitProfile, type MeasuredRun } from './calibration.ts';
import { evenBoundaries } from './partition.ts';

const truth: CostCoefficients = {
  project: [0.3, 0.012],
  attend: [0.4, 0.035, 5e-6],
  transfer: [0.2, 3e-6],
  fixedMs: 12,
};
const shape: ModelShape = { numLayers: 12, kvBytesPerToken: 2048 };

function synthRun(
  mode: 'single' | 'runahead' | 'tsp',
  boundaries: number[],
  noise: () => number,
): MeasuredRun {
  const n = boundaries.length - 1;
  const timeline = [];
  for (let rank = 0; rank < n; rank++) {
    const c = boundaries[rank + 1]! - boundaries[rank]!;
    const keys = mode === 'runahead' ? boundaries[rank + 1]! : boundaries[n]!;
    for (let l = 0; l < shape.numLayers; l++) {
      timeline.push({ rank, kind: 'project', start: 0, end: projectMs(truth, c) * noise() });
      timeline.push({ rank, kind: 'attend', start: 0, end: attendMs(truth, c, keys) * noise() });
    }
  }
  return { mode, boundaries, ttftMs: predict(truth, shape, mode, boundaries).ttftMs * noise(), timeline };
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
