// The model on onnxruntime, one layer at a time. It lives in a worker thread (compute-thread.ts)
// because InferenceSession.run() is synchronous native work that would otherwise stall every gRPC
// stream of the process. It holds what stays local to a rank between calls — the hidden state, the
// current layer's queries and own K/V, and (when asked) the KV-cache for decoding — so only K/V that
// must cross to another rank ever leave this thread.
import { performance } from 'node:perf_hooks';
import {
  IO,
  buildEmbedGraph,
  buildHeadGraph,
  buildLayerAttentionGraph,
  buildLayerQkvGraph,
} from '../model/llama-graphs.ts';
import { loadModelWeights, type ModelRef } from '../model/load.ts';
import { allocate, type ComputeDType, type HostArray } from '../model/tensor.ts';
import type { ModelConfig } from '../model/config.ts';
import {
  Tensor,
  checkExecutionProvider,
  createSession,
  type OrtTensor,
  type Session,
  type SessionSettings,
} from './ort.ts';

export interface EngineSpec extends ModelRef, SessionSettings {}

/** Keys and values of a token range, token-major [tokens, kvHeads, headDim]. */
export interface KvBlock {
  readonly tokens: number;
  readonly key: HostArray;
  readonly value: HostArray;
}

export interface EngineInfo {
  readonly config: ModelConfig;
  readonly dtype: ComputeDType;
  readonly fingerprint: string;
  readonly description: string;
  readonly loadMs: number;
}

export type LoadProgress = (done: number, total: number, what: string) => void;

interface LayerSessions {
  readonly qkv: Session;
  readonly attn: Session;
}

interface Projected {
  readonly query: OrtTensor;
  readonly key: OrtTensor;
  readonly value: OrtTensor;
}

export class LayerEngine {
  private hidden: OrtTensor | null = null;
  private positions: BigInt64Array = new BigInt64Array(0);
  private readonly projected = new Map<number, Projected>();
  private readonly kvCache: (KvBlock | null)[];
  private readonly info: EngineInfo;
  private readonly embedSession: Session;
  private readonly layers: readonly LayerSessions[];
  private readonly headSession: Session;
  private readonly kvRowElements: number;

  private constructor(info: EngineInfo, embed: Session, layers: LayerSessions[], head: Session) {
    this.info = info;
    this.embedSession = embed;
    this.layers = layers;
    this.headSession = head;
    this.kvCache = layers.map(() => null);
    this.kvRowElements = info.config.numKvHeads * info.config.headDim;
  }

  static async create(spec: EngineSpec, progress: LoadProgress = () => undefined): Promise<LayerEngine> {
    const started = performance.now();
    checkExecutionProvider(spec.ep);
    const weights = await loadModelWeights(spec);
    const { config, dtype } = weights;
    const total = config.numLayers + 2;
    progress(0, total, 'embedding');
    const embed = await createSession(buildEmbedGraph(config, dtype, await weights.embedding()), spec);
    const layers: LayerSessions[] = [];
    for (let l = 0; l < config.numLayers; l++) {
      progress(l + 1, total, `layer ${l}`);
      const w = await weights.layer(l);
      const qkv = await createSession(buildLayerQkvGraph(config, dtype, l, w), spec);
      const attn = await createSession(buildLayerAttentionGraph(config, dtype, l, w), spec);
      layers.push({ qkv, attn });
    }
    progress(total - 1, total, 'head');
    const head = await createSession(
      buildHeadGraph(config, dtype, await weights.finalNorm(), await weights.lmHead()),
      spec,
    );
    progress(total, total, 'ready');
    const info: EngineInfo = {
      config,
      dtype,
      fingerprint: weights.fingerprint,
      description: weights.description,
      loadMs: performance.now() - started,
    };
    return new LayerEngine(info, embed, layers, head);
  }

  get engineInfo(): EngineInfo {
    return this.info;
  }

  private tensor(data: HostArray, dims: readonly number[]): OrtTensor {
    return new Tensor(this.info.dtype, data, dims);
  }

