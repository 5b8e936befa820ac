// Fitting a cost profile to measured runs (`runahead bench --json-out`). The compute terms come
// from every project/attend span of every rank (relative least squares, so 1 ms and 1 s spans
// count alike); the transfer terms and the fixed overhead are then chosen so that the chain model
// reproduces the measured TTFTs. Pure: the CLI reads and writes the files.
import { predict, type CostCoefficients, type ModelShape, type Scheme } from './cost-model.ts';

export interface MeasuredSpan {
  readonly rank: number;
  readonly kind: string;
  readonly start: number;
  readonly end: number;
}

/** One measured run: its scheme, split, TTFT and every rank's timeline. */
export interface MeasuredRun {
  readonly mode: Scheme;
  readonly boundaries: readonly number[];
  readonly ttftMs: number;
  readonly timeline: readonly MeasuredSpan[];
}

export class CalibrationError extends Error {
  override readonly name = 'CalibrationError';
}

/** Solve the small normal equations A·x = b (Gaussian elimination with partial pivoting). */
function solve(a: number[][], b: number[]): number[] {
  const n = b.length;
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(m[r]![col]!) > Math.abs(m[pivot]![col]!)) pivot = r;
    [m[col], m[pivot]] = [m[pivot]!, m[col]!];
    const p = m[col]![col]!;
    if (Math.abs(p) < 1e-300)
      throw new CalibrationError(
        'the calibration runs do not determine the model (too few distinct chunk sizes)',
      );
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = m[r]![col]! / p;
      for (let k = col; k <= n; k++) m[r]![k]! -= f * m[col]![k]!;
    }
  }
  return m.map((row, i) => row[n]! / row[i]!);
}

/**
 * Non-negative relative least squares: minimise Σ ((x·f(s) − y) / y)². Terms that come out
 * negative are dropped (fixed at 0) and the rest refitted, so costs never go below zero.
 */
export function fitNonNegative(
  features: readonly (readonly number[])[],
  targets: readonly number[],
): number[] {
  const k = features[0]?.length ?? 0;
  const active = new Set([...Array(k).keys()]);
  for (;;) {
    const idx = [...active];
    const ata = idx.map(() => idx.map(() => 0));
    const atb = idx.map(() => 0);
    features.forEach((f, s) => {
      const w = 1 / targets[s]! ** 2;
      idx.forEach((i, r) => {
        atb[r]! += w * f[i]! * targets[s]!;
        idx.forEach((j, c) => (ata[r]![c]! += w * f[i]! * f[j]!));
      });
    });
    const x = solve(ata, atb);
    const negative = idx.filter((_, r) => x[r]! < 0);
    if (negative.length === 0) {
      const out = new Array<number>(k).fill(0);
      idx.forEach((i, r) => (out[i] = x[r]!));
      return out;
    }
    for (const i of negative) active.delete(i);
    if (active.size === 0) return new Array<number>(k).fill(0);
  }
}

interface Samples {
  readonly project: { tokens: number; ms: number }[];
  readonly attend: { tokens: number; keys: number; ms: number }[];
}

export function spanSamples(runs: readonly MeasuredRun[]): Samples {
  const samples: Samples = { project: [], attend: [] };
  for (const run of runs) {
    const b = run.boundaries;
    const context = b.at(-1)!;
    for (const s of run.timeline) {
      const tokens = b[s.rank + 1]! - b[s.rank]!;
      const ms = s.end - s.start;
      if (ms <= 0) continue;
      if (s.kind === 'project') samples.project.push({ tokens, ms });
      if (s.kind === 'attend')
        samples.attend.push({ tokens, keys: run.mode === 'runahead' ? b[s.rank + 1]! : context, ms });
    }
  }
  return samples;
}

export interface FitResult {
  readonly coefficients: CostCoefficients;
  readonly spans: number;
  readonly rmsRelativeError: number;
  /** Per run: measured and predicted TTFT. */
  readonly residuals: readonly {
    mode: Scheme;
    boundaries: readonly number[];
    measuredMs: number;
    predictedMs: number;
  }[];
}

const TRANSFER_LATENCY_MS = [0, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5];
/** ms per byte from 10 GB/s down to 1 MB/s, geometric. */
const TRANSFER_MS_PER_BYTE = Array.from({ length: 41 }, (_, i) => 1e-7 * 10 ** (i / 10));

export function fitProfile(runs: readonly MeasuredRun[], shape: ModelShape): FitResult {
  if (runs.length === 0) throw new CalibrationError('no runs to calibrate from');
  const { project, attend } = spanSamples(runs);
  const sizes = new Set(attend.map((s) => `${s.tokens}/${s.keys}`));
  if (project.length < 2 || sizes.size < 3) {
    throw new CalibrationError(
      `the runs hold too few distinct chunks (${sizes.size}) to fit attention costs: bench more context lengths or rank counts`,
    );
  }
  const p = fitNonNegative(
    project.map((s) => [1, s.tokens]),
    project.map((s) => s.ms),
  );
  const a = fitNonNegative(
    attend.map((s) => [1, s.tokens, s.tokens * s.keys]),
    attend.map((s) => s.ms),
  );
  let best: { c: CostCoefficients; err: number } | null = null;
  for (const r0 of TRANSFER_LATENCY_MS) {
    for (const r1 of TRANSFER_MS_PER_BYTE) {
      const base: CostCoefficients = {
        project: [p[0]!, p[1]!],
        attend: [a[0]!, a[1]!, a[2]!],
        transfer: [r0, r1],
        fixedMs: 0,
      };
      const core = runs.map((r) => predict(base, shape, r.mode, r.boundaries).ttftMs);
      const gaps = runs.map((r, i) => r.ttftMs - core[i]!).sort((x, y) => x - y);
      const fixedMs = Math.max(0, gaps[Math.floor(gaps.length / 2)]!);
      const err = runs.reduce((e, r, i) => e + ((core[i]! + fixedMs - r.ttftMs) / r.ttftMs) ** 2, 0);
      if (!best || err < best.err) best = { c: { ...base, fixedMs }, err };
    }
  }
  const coefficients = best!.c;
  const residuals = runs.map((r) => ({
    mode: r.mode,
    boundaries: r.boundaries,
    measuredMs: r.ttftMs,
    predictedMs: predict(coefficients, shape, r.mode, r.boundaries).ttftMs,
  }));
  return {
    coefficients,
    spans: project.length + attend.length,
    rmsRelativeError: Math.sqrt(best!.err / runs.length),
    residuals,
  };
}
