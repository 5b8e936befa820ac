// A projection of TTFT on GPUs that are not lent here (issue 13, item 5): single, TSP and
// KV-Runahead (even and balanced splits) on p H200s, from measured single-GPU times and measured
// host ↔ GPU rates. Pure: bench/projection/project.ts reads the measurements and writes the report.
//
// Compute, fitted to one H200 running the whole model as one graph (h200-cuda.json):
//   TTFT_single(C) = f + λ·C + κ·C²                      (relative least squares, fitNonNegative)
// per layer, for a chunk of c tokens whose queries sit at [s, s + c):
//   project(c)    = φ·(λ/L)·c                            φ = the share of the q|k|v projection in
//                                                        the linear FLOPs (q|k|v, o-proj, MLP)
//   attend(c, s)  = (1 − φ)·(λ/L)·c + α·pairs(c, s)      α = 2κ/L per causal (query, key) pair
//   pairs(c, s)   = c·s + c²/2                           flash attention skips masked blocks
// One rank alone: L·(project(C) + attend(C, 0)) + f = the fit, by construction. The repo's cost
// model (core/cost-model.ts) charges a chunk c·e "dense" (a2·c·S); `attention: 'dense'` reproduces
// it exactly (pairs = c·(s + c)/2), which the tests use to check this simulator against predict().
//
// Data path, bytes per token: K/V of one layer 2·kvHeads·headDim·2 (fp16); hidden state
// hiddenSize·2; query heads·headDim·2. Rates in GB/s (10⁹ B/s):
// - egress E (GPU → host), ingress I (host → GPU), link B (one GPU's port, each direction), and a
//   latency per transfer;
// - copies 'serial' (the engine today, onnxruntime-node): a graph's inputs are copied in when its
//   run starts and its outputs out when it ends, on the rank's own timeline; every graph boundary
//   moves the hidden state (and after a projection its q, k, v) out and back in;
// - copies 'kv-serial' (IO binding, worker/runtime/native-session.ts): the hidden state stays on the
//   GPU between graphs; K/V still leave and enter inside run(), on the rank's timeline;
// - copies 'kv-overlapped': as kv-serial, but K/V leave and enter on copy engines (FIFO servers at E
//   and I) while the GPU computes.
// With serial and kv-serial copies a rank's loop also waits, before its next graph, while more of its
// own K/V than the outbox and the link queue hold are unsent (kv-outbox.ts room()).
//
// KV-Runahead chain (worker/chain/rank-run.ts, worker/runtime/stage-plan.ts): a chain rank runs
// graphs of g layers cut right after a projection; graph j needs its predecessor's K/V of every layer
// it attends before it starts, so a rank's graph j waits for its predecessor's graph j: g layers are
// the unit of the chain's pipelining. Rank i forwards [0, s_i) cut-through as frames arrive, then its
// own [s_i, e_i) of layer l once it has both (one FIFO link per hop, layer order). TSP: graphs of one
// stage (the engine needs them, rank-run.ts tspProblem), each rank sends its chunk to every other
// rank through its port (p − 1 copies) and attends over [0, e_i) once all of layer l has arrived.
import { fitNonNegative } from '../../core/calibration.ts';
import type { CostCoefficients, ModelShape } from '../../core/cost-model.ts';
import { searchBalanced } from '../../core/partition-search.ts';
import { evenBoundaries, validateBoundaries } from '../../core/partition.ts';
import type { ModelConfig } from '../../worker/model/config.ts';

/** fp16 K/V, activations and weights. */
export const BYTES_PER_ELEMENT = 2;
export const MIB = 2 ** 20;

export type ModelShapeSpec = Pick<
  ModelConfig,
  'numLayers' | 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'headDim'
>;

export class ProjectionError extends Error {
  override readonly name = 'ProjectionError';
}

/** Bytes per token of what crosses between GPU, host and ranks. */
export function tensorBytes(m: ModelShapeSpec): { kv: number; hidden: number; query: number } {
  return {
    kv: 2 * m.numKvHeads * m.headDim * BYTES_PER_ELEMENT,
    hidden: m.hiddenSize * BYTES_PER_ELEMENT,
    query: m.numHeads * m.headDim * BYTES_PER_ELEMENT,
  };
}

/** Share of the q|k|v projection in a layer's linear FLOPs (q|k|v, o-proj, gate|up|down). */
export function projectShare(m: ModelShapeSpec): number {
  const qkv = m.hiddenSize * (m.numHeads + 2 * m.numKvHeads) * m.headDim;
  const o = m.numHeads * m.headDim * m.hiddenSize;
  const mlp = 3 * m.hiddenSize * m.intermediateSize;
  return qkv / (qkv + o + mlp);
}

