// The model on onnxruntime, as a few graphs of consecutive stages (llama-graphs.ts, stage-plan.ts).
// It lives in a worker thread (compute-thread.ts) because InferenceSession.run() is synchronous
// native work that would otherwise stall every gRPC stream of the process. It holds what stays local
// to a rank between calls — the values one graph hands the next, the chunk's positions and (when
// asked) the KV-cache for decoding — so only K/V that must cross to another rank leave this thread.
import { performance } from 'node:perf_hooks';
import {
  IO,
  attentionProblem,
  buildStageGraph,
  defaultAttention,
  type AttentionKind,
  type StageRange,
} from '../model/llama-graphs.ts';
import { loadModelWeights, type ModelRef } from '../model/load.ts';
import { allocate, bytesPerElement, type ComputeDType, type HostArray } from '../model/tensor.ts';
import type { ModelConfig } from '../model/config.ts';
import type { LayerWeights } from '../model/weights.ts';
import { defaultLayersPerGraph, stageLayers, stagePlan } from './stage-plan.ts';
import {
  ExecutionProviderError,
  Tensor,
  checkExecutionProvider,
  type OrtTensor,
  type SessionSettings,
} from './ort.ts';
import {
  createGraphSession,
  defaultIoPath,
  isHostValue,
  type GraphSession,
  type GraphValue,
  type IoPath,
  type Placement,
} from './graph-session.ts';
import { KvBufferPool, SLOT_HEADER_BYTES } from './kv-buffer-pool.ts';
import { pinHost } from './native-session.ts';

export interface EngineSpec extends ModelRef, SessionSettings {
  /** Layers per graph (stage-plan.ts); absent: defaultLayersPerGraph(ep, inChain). */
  readonly layersPerGraph?: number;
  /** The engine is one rank of a chain (the default plan cuts its graphs). */
  readonly inChain?: boolean;
  /** Attention implementation; absent: the fastest one that runs this model here. */
  readonly attention?: AttentionKind;
  /** How graphs run; absent: defaultIoPath(ep) — the ort_io addon on a GPU where it is built. */
  readonly io?: IoPath;
  /** Bound of the reused host buffers that K/V leave the device into (io 'native'); default 8 GiB. */
  readonly kvPoolBytes?: number;
}

const DEFAULT_KV_POOL_BYTES = 8 * 2 ** 30;

/** Keys and values of a token range, token-major [tokens, kvHeads, headDim]. */
export interface KvBlock {
  readonly tokens: number;
  readonly key: HostArray;
  readonly value: HostArray;
}

/** A layer's own K/V, as a graph emits them. */
export interface LayerKv {
  readonly layer: number;
  readonly block: KvBlock;
}

export interface EngineInfo {
  readonly config: ModelConfig;
  readonly dtype: ComputeDType;
  readonly fingerprint: string;
  readonly description: string;
  readonly loadMs: number;
  /** Where the load went: weights read or generated, graphs built, onnxruntime sessions created. */
  readonly loadBreakdownMs: { readonly weights: number; readonly graphs: number; readonly sessions: number };
  readonly attention: AttentionKind;
  /** The stage ranges of the engine's graphs, in order. */
  readonly graphs: readonly StageRange[];
  /**
   * Whether K/V leave the engine at no real cost. On the CPU, outputs are in host memory anyway; on a
   * GPU every byte crosses through the host (DEVICE.md), so the first token is computed without the
   * cache and the cache is filled afterwards, for decoding only.
   */
  readonly kvOnHostIsFree: boolean;
  /** How graphs run (graph-session.ts). */
  readonly io: IoPath;
}

export type LoadProgress = (done: number, total: number, what: string) => void;

/** What a graph run hands back and keeps. */
export interface GraphRunOptions {
  /** Return the own K/V of every layer this graph projects (to send them). */
  readonly emit: boolean;
  /** Keep past + own K/V of every layer this graph attends as that layer's cache (to decode). */
  readonly keep: boolean;
}

