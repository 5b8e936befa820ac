// Fitting a cost profile to measured runs (`runahead bench --json-out`). The compute terms come
// from every compute span of every rank — one projection, one attention, or a fused graph of
// several layers as a GPU runs them (stageSamples) — in one relative least-squares fit, so 1 ms and
// 1 s spans count alike. The link's rate (transfer[1], ms per byte) comes from the runs' own sends, measured
// while the senders computed: per rank and layer, the time its links were busy with that layer
// against the bytes of it (transferSamples). An idle link is faster than that — the sender's cores
// are busy computing, and a middle rank also receives what it forwards — so a link benchmark's rate
// (`runahead bench link --json`, grpcGBps) is only the floor. Without sends in the runs, the link
// benchmark's rate is used; without either, the rate is searched so that the chain model reproduces
// the measured TTFTs. The latency (transfer[0]) and the fixed overhead are then chosen so that it
// does. Pure: the CLI reads and writes the files.
import { predict, type CostCoefficients, type ModelShape, type Scheme } from './cost-model.ts';
import { COMPUTE_KINDS, SEND_KIND } from './span-kinds.ts';

export interface MeasuredSpan {
  readonly rank: number;
  readonly kind: string;
  /** The layer the span belongs to (send spans: the layer whose K/V were sent). */
  readonly layer?: number;
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

/** One layer's K/V leaving one rank while it computed: their bytes and the time its links took. */
export interface TransferSample {
  readonly rank: number;
  readonly layer: number;
  readonly bytes: number;
  readonly ms: number;
}

/** Bytes of one layer a rank sends: [0, e_i) to its successor (KV-Runahead), its chunk to every other rank (TSP). */
function layerBytesSent(run: MeasuredRun, rank: number, kvBytesPerToken: number): number {
  const b = run.boundaries;
  const n = b.length - 1;
  if (run.mode === 'runahead') return rank < n - 1 ? b[rank + 1]! * kvBytesPerToken : 0;
  if (run.mode === 'tsp') return (n - 1) * (b[rank + 1]! - b[rank]!) * kvBytesPerToken;
  return 0;
}

/**
 * Per rank and layer, the time the rank's links were busy with that layer: each instant covered by
 * send spans counts for the lowest layer among them, as a link sends lowest layer first
 * (worker/chain/kv-link.ts) — a layer's frames that went out while an earlier layer waited for the
 * rank's own K/V are not counted twice. Runs whose send spans still include the links' idle
 * stretches (recorded before LayerSend.idle_ms) make the link look slower than it is.
 */
export function transferSamples(runs: readonly MeasuredRun[], kvBytesPerToken: number): TransferSample[] {
  const out: TransferSample[] = [];
  for (const run of runs) {
    const n = run.boundaries.length - 1;
    if (run.mode === 'single' || n < 2) continue;
    for (let rank = 0; rank < n; rank++) {
      const bytes = layerBytesSent(run, rank, kvBytesPerToken);
      if (bytes <= 0) continue;
      const spans = run.timeline.filter(
        (s): s is MeasuredSpan & { layer: number } =>
          s.rank === rank && s.kind === SEND_KIND && s.end > s.start && s.layer !== undefined,
      );
      const edges = [...new Set(spans.flatMap((s) => [s.start, s.end]))].sort((x, y) => x - y);
      const busy = new Map<number, number>();
      for (let k = 0; k + 1 < edges.length; k++) {
        const [a, z] = [edges[k]!, edges[k + 1]!];
        let lowest = Infinity;
        for (const s of spans) if (s.start <= a && s.end >= z) lowest = Math.min(lowest, s.layer);
        if (lowest !== Infinity) busy.set(lowest, (busy.get(lowest) ?? 0) + (z - a));
      }
      for (const [layer, ms] of busy) if (ms > 0) out.push({ rank, layer, bytes, ms });
    }
  }
  return out;
}

/**
 * ms per byte of a busy link from `samples`: all their busy time over all their bytes — what the
 * links moved while busy. (A least-squares fit of relative errors would lean to the fastest layers:
 * rank 0's, which forwards nothing.) Null without samples.
 */
export function fitLinkMsPerByte(samples: readonly TransferSample[]): number | null {
  const bytes = samples.reduce((t, s) => t + s.bytes, 0);
  const ms = samples.reduce((t, s) => t + s.ms, 0);
  return bytes > 0 && ms > 0 ? ms / bytes : null;
}

/** A link benchmark's rate (GB/s, 10⁹ bytes a second) as ms per byte. */
export function msPerByteOf(gbps: number): number {
  return 1 / (gbps * 1e6);
}

/**
 * One compute span as the stages it ran: `projects` Q/K/V projections and `attends` attentions (each
 * with its o-proj and MLP) of its rank's chunk of `tokens` queries over `keys` keys.
 */
export interface StageSample {
  readonly tokens: number;
  readonly keys: number;
  readonly projects: number;
  readonly attends: number;
  readonly ms: number;
}

/**
 * The first stage of a compute span (stage 2l: layer l's projection; 2l+1: its attention). A graph
 * of several stages ('layers': the fused graphs a GPU runs) starts with an attention unless it is
 * its rank's first: the engine cuts graphs right after projections (EngineInfo.graphs).
 */
function firstStage(s: MeasuredSpan, first: boolean): number | undefined {
  if (s.layer === undefined) return undefined;
  if (s.kind === 'project' || (s.kind === 'layers' && first)) return 2 * s.layer;
  return 2 * s.layer + 1;
}

/**
 * Every compute span of every rank as a StageSample. A span of one stage is one projection or one
 * attention; a span of several ('layers') runs from its first stage to the next span's first (the
 * last: to the end of the model), so one graph of the whole model is `numLayers` of each.
 */
export function stageSamples(runs: readonly MeasuredRun[], numLayers: number): StageSample[] {
  const out: StageSample[] = [];
  for (const run of runs) {
    const b = run.boundaries;
    const context = b.at(-1)!;
    for (let rank = 0; rank + 1 < b.length; rank++) {
      const tokens = b[rank + 1]! - b[rank]!;
      // Both chain schemes attend [0, e_i) (core/cost-model.ts); one rank alone, the context.
      const keys = run.mode === 'single' ? context : b[rank + 1]!;
      const compute = run.timeline
        .filter((s) => s.rank === rank && COMPUTE_KINDS.includes(s.kind))
        .sort((x, y) => x.start - y.start);
      compute.forEach((s, i) => {
        const ms = s.end - s.start;
        if (ms <= 0) return;
        if (s.kind === 'project') out.push({ tokens, keys, projects: 1, attends: 0, ms });
        else if (s.kind === 'attend') out.push({ tokens, keys, projects: 0, attends: 1, ms });
        else {
          const from = firstStage(s, i === 0);
          const next = compute[i + 1];
          const to = next ? firstStage(next, false) : 2 * numLayers;
          if (from === undefined || to === undefined || to <= from) return;
          const projects = Math.floor((to + 1) / 2) - Math.floor((from + 1) / 2);
          out.push({ tokens, keys, projects, attends: to - from - projects, ms });
        }
      });
    }
  }
  return out;
}

/** Where the link's rate came from. */
export type TransferSource =
  /** The runs' own sends, under compute load (at least the link benchmark's rate, if given). */
  | 'sends'
  /** The link benchmark alone (the runs had no sends). */
  | 'link'
  /** Searched to reproduce the measured TTFTs (neither). */
  | 'ttft';

export interface TransferFit {
  readonly source: TransferSource;
  /** Layers measured (TransferSample). */
  readonly samples: number;
  /** The rate measured under compute load, GB/s, when the runs had sends. */
  readonly loadedGBps?: number;
  /** The link benchmark's rate, GB/s, when given. */
  readonly linkGBps?: number;
}

export interface FitOptions {
  /** An idle link's rate from `runahead bench link` (grpcGBps): a floor under the fitted cost. */
  readonly linkGBps?: number;
}

export interface FitResult {
  readonly coefficients: CostCoefficients;
  readonly transfer: TransferFit;
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

export function fitProfile(
  runs: readonly MeasuredRun[],
  shape: ModelShape,
  options: FitOptions = {},
): FitResult {
  if (runs.length === 0) throw new CalibrationError('no runs to calibrate from');
  const samples = stageSamples(runs, shape.numLayers);
  const sizes = new Set(samples.filter((s) => s.attends > 0).map((s) => `${s.tokens}/${s.keys}`));
  if (samples.filter((s) => s.projects > 0).length < 2 || sizes.size < 3) {
    throw new CalibrationError(
      `the runs hold too few distinct chunks (${sizes.size}) to fit attention costs: bench more context lengths or rank counts`,
    );
  }
  // One fit of both terms: a fused graph's span holds projections and attentions together.
  const x = fitNonNegative(
    samples.map((s) => [
      s.projects,
      s.projects * s.tokens,
      s.attends,
      s.attends * s.tokens,
      s.attends * s.tokens * s.keys,
    ]),
    samples.map((s) => s.ms),
  );
  const p = x.slice(0, 2);
  const a = x.slice(2);
  const sends = transferSamples(runs, shape.kvBytesPerToken);
  const loaded = fitLinkMsPerByte(sends);
  const link = options.linkGBps !== undefined ? msPerByteOf(options.linkGBps) : null;
  const transfer: TransferFit = {
    source: loaded !== null ? 'sends' : link !== null ? 'link' : 'ttft',
    samples: sends.length,
    ...(loaded !== null ? { loadedGBps: 1 / (loaded * 1e6) } : {}),
    ...(options.linkGBps !== undefined ? { linkGBps: options.linkGBps } : {}),
  };
  // A link never moves bytes faster under load than idle: the benchmark's rate is a floor on the cost.
  const measured = loaded !== null ? Math.max(loaded, link ?? 0) : link;
  const rates = measured !== null ? [measured] : TRANSFER_MS_PER_BYTE;
  let best: { c: CostCoefficients; err: number } | null = null;
  for (const r0 of TRANSFER_LATENCY_MS) {
    for (const r1 of rates) {
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
    transfer,
    spans: samples.length,
    rmsRelativeError: Math.sqrt(best!.err / runs.length),
    residuals,
  };
}