// ---------------------------------------------------------------------------------------------
// Compute terms

/** Per-layer compute of one rank, ms. */
export interface ComputeTerms {
  /** Once per run: embedding, head, first-token report. */
  readonly fixedMs: number;
  readonly projectMsPerToken: number;
  readonly attendMsPerToken: number;
  /** Per causal (query, key) pair. */
  readonly attendMsPerPair: number;
}

export interface SingleGpuPoint {
  readonly contextLength: number;
  readonly ttftMs: number;
}

export interface ComputeFit {
  readonly terms: ComputeTerms;
  /** The whole model: [f ms, λ ms/token, κ ms/token²]. */
  readonly whole: readonly [number, number, number];
  readonly projectShare: number;
  readonly residuals: readonly { contextLength: number; measuredMs: number; fittedMs: number }[];
  readonly rmsRelativeError: number;
  readonly maxRelativeError: number;
}

export function fitCompute(points: readonly SingleGpuPoint[], m: ModelShapeSpec): ComputeFit {
  if (points.length < 3)
    throw new ProjectionError(`fitting f + λ·C + κ·C² needs 3 context lengths or more, got ${points.length}`);
  const [f, lin, quad] = fitNonNegative(
    points.map((p) => [1, p.contextLength, p.contextLength ** 2]),
    points.map((p) => p.ttftMs),
  ) as [number, number, number];
  const share = projectShare(m);
  const L = m.numLayers;
  const terms: ComputeTerms = {
    fixedMs: f,
    projectMsPerToken: (share * lin) / L,
    attendMsPerToken: ((1 - share) * lin) / L,
    attendMsPerPair: (2 * quad) / L,
  };
  const residuals = points.map((p) => ({
    contextLength: p.contextLength,
    measuredMs: p.ttftMs,
    fittedMs: f + lin * p.contextLength + quad * p.contextLength ** 2,
  }));
  const rel = residuals.map((r) => r.fittedMs / r.measuredMs - 1);
  return {
    terms,
    whole: [f, lin, quad],
    projectShare: share,
    residuals,
    rmsRelativeError: Math.sqrt(rel.reduce((s, x) => s + x * x, 0) / rel.length),
    maxRelativeError: Math.max(...rel.map(Math.abs)),
  };
}

// ---------------------------------------------------------------------------------------------
// Memory

export interface MemoryFit {
  /** Peak GPU memory of one rank alone at C tokens ≈ baseMiB + miBPerToken·C. */
  readonly baseMiB: number;
  readonly miBPerToken: number;
  /** The two measured context lengths the line goes through. */
  readonly through: readonly [number, number];
  readonly capacityMiB: number;
}

/**
 * The line through the two longest measured lengths: the arena grows faster than linearly at the
 * short end (power-of-two blocks), so the steepest, latest slope is the one to extrapolate.
 */
export function fitMemory(
  points: readonly { contextLength: number; peakGpuMiB: number }[],
  capacityMiB: number,
): MemoryFit {
  const sorted = [...points].sort((a, b) => a.contextLength - b.contextLength);
  if (sorted.length < 2) throw new ProjectionError('the memory line needs two measured context lengths');
  const a = sorted.at(-2)!;
  const b = sorted.at(-1)!;
  const miBPerToken = (b.peakGpuMiB - a.peakGpuMiB) / (b.contextLength - a.contextLength);
  return {
    baseMiB: b.peakGpuMiB - miBPerToken * b.contextLength,
    miBPerToken,
    through: [a.contextLength, b.contextLength],
    capacityMiB,
  };
}

// ---------------------------------------------------------------------------------------------
// Data path and setup

export type CopyMode = 'serial' | 'kv-serial' | 'kv-overlapped';

/** K/V copies on the rank's own timeline (and a loop that waits for its link queue). */
export const kvCopiesSerial = (copies: CopyMode) => copies !== 'kv-overlapped';
/** The hidden state (and q, k, v after a projection) crosses the host at every graph boundary. */
export const hiddenCrossesHost = (copies: CopyMode) => copies === 'serial';

export interface DataPath {
  /** GPU → host, GB/s (Infinity: free). */
  readonly egressGBps: number;
  /** Host → GPU, GB/s. */
  readonly ingressGBps: number;
  /** One GPU's link, each direction, GB/s. */
  readonly linkGBps: number;
  /** Per transfer (one layer's K/V over one hop). */
  readonly linkLatencyMs: number;
  readonly copies: CopyMode;
  /**
   * Own K/V bytes a rank may have unsent before its loop waits (serial and kv-serial copies): the
   * outbox's limit plus the link's queue.
   */
  readonly queueBytes: number;
}