interface Chunk {
  readonly start: number;
  readonly ids: OrtTensor;
  readonly positions: OrtTensor;
  /** Values the previous graph left for the next (hidden_out → hidden, query/key/value at a cut). */
  carry: Record<string, GraphValue>;
  /** Own K/V of layers projected but not yet attended (a cut lies between). */
  own: Map<number, KvBlock>;
  next: number;
  logits: Float32Array | null;
}

export class LayerEngine {
  private chunk: Chunk | null = null;
  private readonly kvCache: (KvBlock | null)[];
  private readonly info: EngineInfo;
  private readonly sessions: readonly GraphSession[];
  private readonly kvRowElements: number;
  /** Reused host buffers for K/V leaving the graphs (the addon's IO path only). */
  private readonly pool: KvBufferPool | null;

  private constructor(info: EngineInfo, sessions: GraphSession[], pool: KvBufferPool | null) {
    this.info = info;
    this.sessions = sessions;
    this.pool = pool;
    this.kvCache = Array.from({ length: info.config.numLayers }, () => null);
    this.kvRowElements = info.config.numKvHeads * info.config.headDim;
  }

  static async create(spec: EngineSpec, progress: LoadProgress = () => undefined): Promise<LayerEngine> {
    const started = performance.now();
    await checkExecutionProvider(spec.ep, spec.deviceId);
    const weights = await loadModelWeights(spec);
    const { config, dtype } = weights;
    const attention = spec.attention ?? defaultAttention(config, spec.ep, dtype);
    const problem = attentionProblem(attention, config, spec.ep, dtype);
    if (problem) throw new ExecutionProviderError(problem);
    const graphs = stagePlan(
      config.numLayers,
      spec.layersPerGraph ?? defaultLayersPerGraph(spec.ep, spec.inChain ?? false),
    );
    const layers = new Map<number, LayerWeights>();
    const io = spec.io ?? defaultIoPath(spec.ep);
    const sessions: GraphSession[] = [];
    const total = config.numLayers + 2;
    let loaded = 0;
    const spent = { weights: 0, graphs: 0, sessions: 0 };
    let mark = performance.now();
    const lap = (what: keyof typeof spent) => {
      const t = performance.now();
      spent[what] += t - mark;
      mark = t;
    };
    for (const [i, range] of graphs.entries()) {
      const { projects, attends } = stageLayers(range);
      // All layers of a graph are asked for at once (a synthetic model generates them in parallel),
      // and the embedding and head are made here meanwhile.
      const needed = [...new Set([...projects, ...attends])].filter((l) => !layers.has(l));
      const pending = Promise.all(
        needed.map(async (l) => {
          const w = await weights.layer(l);
          progress(++loaded, total, `layer ${l}`);
          return [l, w] as const;
        }),
      );
      const first = range.from === 0;
      const last = range.to === 2 * config.numLayers;
      const empty = allocate(dtype, 0);
      const embedding = first ? await weights.embedding() : empty;
      const finalNorm = last ? await weights.finalNorm() : empty;
      const lmHead = last ? await weights.lmHead() : empty;
      for (const [l, w] of await pending) layers.set(l, w);
      lap('weights');
      const model = buildStageGraph(
        config,
        dtype,
        range,
        { layer: (l) => layers.get(l)!, embedding, finalNorm, lmHead },
        attention,
      );
      lap('graphs');
      // onnxruntime copies external initializers into its own buffers (checked: overwriting the
      // arrays after creation changes no output), so the arrays are garbage once a session exists.
      sessions.push(await createGraphSession(model, spec, io));
      lap('sessions');
      // A layer whose stages are all built is not needed here any more.
      for (const l of layers.keys()) if (2 * l + 2 <= range.to) layers.delete(l);
      if (i === graphs.length - 1) progress(total - 1, total, 'head');
    }
    progress(total, total, 'ready');
    const info: EngineInfo = {
      config,
      dtype,
      fingerprint: weights.fingerprint,
      description: weights.description,
      loadMs: performance.now() - started,
      loadBreakdownMs: spent,
      attention,
      graphs,
      kvOnHostIsFree: spec.ep === 'cpu',
      io,
    };
    // Pinned once a CUDA session exists (the sessions above loaded the CUDA runtime).
    const pool =
      io === 'native' ? new KvBufferPool(spec.kvPoolBytes ?? DEFAULT_KV_POOL_BYTES, pinHost) : null;
    return new LayerEngine(info, sessions, pool);
  }