  private kvTensor(data: HostArray, tokens: number): OrtTensor {
    return this.tensor(data, [tokens, this.info.config.numKvHeads, this.info.config.headDim]);
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
  async embed(ids: readonly number[], start: number): Promise<void> {
    if (ids.length === 0) throw new Error('embed: a chunk needs at least one token');
    const vocab = this.info.config.vocabSize;
    const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    if (bad !== undefined) throw new Error(`embed: token id ${bad} is outside the vocabulary [0, ${vocab})`);
    const idTensor = new Tensor('int64', BigInt64Array.from(ids, BigInt), [ids.length]);
    const out = await this.embedSession.run({ [IO.ids]: idTensor });
    this.hidden = out[IO.hidden] ?? null;
    this.positions = BigInt64Array.from(ids, (_, i) => BigInt(start + i));
    this.projected.clear();
  }

  private currentHidden(): OrtTensor {
    if (!this.hidden) throw new Error('no chunk: call embed() first');
    return this.hidden;
  }

  /** Q, K, V of the chunk at `layer`; returns the chunk's own K/V (a copy stays here for attention). */
  async project(layer: number): Promise<KvBlock> {
    const sessions = this.sessionsOf(layer);
    const out = await sessions.qkv.run({
      [IO.hidden]: this.currentHidden(),
      [IO.positions]: new Tensor('int64', this.positions, [this.positions.length]),
    });
    const projected = { query: out[IO.query]!, key: out[IO.key]!, value: out[IO.value]! };
    this.projected.set(layer, projected);
    const tokens = this.positions.length;
    return {
      tokens,
      key: (projected.key.data as HostArray).slice(),
      value: (projected.value.data as HostArray).slice(),
    };
  }

  /**
   * Attention and MLP of the chunk at `layer`, over `past` (positions [0, start)) and the chunk's own
   * K/V, followed by `later` (positions after the chunk; TSP only). Keeps the present K/V as this
   * layer's cache when `keep` is set.
   */
  async attend(layer: number, past: KvBlock | null, later: KvBlock | null, keep: boolean): Promise<void> {
    const sessions = this.sessionsOf(layer);
    const own = this.projected.get(layer);
    if (!own) throw new Error(`attend(${layer}): project(${layer}) was not called for this chunk`);
    const start = Number(this.positions[0]);
    const p = past ?? this.emptyKv();
    this.checkKv(p, `attend(${layer}) past`);
    if (p.tokens !== start)
      throw new Error(`attend(${layer}): past holds ${p.tokens} tokens, the chunk starts at ${start}`);
    let key = own.key;
    let value = own.value;
    if (later && later.tokens > 0) {
      this.checkKv(later, `attend(${layer}) later`);
      const tokens = this.positions.length + later.tokens;
      key = this.kvTensor(concat(own.key.data as HostArray, later.key), tokens);
      value = this.kvTensor(concat(own.value.data as HostArray, later.value), tokens);
    }
    const fetches = keep ? [IO.hiddenOut, IO.presentKey, IO.presentValue] : [IO.hiddenOut];
    const out = await sessions.attn.run(
      {
        [IO.query]: own.query,
        [IO.key]: key,
        [IO.value]: value,
        [IO.pastKey]: this.kvTensor(p.key, p.tokens),
        [IO.pastValue]: this.kvTensor(p.value, p.tokens),
        [IO.residual]: this.currentHidden(),
      },
      fetches,
    );
    this.hidden = out[IO.hiddenOut]!;
    this.projected.delete(layer);
    if (keep) {
      const k = out[IO.presentKey]!;
      const v = out[IO.presentValue]!;
      this.kvCache[layer] = { tokens: k.dims[0]!, key: k.data as HostArray, value: v.data as HostArray };
    }
  }

  /** The whole stack for one chunk, attending over (and extending) the local KV-cache. */
  async forward(ids: readonly number[], start: number): Promise<void> {
    await this.embed(ids, start);
    for (let l = 0; l < this.layers.length; l++) {
      await this.project(l);
      await this.attend(l, this.kvCache[l] ?? (start === 0 ? null : this.missingCache(l, start)), null, true);
    }
  }

  private missingCache(layer: number, start: number): never {
    throw new Error(
      `forward at position ${start}: layer ${layer} has no KV-cache; prefill positions [0, ${start}) first`,
    );
  }

  /** Float32 logits of the last `rows` positions of the current chunk, [rows, vocab]. */
  async logits(rows = 1): Promise<Float32Array> {
    const hidden = this.currentHidden();
    const tokens = hidden.dims[0]!;
    const d = this.info.config.hiddenSize;
    if (rows < 1 || rows > tokens) throw new Error(`logits: rows must be in [1, ${tokens}], got ${rows}`);
    const data = (hidden.data as HostArray).subarray((tokens - rows) * d);
    const out = await this.headSession.run({ [IO.hidden]: this.tensor(data, [rows, d]) });
    return out[IO.logits]!.data as Float32Array;
  }

  setCache(layer: number, block: KvBlock): void {
    this.sessionsOf(layer);
    this.checkKv(block, `setCache(${layer})`);
    this.kvCache[layer] = block;
  }

  cache(): (KvBlock | null)[] {
    return [...this.kvCache];
  }

  resetCache(): void {
    this.kvCache.fill(null);
  }

  private sessionsOf(layer: number): LayerSessions {
    const s = this.layers[layer];
    if (!s) throw new Error(`layer ${layer} does not exist (the model has ${this.layers.length})`);
    return s;
  }

  async release(): Promise<void> {
    await Promise.all([
      this.embedSession.release(),
      this.headSession.release(),
      ...this.layers.flatMap((l) => [l.qkv.release(), l.attn.release()]),
    ]);
  }
}

function concat(a: HostArray, b: HostArray): HostArray {
  const out =
    a instanceof Float32Array ? new Float32Array(a.length + b.length) : new Uint16Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