export type AttentionCost = 'causal' | 'dense';

export interface ProjectionSetup {
  readonly model: ModelShapeSpec;
  readonly compute: ComputeTerms;
  readonly path: DataPath;
  /** Layers per graph of a chain rank (≥ 1); a rank alone always runs one graph. */
  readonly layersPerGraph: number;
  readonly attention: AttentionCost;
  /**
   * Each graph run after a rank's first: onnxruntime's run() and the hop to the compute thread (the
   * single-rank fit holds the one run of a rank alone). Default 0.
   */
  readonly graphOverheadMs?: number;
}

export type ProjectedScheme = 'single' | 'tsp' | 'runahead';

export interface RankTimes {
  readonly finishMs: number;
  readonly computeMs: number;
  /** Host ↔ GPU copies on the rank's own timeline (serial copies) and graph runs' overhead. */
  readonly copyMs: number;
  /** Waiting for K/V from other ranks, or for room in the outgoing link's queue. */
  readonly waitMs: number;
}

export interface Projection {
  readonly ttftMs: number;
  readonly ranks: readonly RankTimes[];
}

/** ms to move `bytes` at `gbps` GB/s; free at Infinity. */
export function transferMs(bytes: number, gbps: number): number {
  if (bytes <= 0 || gbps === Infinity) return 0;
  if (!(gbps > 0)) throw new ProjectionError(`a rate must be positive, got ${gbps} GB/s`);
  return bytes / (gbps * 1e6);
}

function pairs(setup: ProjectionSetup, c: number, s: number): number {
  return setup.attention === 'causal' ? c * s + (c * c) / 2 : (c * (s + c)) / 2;
}

export function projectMs(setup: ProjectionSetup, c: number): number {
  return setup.compute.projectMsPerToken * c;
}

export function attendMs(setup: ProjectionSetup, c: number, s: number): number {
  return setup.compute.attendMsPerToken * c + setup.compute.attendMsPerPair * pairs(setup, c, s);
}

// ---------------------------------------------------------------------------------------------
// Graphs of a chain rank (the rule of worker/runtime/stage-plan.ts; a test checks they agree)

export interface GraphStep {
  readonly attends: readonly number[];
  readonly projects: readonly number[];
  /** The graph ends right after a projection: q, k, v and the hidden state cross to the next one. */
  readonly endsAfterProject: boolean;
  /** The graph ends the model (logits only). */
  readonly last: boolean;
}

export function graphPlan(numLayers: number, layersPerGraph: number): GraphStep[] {
  if (!Number.isInteger(numLayers) || numLayers < 1)
    throw new ProjectionError(`a model needs layers, got ${numLayers}`);
  if (!Number.isInteger(layersPerGraph) || layersPerGraph < 0)
    throw new ProjectionError(`layers per graph must be an integer ≥ 0, got ${layersPerGraph}`);
  const stages = 2 * numLayers;
  const cuts: number[] = [];
  if (layersPerGraph === 1) for (let s = 1; s < stages; s++) cuts.push(s);
  else if (layersPerGraph > 1) for (let s = 1; s < stages; s += 2 * layersPerGraph) cuts.push(s);
  const bounds = [0, ...cuts, stages];
  return bounds.slice(0, -1).map((from, i) => {
    const to = bounds[i + 1]!;
    const attends: number[] = [];
    const projects: number[] = [];
    for (let s = from; s < to; s++) (s % 2 === 0 ? projects : attends).push(Math.floor(s / 2));
    return { attends, projects, endsAfterProject: to % 2 === 1, last: to === stages };
  });
}

// ---------------------------------------------------------------------------------------------
// The three schemes

export function projectSingle(setup: ProjectionSetup, contextLength: number): Projection {
  const L = setup.model.numLayers;
  const t = L * (projectMs(setup, contextLength) + attendMs(setup, contextLength, 0));
  return {
    ttftMs: setup.compute.fixedMs + t,
    ranks: [{ finishMs: t, computeMs: t, copyMs: 0, waitMs: 0 }],
  };
}

interface Arrival {
  /** First byte of a layer's past on the host. */
  readonly first: number;
  /** Last byte. */
  readonly last: number;
}

/**
 * KV-Runahead over `boundaries`. With one rank this runs that rank's graphs of `layersPerGraph`
 * layers (the engine's layers-per-graph experiment); project() sends one rank to projectSingle.
 */