  get engineInfo(): EngineInfo {
    return this.info;
  }

  private kvTensor(data: HostArray, tokens: number): OrtTensor {
    return new Tensor(this.info.dtype, data, [tokens, this.info.config.numKvHeads, this.info.config.headDim]);
  }

  private emptyKv(): KvBlock {
    return { tokens: 0, key: allocate(this.info.dtype, 0), value: allocate(this.info.dtype, 0) };
  }

  private checkKv(block: KvBlock, what: string): void {
    const want = block.tokens * this.kvRowElements;
    if (block.key.length !== want || block.value.length !== want) {
      throw new Error(
        `${what}: ${block.tokens} tokens need ${want} elements, got key ${block.key.length}, value ${block.value.length}`,
      );
    }
  }

  /** Start a chunk: token ids at absolute positions start, start+1, … */
  startChunk(ids: readonly number[], start: number): void {
    if (ids.length === 0) throw new Error('a chunk needs at least one token');
    if (!Number.isInteger(start) || start < 0)
      throw new Error(`a chunk starts at a position ≥ 0, got ${start}`);
    const vocab = this.info.config.vocabSize;
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    if (bad !== undefined) throw new Error(`token id ${bad} is outside the vocabulary [0, ${vocab})`);
    if (this.chunk) this.dropChunk(this.chunk);
    this.chunk = {
      start,
      ids: new Tensor('int64', BigInt64Array.from(ids, BigInt), [ids.length]),
      positions: new Tensor(
        'int64',
        BigInt64Array.from(ids, (_, i) => BigInt(start + i)),
        [ids.length],
      ),
      carry: {},
      own: new Map(),
      next: 0,
      logits: null,
    };
  }

  /**
   * Run graph `index` of the current chunk (graphs run in order). `pasts` holds, for each layer the
   * graph attends, the K/V of positions [0, start) (null: none, for a chunk at 0). Returns the own
   * K/V of the layers it projects when `emit` is set.
   */
  async runGraph(
    index: number,
    pasts: readonly (KvBlock | null)[],
    options: GraphRunOptions,
  ): Promise<LayerKv[]> {
    const chunk = this.chunk;
    if (!chunk) throw new Error('no chunk: call startChunk() first');
    if (index !== chunk.next)
      throw new Error(`graph ${index} cannot run now: graph ${chunk.next} of this chunk is next`);
    const session = this.sessions[index]!;
    const range = this.info.graphs[index]!;
    const { projects, attends } = stageLayers(range);
    if (pasts.length !== attends.length)
      throw new Error(`graph ${index} attends ${attends.length} layer(s), got ${pasts.length} past(s)`);
    const feeds: Record<string, GraphValue> = {};
    const wanted = new Set(session.inputNames);
    if (wanted.has(IO.ids)) feeds[IO.ids] = chunk.ids;
    if (wanted.has(IO.positions)) feeds[IO.positions] = chunk.positions;
    for (const name of wanted) if (chunk.carry[name]) feeds[name] = chunk.carry[name];
    const pastOf = attends.map((l, i) => {
      const past = pasts[i] ?? this.emptyKv();
      this.checkKv(past, `layer ${l} past`);
      if (past.tokens !== chunk.start)
        throw new Error(`layer ${l}: past holds ${past.tokens} tokens, the chunk starts at ${chunk.start}`);
      feeds[IO.pastKey(l)] = this.kvTensor(past.key, past.tokens);
      feeds[IO.pastValue(l)] = this.kvTensor(past.value, past.tokens);
      return past;
    });
    const missing = session.inputNames.filter((n) => !feeds[n]);
    if (missing.length > 0) throw new Error(`graph ${index}: nothing to feed ${missing.join(', ')}`);

    // K/V of a layer projected here and attended in the next graph always cross (the next graph
    // takes them); the others only when they must leave or be kept.
    const carried = projects.filter((l) => !attends.includes(l));
    const kvFetched = options.emit || options.keep ? projects : carried;
    const kvNames = new Set(projects.flatMap((l) => [IO.key(l), IO.value(l)]));
    const fetches = session.outputNames.filter(
      (n) => !kvNames.has(n) || kvFetched.some((l) => n === IO.key(l) || n === IO.value(l)),
    );
    const kvInto = new Map<number, { key: HostArray; value: HostArray }>();
    const placement = this.placement(options.emit || options.keep ? projects : [], chunk, kvInto);
    let out: Record<string, GraphValue>;
    try {
      out = await session.run(feeds, fetches, placement);
    } catch (err) {
      for (const b of kvInto.values()) this.pool?.release(b.key.buffer);
      throw err;
    }
    chunk.next = index + 1;
    releaseDeviceValues(chunk.carry);
    chunk.carry = {};
    const emitted = this.takeOwnKv(chunk, out, projects, carried, options);
    const hidden = out[IO.hiddenOut];
    if (hidden) chunk.carry[IO.hidden] = hidden;
    const logits = out[IO.logits];
    if (logits && isHostValue(logits)) chunk.logits = logits.data as Float32Array;
    attends.forEach((l, i) => {
      const own = chunk.own.get(l);
      chunk.own.delete(l);
      let cachedOwn = false;
      if (options.keep) {
        if (!own) throw new Error(`layer ${l}: its own K/V were not kept by its projection`);
        const past = pastOf[i]!;
        const key = concat(past.key, own.key);
        // A chunk at 0 is its own cache: the cache then holds the pooled buffer (cacheLayer).
        cachedOwn = key === own.key;
        this.cacheLayer(l, { tokens: past.tokens + own.tokens, key, value: concat(past.value, own.value) });
      }
      if (own && !cachedOwn) this.pool?.release(own.key.buffer);
    });
    return emitted;
  }