export function projectRunahead(setup: ProjectionSetup, boundaries: readonly number[]): Projection {
  const { model, path } = setup;
  const L = model.numLayers;
  const p = boundaries.length - 1;
  const plan = graphPlan(L, setup.layersPerGraph);
  const bytes = tensorBytes(model);
  const K = bytes.kv;
  const serial = kvCopiesSerial(path.copies);
  const crosses = hiddenCrossesHost(path.copies);
  const E = path.egressGBps;
  const I = path.ingressGBps;
  const B = path.linkGBps;
  const lat = path.linkLatencyMs;
  const queueMs = transferMs(path.queueBytes, B);
  let arrivals: Arrival[] = [];
  const ranks: RankTimes[] = [];
  for (let i = 0; i < p; i++) {
    const s = boundaries[i]!;
    const c = boundaries[i + 1]! - s;
    const emit = i < p - 1;
    // When layer l's past is on the GPU, ready for the graph that attends it.
    const onGpu = new Array<number>(L).fill(0);
    if (i > 0) {
      let free = 0;
      for (let l = 0; l < L; l++) {
        const a = arrivals[l]!;
        if (serial) onGpu[l] = a.last;
        else {
          const start = Math.max(free, a.first);
          free = Math.max(start + transferMs(s * K, I), a.last);
          onGpu[l] = free;
        }
      }
    }
    const next: Arrival[] = [];
    let linkFree = 0;
    /** Forward [0, s) of layer l as it arrives, then the own [s, e) once it is out; → its end. */
    const send = (l: number, ownReady: number): number => {
      const a = i > 0 ? arrivals[l]! : null;
      let fwdStart = linkFree;
      let fwdEnd = linkFree;
      if (a && s > 0) {
        fwdStart = Math.max(linkFree, a.first);
        fwdEnd = Math.max(fwdStart + transferMs(s * K, B), a.last);
      }
      const ownStart = Math.max(fwdEnd, ownReady, a?.last ?? 0);
      const ownEnd = ownStart + transferMs(c * K, B);
      linkFree = ownEnd;
      next[l] = { first: (s > 0 ? fwdStart : ownStart) + lat, last: ownEnd + lat };
      return ownEnd;
    };
    let t = 0;
    let computeMs = 0;
    let copyMs = 0;
    let waitMs = 0;
    let egressFree = 0;
    const ownReady = new Array<number>(L).fill(0);
    const sent = new Array<boolean>(L).fill(false);
    const waitUntil = (when: number) => {
      if (when > t) {
        waitMs += when - t;
        t = when;
      }
    };
    /** When the outbox has room again for what this rank queued (kv-outbox.ts room()). */
    let room = 0;
    const queueOwn = (l: number) => {
      if (!emit) return;
      const end = send(l, ownReady[l]!);
      sent[l] = true;
      if (serial) room = Math.max(room, end - queueMs);
    };
    let previous: GraphStep | null = null;
    const overheadMs = setup.graphOverheadMs ?? 0;
    for (const g of plan) {
      // The loop waits for room once per graph, while the graph before it runs: only the wait that
      // outlasts that graph delays this one.
      waitUntil(room);
      for (const l of g.attends) {
        if (i > 0) waitUntil(onGpu[l]!);
        // Own K/V projected by an earlier graph go out behind the predecessor's (rank-run.ts).
        if (!g.projects.includes(l)) queueOwn(l);
      }
      const work = g.attends.length * attendMs(setup, c, s) + g.projects.length * projectMs(setup, c);
      let copies = 0;
      if (serial) {
        let inBytes = g.attends.length * s * K;
        let outBytes = 0;
        let ownOut = emit ? g.projects.length : 0;
        if (crosses) {
          const boundary = (after: GraphStep) =>
            (after.endsAfterProject ? bytes.hidden + bytes.query + K : bytes.hidden) * c;
          if (previous) inBytes += boundary(previous);
          if (!g.last) outBytes += boundary(g);
          // The boundary's k, v are the own K/V of its projection: they leave once.
          if (emit && g.endsAfterProject) ownOut--;
        }
        outBytes += ownOut * c * K;
        copies = transferMs(inBytes, I) + transferMs(outBytes, E);
      }
      if (previous) copies += overheadMs;
      t += copies + work;
      computeMs += work;
      copyMs += copies;
      for (const l of g.projects) {
        if (!emit) continue;
        if (serial) ownReady[l] = t;
        else {
          egressFree = Math.max(egressFree, t) + transferMs(c * K, E);
          ownReady[l] = egressFree;
        }
      }
      // Layers projected and attended in this graph go out after it.
      for (const l of g.attends) if (!sent[l] && g.projects.includes(l)) queueOwn(l);
      previous = g;
    }
    ranks.push({ finishMs: t, computeMs, copyMs, waitMs });
    arrivals = next;
  }
  return { ttftMs: setup.compute.fixedMs + ranks.at(-1)!.finishMs, ranks };
}

/** TSP over `boundaries`: graphs of one stage, an all-gather of every layer's K/V. */
export function projectTsp(setup: ProjectionSetup, boundaries: readonly number[]): Projection {
  const { model, path } = setup;
  const L = model.numLayers;
  const p = boundaries.length - 1;
  const C = boundaries[p]!;
  const bytes = tensorBytes(model);
  const K = bytes.kv;
  const serial = kvCopiesSerial(path.copies);
  const crosses = hiddenCrossesHost(path.copies);
  const E = path.egressGBps;
  const I = path.ingressGBps;
  const B = path.linkGBps;
  const lat = path.linkLatencyMs;
  const chunk = (i: number) => boundaries[i + 1]! - boundaries[i]!;
  const t = new Array<number>(p).fill(0);
  const compute = new Array<number>(p).fill(0);
  const copy = new Array<number>(p).fill(0);
  const wait = new Array<number>(p).fill(0);
  const egressFree = new Array<number>(p).fill(0);
  const ingressFree = new Array<number>(p).fill(0);
  const portFree = new Array<number>(p).fill(0);
  const waitUntil = (i: number, when: number) => {
    if (when > t[i]!) {
      wait[i]! += when - t[i]!;
      t[i] = when;
    }
  };
  for (let l = 0; l < L; l++) {
    const ownReady = new Array<number>(p).fill(0);
    for (let i = 0; i < p; i++) {
      const c = chunk(i);
      const work = projectMs(setup, c);
      let copies = 0;
      if (serial) {
        const inBytes = crosses && l > 0 ? bytes.hidden * c : 0;
        const outBytes = (crosses ? bytes.hidden + bytes.query + K : K) * c;
        copies = transferMs(inBytes, I) + transferMs(outBytes, E);
      }
      if (l > 0) copies += setup.graphOverheadMs ?? 0;
      t[i]! += copies + work;
      compute[i]! += work;
      copy[i]! += copies;
      if (serial) ownReady[i] = t[i]!;
      else {
        egressFree[i] = Math.max(egressFree[i]!, t[i]!) + transferMs(c * K, E);
        ownReady[i] = egressFree[i]!;
      }
    }
    // Each rank's port sends its chunk to every other rank.
    const sendStart = ownReady.map((r, j) => Math.max(portFree[j]!, r));
    const sendEnd = sendStart.map((st, j) => st + transferMs((p - 1) * chunk(j) * K, B));
    sendEnd.forEach((e, j) => (portFree[j] = e));
    for (let i = 0; i < p; i++) {
      const c = chunk(i);
      const s = boundaries[i]!;
      let firstIn = Infinity;
      let lastIn = 0;
      for (let j = 0; j < p; j++) {
        if (j === i) continue;
        firstIn = Math.min(firstIn, sendStart[j]! + lat);
        lastIn = Math.max(lastIn, sendEnd[j]! + lat);
      }
      lastIn = Math.max(lastIn, firstIn + transferMs((C - c) * K, B));
      if (serial) waitUntil(i, sendEnd[i]! - transferMs((p - 1) * path.queueBytes, B));
      let ready = lastIn;
      if (!serial) {
        const start = Math.max(ingressFree[i]!, firstIn);
        ingressFree[i] = Math.max(start + transferMs(s * K, I), lastIn);
        ready = ingressFree[i]!;
      }
      waitUntil(i, ready);
      const work = attendMs(setup, c, s);
      let copies = 0;
      if (serial) {
        const inBytes = (crosses ? bytes.hidden + bytes.query + K : 0) * c + s * K;
        const outBytes = crosses && l < L - 1 ? bytes.hidden * c : 0;
        copies = transferMs(inBytes, I) + transferMs(outBytes, E);
      }
      copies += setup.graphOverheadMs ?? 0;
      t[i]! += copies + work;
      compute[i]! += work;
      copy[i]! += copies;
    }
  }
  const ranks = t.map((finishMs, i) => ({
    finishMs,
    computeMs: compute[i]!,
    copyMs: copy[i]!,
    waitMs: wait[i]!,
  }));
  return { ttftMs: setup.compute.fixedMs + t[p - 1]!, ranks };
}

export function project(
  setup: ProjectionSetup,
  scheme: ProjectedScheme,
  boundaries: readonly number[],
): Projection {
  const p = boundaries.length - 1;
  validateBoundaries(boundaries, boundaries[p]!, p);
  if (scheme === 'single' || p === 1) return projectSingle(setup, boundaries[p]!);
  return scheme === 'tsp' ? projectTsp(setup, boundaries) : projectRunahead(setup, boundaries);
}

// ---------------------------------------------------------------------------------------------
// Memory per rank