  /**
   * Where each output of a run goes. K/V that must reach the host (to be sent or kept: `hostLayers`)
   * go into reused buffers of the pool; what only the next graph reads stays on the device (the
   * addon's IO path; onnxruntime-node ignores this and returns host arrays).
   */
  private placement(
    hostLayers: readonly number[],
    chunk: Chunk,
    kvInto: Map<number, { key: HostArray; value: HostArray }>,
  ): (name: string) => Placement {
    const tokens = chunk.ids.dims[0]!;
    const dims = [tokens, this.info.config.numKvHeads, this.info.config.headDim];
    return (name) => {
      const l = layerOfKv(name);
      if (l === null) return name === IO.logits ? 'host' : 'device';
      if (!hostLayers.includes(l)) return 'device';
      let into = kvInto.get(l);
      if (!into) {
        into = this.takeKvBuffers(tokens) ?? undefined;
        if (!into) return 'host';
        kvInto.set(l, into);
      }
      return { into: name === IO.key(l) ? into.key : into.value, dims };
    };
  }

  /** Keeps what a run left for the next graph and for attention, and returns the K/V to emit. */
  private takeOwnKv(
    chunk: Chunk,
    out: Record<string, GraphValue>,
    projects: readonly number[],
    carried: readonly number[],
    options: GraphRunOptions,
  ): LayerKv[] {
    const emitted: LayerKv[] = [];
    for (const l of projects) {
      const k = out[IO.key(l)];
      const v = out[IO.value(l)];
      if (!k || !v) continue;
      const isCarried = carried.includes(l);
      if (isCarried) {
        chunk.carry[IO.key(l)] = k;
        chunk.carry[IO.value(l)] = v;
        chunk.carry[IO.query(l)] = out[IO.query(l)]!;
      }
      if (!isHostValue(k) || !isHostValue(v)) continue; // on the device: only the next graph reads them
      const block = { tokens: k.dims[0]!, key: k.data as HostArray, value: v.data as HostArray };
      chunk.own.set(l, block);
      if (!options.emit) continue;
      if (this.pool?.owns(block.key.buffer)) {
        // Shared memory: the caller reads the same bytes and gives them back with recycle().
        this.pool.hold(block.key.buffer);
        emitted.push({ layer: l, block });
      } else {
        // The caller may move what it gets to another thread: a copy where this engine reads on.
        emitted.push({ layer: l, block: isCarried || options.keep ? copyBlock(block) : block });
      }
    }
    return emitted;
  }