/** Peak GPU memory of each rank, MiB: the single-rank line at its chunk + the past a graph holds. */
export function rankPeaksMiB(
  setup: ProjectionSetup,
  memory: MemoryFit,
  scheme: ProjectedScheme,
  boundaries: readonly number[],
): number[] {
  const p = boundaries.length - 1;
  const K = tensorBytes(setup.model).kv;
  const pastLayers =
    scheme === 'tsp'
      ? 1
      : Math.max(...graphPlan(setup.model.numLayers, setup.layersPerGraph).map((g) => g.attends.length));
  return boundaries.slice(0, p).map((s, i) => {
    const c = boundaries[i + 1]! - s;
    const past = scheme === 'single' || p === 1 ? 0 : (pastLayers * s * K) / MIB;
    return memory.baseMiB + memory.miBPerToken * c + past;
  });
}

// ---------------------------------------------------------------------------------------------
// Balanced split

/**
 * Coefficients of the repo's cost model that approximate a setup: the compute terms (its attention
 * in c·S units: a2 = α/2), serial egress of the own K/V charged to the projection, and transfers at
 * the slowest of the link and (kv-overlapped copies) the copy engines.
 */
export function costCoefficients(setup: ProjectionSetup): CostCoefficients {
  const { compute, path } = setup;
  const K = tensorBytes(setup.model).kv;
  const serial = kvCopiesSerial(path.copies);
  const slowest = serial ? path.linkGBps : Math.min(path.linkGBps, path.egressGBps, path.ingressGBps);
  return {
    project: [0, compute.projectMsPerToken + (serial ? transferMs(K, path.egressGBps) : 0)],
    attend: [0, compute.attendMsPerToken, compute.attendMsPerPair / 2],
    transfer: [path.linkLatencyMs, transferMs(1, slowest)],
    fixedMs: compute.fixedMs,
  };
}

export function costShape(setup: ProjectionSetup): ModelShape {
  return { numLayers: setup.model.numLayers, kvBytesPerToken: tensorBytes(setup.model).kv };
}

/**
 * Pattern search of partition-search.ts (move one boundary by ±step while it pays, halve the step)
 * against any cost: the repo's search calls the cost model's predict() and cannot take this one.
 */
export function refineSplit(
  cost: (b: readonly number[]) => number,
  start: readonly number[],
  granularity: number,
): { boundaries: number[]; ttftMs: number; evaluations: number } {
  const n = start.length - 1;
  const C = start[n]!;
  let best = [...start];
  let bestCost = cost(best);
  let evaluations = 1;
  let restartCost = bestCost;
  let step = Math.max(granularity, Math.round(C / (4 * n) / granularity) * granularity);
  while (step >= granularity) {
    let moved = false;
    for (let i = 1; i < n; i++) {
      for (const dir of [1, -1]) {
        for (;;) {
          const nextB = best[i]! + dir * step;
          if (nextB - best[i - 1]! < granularity || best[i + 1]! - nextB < granularity) break;
          const candidate = [...best];
          candidate[i] = nextB;
          const c = cost(candidate);
          evaluations++;
          if (c >= bestCost) break;
          best = candidate;
          bestCost = c;
          moved = true;
        }
      }
    }
    if (!moved)
      step =
        step === granularity ? 0 : Math.max(granularity, Math.floor(step / 2 / granularity) * granularity);
    // One boundary at a time stalls where two must move together: start over with coarse steps
    // while that still pays.
    if (step === 0 && bestCost < restartCost) {
      restartCost = bestCost;
      step = Math.max(granularity, Math.round(C / (8 * n) / granularity) * granularity);
    }
  }
  return { boundaries: best, ttftMs: bestCost, evaluations };
}

export interface BalancedSplit {
  readonly boundaries: number[];
  readonly ttftMs: number;
  /** The repo's search (searchBalanced against the cost model of costCoefficients()). */
  readonly costModel: {
    readonly boundaries: number[];
    readonly predictedMs: number;
    readonly projectedMs: number;
  };
}

/** Even split on the granularity's grid (the first chunks take the remainder). */
export function alignedEven(contextLength: number, ranks: number, granularity: number): number[] {
  if (contextLength < ranks * granularity) return evenBoundaries(contextLength, ranks);
  const units = Math.floor(contextLength / granularity);
  const b = evenBoundaries(units, ranks).map((u) => u * granularity);
  b[ranks] = contextLength;
  return b;
}

/**
 * Chunks of equal own compute under this projection's attention (causal pairs), on the granularity's
 * grid: partition-search.ts's equalWorkBoundaries with this file's attendMs instead of the cost
 * model's. Bisection on the work W; each rank but the last takes the longest chunk of work ≤ W.
 */
export function equalWorkSplit(
  setup: ProjectionSetup,
  contextLength: number,
  ranks: number,
  granularity: number,
): number[] {
  const work = (start: number, tokens: number) => projectMs(setup, tokens) + attendMs(setup, tokens, start);
  const cut = (w: number): number[] => {
    const b = [0];
    for (let i = 0; i < ranks - 1; i++) {
      const start = b[i]!;
      let lo = 1;
      let hi = Math.floor((contextLength - (ranks - 1 - i) * granularity - start) / granularity);
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (work(start, mid * granularity) <= w) lo = mid;
        else hi = mid - 1;
      }
      b.push(start + lo * granularity);
    }
    b.push(contextLength);
    return b;
  };
  let lo = 0;
  let hi = work(0, contextLength);
  for (let iter = 0; iter < 60; iter++) {
    const mid = (lo + hi) / 2;
    const b = cut(mid);
    if (work(b[ranks - 1]!, contextLength - b[ranks - 1]!) > mid) lo = mid;
    else hi = mid;
  }
  return cut(hi);
}

/**
 * The balanced KV-Runahead split: the repo's search against the cost model, then refined against
 * this projection from that split, from the even one and from equal compute; the best of the three
 * (one boundary at a time stalls in different places from different starts).
 */
export function balancedSplit(
  setup: ProjectionSetup,
  contextLength: number,
  ranks: number,
  granularity: number,
  memory?: MemoryFit,
): BalancedSplit {
  const cost = (b: readonly number[]) => projectRunahead(setup, b).ttftMs;
  const fits = (b: readonly number[]) =>
    !memory || Math.max(...rankPeaksMiB(setup, memory, 'runahead', b)) <= memory.capacityMiB;
  // Splits whose largest rank does not fit are out of the search (unless nothing fits).
  const constrained = (b: readonly number[]) => (fits(b) ? cost(b) : Infinity);
  const even = alignedEven(contextLength, ranks, granularity);
  if (ranks === 1) {
    const ttftMs = projectSingle(setup, contextLength).ttftMs;
    return {
      boundaries: even,
      ttftMs,
      costModel: { boundaries: even, predictedMs: ttftMs, projectedMs: ttftMs },
    };
  }
  const g = contextLength >= ranks * granularity ? granularity : 1;
  const repo = searchBalanced(costCoefficients(setup), costShape(setup), contextLength, ranks, {
    granularity: g,
  });
  const starts = [repo.boundaries, even, equalWorkSplit(setup, contextLength, ranks, g)];
  const search = (f: (b: readonly number[]) => number) =>
    starts.map((b) => refineSplit(f, b, g)).reduce((a, b) => (b.ttftMs < a.ttftMs ? b : a));
  let best = search(constrained);
  if (best.ttftMs === Infinity) best = search(cost);
  return {
    boundaries: best.boundaries,
    ttftMs: best.ttftMs,
    costModel: {
      boundaries: repo.boundaries,
      predictedMs: repo.predictedMs,
      projectedMs: cost(repo.boundaries),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Configurations and crossovers

export type Configuration = 'tsp' | 'even' | 'balanced';

export interface ConfigPoint {
  readonly configuration: Configuration | 'single';
  readonly ranks: number;
  readonly contextLength: number;
  readonly boundaries: readonly number[];
  /** Of a chain rank: 0 for one rank alone (one graph), 1 for TSP (graphs of one stage). */
  readonly layersPerGraph: number;
  readonly ttftMs: number;
  readonly peakMiB: number;
  readonly fits: boolean;
  readonly ranksTimes: readonly RankTimes[];
  /** Balanced only: the repo's search against the cost model. */
  readonly costModel?: BalancedSplit['costModel'];
}

/**
 * One configuration at one length. KV-Runahead takes the best of `layersPerGraph` (graphs of g layers
 * for its chain ranks; default the setup's), preferring what fits in memory; TSP runs graphs of one
 * stage (the engine needs them), one rank alone one graph.
 */
export function projectConfiguration(
  setup: ProjectionSetup,
  memory: MemoryFit,
  configuration: Configuration | 'single',
  ranks: number,
  contextLength: number,
  granularity: number,
  layersPerGraph: readonly number[] = [setup.layersPerGraph],
): ConfigPoint {
  const point = (
    s: ProjectionSetup,
    scheme: ProjectedScheme,
    boundaries: readonly number[],
    g: number,
    costModel?: BalancedSplit['costModel'],
  ): ConfigPoint => {
    const projection = project(s, scheme, boundaries);
    const peakMiB = Math.max(...rankPeaksMiB(s, memory, scheme, boundaries));
    return {
      configuration,
      ranks,
      contextLength,
      boundaries: [...boundaries],
      layersPerGraph: g,
      ttftMs: projection.ttftMs,
      peakMiB,
      fits: peakMiB <= memory.capacityMiB,
      ranksTimes: projection.ranks,
      ...(costModel ? { costModel } : {}),
    };
  };
  if (configuration === 'single' || ranks === 1) return point(setup, 'single', [0, contextLength], 0);
  const even = alignedEven(contextLength, ranks, granularity);
  if (configuration === 'tsp') return point({ ...setup, layersPerGraph: 1 }, 'tsp', even, 1);
  const candidates = layersPerGraph.map((g) => {
    const s = { ...setup, layersPerGraph: g };
    if (configuration === 'even') return point(s, 'runahead', even, g);
    const b = balancedSplit(s, contextLength, ranks, granularity, memory);
    return point(s, 'runahead', b.boundaries, g, b.costModel);
  });
  return candidates.reduce((a, b) => (b.fits !== a.fits ? (b.fits ? b : a) : b.ttftMs < a.ttftMs ? b : a));
}

export type Crossover =
  | { readonly kind: 'always'; readonly from: number }
  | { readonly kind: 'from'; readonly contextLength: number }
  | { readonly kind: 'never'; readonly upTo: number };

/**
 * The shortest context from which `speedup` stays above 1 up to `hi`: sampled at four points per
 * octave, then bisected (in log space) between the last losing and the first winning sample.
 */
export function crossover(
  speedup: (contextLength: number) => number,
  lo: number,
  hi: number,
  granularity: number,
): Crossover {
  const snap = (x: number) => Math.max(granularity, Math.round(x / granularity) * granularity);
  const grid: number[] = [];
  for (let k = 0; ; k++) {
    const x = snap(lo * 2 ** (k / 4));
    if (x >= hi) break;
    if (grid.at(-1) !== x) grid.push(x);
  }
  grid.push(hi);
  const wins = grid.map((x) => speedup(x) > 1);
  let first = grid.length;
  while (first > 0 && wins[first - 1]) first--;
  if (first === grid.length) return { kind: 'never', upTo: hi };
  if (first === 0) return { kind: 'always', from: grid[0]! };
  let a = grid[first - 1]!;
  let b = grid[first]!;
  while (b - a > granularity) {
    const mid = snap(Math.sqrt(a * b));
    if (mid <= a || mid >= b) break;
    if (speedup(mid) > 1) b = mid;
    else a = mid;
  }
  return { kind: 'from', contextLength: b };
}

// ---------------------------------------------------------------------------------------------
// The engine's own egress, from its layers-per-graph experiment

export interface GroupedRun {
  readonly layersPerGraph: number;
  readonly ttftMs: number;
}

/**
 * The egress rate at which a rank alone with graphs of g layers (serial copies: every boundary moves
 * hidden, q, k, v out and back in) reproduces measured TTFTs: relative least squares over a log grid
 * of rates, then golden-section refinement. The engine's copies include what the micro-benchmark
 * leaves out (its own host buffers, the cache it fills).
 */
export function fitEgressGBps(
  setup: ProjectionSetup,
  contextLength: number,
  runs: readonly GroupedRun[],
): { egressGBps: number; predictedMs: number[]; rmsRelativeError: number } {
  if (runs.length === 0) throw new ProjectionError('no grouped runs to fit the egress rate to');
  const predictAt = (gbps: number) =>
    runs.map(
      (r) =>
        projectRunahead(
          {
            ...setup,
            layersPerGraph: r.layersPerGraph,
            path: { ...setup.path, egressGBps: gbps, copies: 'serial' },
          },
          [0, contextLength],
        ).ttftMs,
    );
  const err = (logRate: number) =>
    predictAt(10 ** logRate).reduce((e, ms, i) => e + (ms / runs[i]!.ttftMs - 1) ** 2, 0);
  let best = -2;
  for (let x = -2; x <= 2; x += 0.05) if (err(x) < err(best)) best = x;
  let a = best - 0.05;
  let b = best + 0.05;
  const phi = (Math.sqrt(5) - 1) / 2;
  for (let k = 0; k < 40; k++) {
    const x1 = b - phi * (b - a);
    const x2 = a + phi * (b - a);
    if (err(x1) <= err(x2)) b = x2;
    else a = x1;
  }
  const egressGBps = 10 ** ((a + b) / 2);
  const predictedMs = predictAt(egressGBps);
  const rel = predictedMs.map((ms, i) => ms / runs[i]!.ttftMs - 1);
  return {
    egressGBps,
    predictedMs,
    rmsRelativeError: Math.sqrt(rel.reduce((s, x) => s + x * x, 0) / rel.length),
  };
}