  /** The whole stack for one chunk, attending over the local KV-cache; `keep` extends it. */
  async forward(ids: readonly number[], start: number, keep: boolean): Promise<void> {
    this.startChunk(ids, start);
    for (const [index, range] of this.info.graphs.entries()) {
      const pasts = stageLayers(range).attends.map((l) => {
        const cached = this.kvCache[l] ?? null;
        if (!cached && start > 0)
          throw new Error(
            `forward at position ${start}: layer ${l} has no KV-cache; prefill positions [0, ${start}) first`,
          );
        return cached;
      });
      await this.runGraph(index, pasts, { emit: false, keep });
    }
  }

  /** Float32 logits of the last position of the current chunk, [vocab]. */
  logits(): Float32Array {
    const logits = this.chunk?.logits;
    if (!logits) throw new Error('no logits: run every graph of a chunk first');
    return logits.slice();
  }

  setCache(layer: number, block: KvBlock): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.kvCache.length)
      throw new Error(`layer ${layer} does not exist (the model has ${this.kvCache.length})`);
    this.checkKv(block, `setCache(${layer})`);
    this.cacheLayer(layer, block);
  }

  cache(): (KvBlock | null)[] {
    return [...this.kvCache];
  }

  resetCache(): void {
    this.kvCache.forEach((_, l) => {
      this.cacheLayer(l, null);
    });
  }

  /**
   * Gives back blocks that runGraph emitted once the caller is done with them (sent), so that the next
   * run writes its K/V into the same host buffers. Blocks not from the pool are ignored.
   */
  recycle(blocks: readonly KvBlock[]): void {
    for (const b of blocks) this.pool?.release(b.key.buffer);
  }

  /** The K/V buffer pool's counters (null: onnxruntime-node's IO path, which has none). */
  kvPoolStats() {
    return this.pool?.stats() ?? null;
  }

  async release(): Promise<void> {
    if (this.chunk) this.dropChunk(this.chunk);
    this.pool?.clear();
    await Promise.all(this.sessions.map((s) => s.release()));
  }

  /** Replaces a layer's cache, letting go of the pooled buffer the old one held (if any). */
  private cacheLayer(layer: number, block: KvBlock | null): void {
    const old = this.kvCache[layer];
    if (old && old.key !== block?.key) this.pool?.release(old.key.buffer);
    this.kvCache[layer] = block;
  }

  /** One pooled buffer holding a layer's K then V for `tokens` tokens; null when the pool is full. */
  private takeKvBuffers(tokens: number): { key: HostArray; value: HostArray } | null {
    const elements = tokens * this.kvRowElements;
    const width = bytesPerElement(this.info.dtype);
    const buffer = this.pool?.take(2 * elements * width);
    if (!buffer) return null;
    const view = (offset: number) =>
      this.info.dtype === 'float32'
        ? new Float32Array(buffer, offset, elements)
        : new Uint16Array(buffer, offset, elements);
    return { key: view(SLOT_HEADER_BYTES), value: view(SLOT_HEADER_BYTES + elements * width) };
  }

  /** Lets go of what a chunk still held: its own K/V buffers and device values. */
  private dropChunk(chunk: Chunk): void {
    for (const block of chunk.own.values()) this.pool?.release(block.key.buffer);
    chunk.own.clear();
    releaseDeviceValues(chunk.carry);
    chunk.carry = {};
  }
}

/** The layer of a K or V output name, or null. */
function layerOfKv(name: string): number | null {
  const m = /^(?:key|value)\.(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}

function releaseDeviceValues(values: Record<string, GraphValue>): void {
  for (const v of Object.values(values)) if (!isHostValue(v)) v.release();
}

function copyBlock(b: KvBlock): KvBlock {
  return { tokens: b.tokens, key: b.key.slice(), value: b.value.slice() };
}

function concat(a: HostArray, b: HostArray): HostArray {
  if (a.length === 0) return b;
  const out =
    a instanceof Float32Array ? new Float32Array(a.length + b.length) : new Uint16Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
