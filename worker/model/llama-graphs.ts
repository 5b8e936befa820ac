// The Llama forward pass as ONNX graphs. A layer is two *stages*: project(l) — norm, the q|k|v
// projection and RoPE — and attend(l) — attention over the past and the chunk, o-proj, MLP. Stage
// 2l is project(l), stage 2l+1 is attend(l). One graph covers a range of stages [from, to):
//
//   inputs   input_ids[T] (from = 0) | hidden[T, D] (the residual stream), and when the range starts
//            at attend(a): query.a [T, H, hd], key.a / value.a [T, Hkv, hd];
//            position_ids[T] (absolute positions) when the range holds a projection;
//            past_key.l / past_value.l [P, Hkv, hd] for each attend(l) in the range — positions [0, P)
//   outputs  key.l / value.l [T, Hkv, hd] for each project(l) in the range — the chunk's own K/V;
//            logits[1, V] float32 of the last position (to = 2L) | hidden_out[T, D], and when the
//            range ends after project(e): query.e
//
// Why stages: a chain rank can only attend at layer l once its predecessor's K/V(l) are there, but it
// can project (and forward its own K/V) before; so a rank's graphs are cut right after a projection
// (KV-Runahead's early send, TSP's all-gather per layer). Why ranges: on a GPU every value that leaves
// a graph crosses the host (DEVICE.md), so one rank alone runs a single graph of every stage, and a
// chain rank a few graphs of k layers.
//
// Queries sit at absolute positions P..P+T-1 and see keys 0..P+t: the same graphs serve a whole
// prompt (P = 0), a chunk of a chain rank and one decoding step (T = 1).
//
// Two implementations of RoPE + attention, with one contract:
// - fused: onnxruntime's com.microsoft.RotaryEmbedding and GroupQueryAttention (flash attention on
//   CUDA, no T×S score matrix);
// - reference: explicit ops (rotate_half, Q·Kᵀ, a float32 softmax over a materialized causal mask),
//   for what GroupQueryAttention cannot run (head sizes not a multiple of 16, float32 on CUDA), and
//   as the independent check of the fused graphs.
//
// K/V are token-major [tokens, Hkv, hd] so that a token range is one contiguous slice: a frame on
// the wire is a plain sub-array and appending a chunk is a concatenation.
import { GraphBuilder, float, int, ints, type BuiltModel } from '../onnx/graph-builder.ts';
import type { ModelConfig, RopeScaling } from './config.ts';
import type { ComputeDType, HostArray } from './tensor.ts';
import type { LayerWeights } from './weights.ts';

/** Value names of graph inputs and outputs: the runtime feeds and fetches by these. */
export const IO = {
  ids: 'input_ids',
  positions: 'position_ids',
  hidden: 'hidden',
  hiddenOut: 'hidden_out',
  logits: 'logits',
  pastKey: (layer: number) => `past_key.${layer}`,
  pastValue: (layer: number) => `past_value.${layer}`,
  query: (layer: number) => `query.${layer}`,
  key: (layer: number) => `key.${layer}`,
  value: (layer: number) => `value.${layer}`,
} as const;

export type AttentionKind = 'fused' | 'reference';

/** Stages [from, to) of a model of L layers: stage 2l is project(l), 2l+1 is attend(l). */
export interface StageRange {
  readonly from: number;
  readonly to: number;
}

export const isProject = (stage: number) => stage % 2 === 0;
export const layerOf = (stage: number) => Math.floor(stage / 2);

/** The model's parameters a stage graph may need. */
export interface StageWeights {
  layer(index: number): LayerWeights;
  readonly embedding: HostArray;
  readonly finalNorm: HostArray;
  readonly lmHead: HostArray;
}

const FLOAT32_MIN = -3.4028234663852886e38;

/** Rotary inverse frequencies, as transformers computes them (rope_type default, linear, llama3). */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling: RopeScaling): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim)));
  if (scaling.ropeType === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / scaling.factor;
  } else if (scaling.ropeType === 'llama3') {
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: old } = scaling;
    const lowFreqWavelen = old / lowFreqFactor;
    const highFreqWavelen = old / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowFreqWavelen) inv[i] = f / factor;
      else if (wavelen >= highFreqWavelen) {
        const smooth = (old / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * (f / factor) + smooth * f;
      }
    }
  }
  return inv;
}

/** The attention a model gets by default on a provider and dtype (see the file comment). */
export function defaultAttention(
  config: Pick<ModelConfig, 'headDim'>,
  ep: string,
  dtype: ComputeDType,
): AttentionKind {
  return attentionProblem('fused', config, ep, dtype) === null ? 'fused' : 'reference';
}

/** Why `kind` cannot run this model on this provider, or null when it can. */
export function attentionProblem(
  kind: AttentionKind,
  config: Pick<ModelConfig, 'headDim'>,
  ep: string,
  dtype: ComputeDType,
): string | null {
  if (kind === 'reference') return null;
  if (config.headDim % 16 !== 0)
    return `fused attention needs a head size that is a multiple of 16 (this model's is ${config.headDim}); use --attention reference`;
  if (ep === 'cuda' && dtype === 'float32')
    return 'fused attention runs in float16 on CUDA; use --dtype float16 or --attention reference';
  if (ep === 'webgpu') return 'fused attention is not measured on webgpu; use --attention reference';
  return null;
}

/** The graph under construction, with the model's shapes and the helpers every stage uses. */
class StageGraph {
  readonly g: GraphBuilder;
  readonly config: ModelConfig;
  readonly dtype: ComputeDType;
  private readonly cache = new Map<string, string>();

  constructor(name: string, config: ModelConfig, dtype: ComputeDType) {
    this.g = new GraphBuilder(name);
    this.config = config;
    this.dtype = dtype;
  }

  /** A value built once per graph (shapes, masks, rotary angles), whatever needs it first. */
  once(key: string, make: () => string): string {
    let v = this.cache.get(key);
    if (v === undefined) {
      v = make();
      this.cache.set(key, v);
    }
    return v;
  }

  weight(name: string, dims: readonly number[], data: HostArray): string {
    return this.g.initializer(name, this.dtype, dims, data);
  }

  /** x·Wᵀ (+ b), W stored [out, in] as in the checkpoint. */
  linear(x: string, w: string, bias: string | null): string {
    return this.g.node('Gemm', bias ? [x, w, bias] : [x, w], { transB: int(1) });
  }

  /** RMSNorm (transformers' LlamaRMSNorm), accumulated in float32 whatever the dtype. */
  rmsNorm(x: string, w: string): string {
    return this.g.node('SimplifiedLayerNormalization', [x, w], {
      axis: int(-1),
      epsilon: float(this.config.rmsNormEps),
      stash_type: int(1),
    });
  }

  toCompute(t: string): string {
    return this.dtype === 'float32' ? t : this.g.node('Cast', [t], { to: int(10) });
  }

  /** A 1-D int64 [1] tensor holding dimension `axis` of `t`. */
  dim(t: string, axis: number): string {
    return this.g.node('Shape', [t], { start: int(axis), end: int(axis + 1) });
  }

  scalar(t: string): string {
    return this.g.node('Squeeze', [t, this.const64('axis0', [0])]);
  }

  const64(name: string, values: readonly number[]): string {
    return this.once(`const:${name}`, () => this.g.int64s(name, values));
  }

  /** position·inv_freq in float32, [T, hd/2], as transformers computes the rotary angles. */
  angles(positions: string): string {
    return this.once('angles', () => {
      const { headDim: hd, ropeTheta, ropeScaling } = this.config;
      const inv = this.g.float32s('inv_freq', ropeInverseFrequencies(hd, ropeTheta, ropeScaling), [
        1,
        hd / 2,
      ]);
      const pos = this.g.node('Unsqueeze', [
        this.g.node('Cast', [positions], { to: int(1) }),
        this.const64('axis1', [1]),
      ]);
      return this.g.node('Mul', [pos, inv]);
    });
  }
}

/** Q, K, V of a chunk after RoPE: query [T, H, hd], key and value [T, Hkv, hd]. */
interface Projection {
  readonly query: string;
  readonly key: string;
  readonly value: string;
}

/** RoPE of x [T, n·hd] → [T, n, hd]. */
type Rope = (x: string, heads: number) => string;

/** Attention of a chunk's projection over this layer's past K/V → mixed heads [T, H·hd]. */
type Attention = (p: Projection, pastKey: string, pastValue: string) => string;

/**
 * com.microsoft.RotaryEmbedding. Its cos/sin tables are indexed by position; they hold the chunk's
 * own positions (row t is position P + t), so no table of every position the model allows is kept.
 */
function fusedRope(s: StageGraph, positions: string): Rope {
  const { g } = s;
  const hd = s.config.headDim;
  const angles = s.angles(positions); // [T, hd/2]
  const cos = s.toCompute(g.node('Cos', [angles]));
  const sin = s.toCompute(g.node('Sin', [angles]));
  const rows = g.node('Unsqueeze', [
    g.node('Range', [g.int64Scalar('zero', 0), s.scalar(s.dim(positions, 0)), g.int64Scalar('one', 1)]),
    s.const64('axis0', [0]),
  ]); // [1, T]
  return (x, heads) =>
    g.node('Reshape', [
      g.node(
        'RotaryEmbedding',
        [g.node('Unsqueeze', [x, s.const64('axis0', [0])]), rows, cos, sin],
        { num_heads: int(heads), interleaved: int(0) },
        undefined,
        'com.microsoft',
      ),
      s.const64(`heads_${heads}`, [-1, heads, hd]),
    ]);
}

/** RoPE by rotate_half: x·cos + rotate_half(x)·sin, angles in float32, products in the compute dtype. */
function referenceRope(s: StageGraph, positions: string): Rope {
  const { g } = s;
  const hd = s.config.headDim;
  const cosSin = s.once('rope_cos_sin', () => {
    const a = s.angles(positions);
    return g.node('Concat', [a, a], { axis: int(-1) }); // [T, hd]
  });
  const unsq = (t: string) => g.node('Unsqueeze', [s.toCompute(t), s.const64('axis1', [1])]); // [T, 1, hd]
  const cos = s.once('ref_cos', () => unsq(g.node('Cos', [cosSin])));
  const sin = s.once('ref_sin', () => unsq(g.node('Sin', [cosSin])));
  return (x, heads) => {
    const t = g.node('Reshape', [x, s.const64(`heads_${heads}`, [-1, heads, hd])]);
    return g.node('Add', [g.node('Mul', [t, cos]), g.node('Mul', [rotateHalf(g, t, hd), sin])]);
  };
}

/** BNSH view [1, Hkv, S, hd] of token-major K/V [S, Hkv, hd], GroupQueryAttention's layout. */
function bnsh(s: StageGraph, kv: string): string {
  return s.g.node('Transpose', [s.g.node('Unsqueeze', [kv, s.const64('axis0', [0])])], {
    perm: ints([0, 2, 1, 3]),
  });
}

/**
 * com.microsoft.GroupQueryAttention over past [0, P) and the chunk [P, P+T), RoPE already applied.
 * Its past input is a buffer with room for the chunk — past and the chunk's own K/V, [1, Hkv, P+T, hd]
 * — and seqlens_k = P+T−1 says where the past ends: the layout onnxruntime's CUDA kernel expects of a
 * past it may reuse as present (given a past of exactly P positions, the CUDA planner reused it for
 * the longer present and failed: "Shape mismatch attempting to re-use buffer {1,4,0,64} != {1,4,512,64}").
 * The chunk's positions hold its own K/V already, so whether the kernel writes them again or not,
 * the buffer ends the same.
 */
function fusedAttention(s: StageGraph): Attention {
  const { g } = s;
  const { numHeads: H, numKvHeads: Hkv, headDim: hd } = s.config;
  const flat = (t: string, heads: number) =>
    g.node('Reshape', [t, s.const64(`flat_${heads}`, [1, -1, heads * hd])]);
  return (p, pastKey, pastValue) => {
    const [totalLength, seqlensK] = [0, 1].map((i) =>
      s.once(`gqa_len_${i}`, () => {
        const total = g.node('Add', [s.dim(pastKey, 0), s.dim(p.query, 0)]); // [1] int64: P + T
        return i === 0
          ? s.scalar(g.node('Cast', [total], { to: int(6) }))
          : g.node('Cast', [g.node('Sub', [total, s.const64('one_1d', [1])])], { to: int(6) });
      }),
    );
    const withRoom = (past: string, own: string) => bnsh(s, g.node('Concat', [past, own], { axis: int(0) })); // [1, Hkv, P+T, hd]
    const [out] = g.nodeN(
      'GroupQueryAttention',
      [
        flat(p.query, H),
        flat(p.key, Hkv),
        flat(p.value, Hkv),
        withRoom(pastKey, p.key),
        withRoom(pastValue, p.value),
        seqlensK!,
        totalLength!,
      ],
      3,
      { num_heads: int(H), kv_num_heads: int(Hkv) },
      undefined,
      'com.microsoft',
    );
    return g.node('Reshape', [out!, s.const64('merged_shape', [-1, H * hd])]);
  };
}

/**
 * Attention in explicit ops: grouped-query attention without repeating K/V (the G query heads of kv
 * head j are stacked into one [G·T, hd] matrix against that head's keys), scores and softmax in
 * float32 over a causal mask for queries at positions P..P+T-1.
 */
function referenceAttention(s: StageGraph): Attention {
  const { g } = s;
  const { numHeads: H, numKvHeads: Hkv, headDim: hd } = s.config;
  const G = H / Hkv;
  const scale =
    s.dtype === 'float32'
      ? g.float32s('scale', [1 / Math.sqrt(hd)], [])
      : g.initializer('scale', 'float16', [], toFloat16Bits(Float32Array.of(1 / Math.sqrt(hd))));
  return (p, pastKey, pastValue) => {
    const P = s.once('ref_P', () => s.dim(pastKey, 0));
    const T = s.once('ref_T', () => s.dim(p.query, 0));
    const S = s.once('ref_S', () => g.node('Add', [P, T]));
    const mask = s.once('ref_mask', () => {
      const one = g.int64Scalar('one', 1);
      const queryPos = g.node('Range', [s.scalar(P), s.scalar(S), one]); // [T]
      const keyPos = g.node('Range', [g.int64Scalar('zero', 0), s.scalar(S), one]); // [S]
      const visible = g.node('LessOrEqual', [
        g.node('Unsqueeze', [keyPos, s.const64('axis0', [0])]), // [1, S]
        g.node('Unsqueeze', [queryPos, s.const64('axis1', [1])]), // [T, 1]
      ]); // [T, S]: key s visible to the query at position q iff s ≤ q
      return g.node('Where', [
        visible,
        g.float32s('mask_open', [0], []),
        g.float32s('mask_closed', [FLOAT32_MIN], []),
      ]);
    });
    const scoresShape = s.once('ref_scores_shape', () =>
      g.node('Concat', [s.const64('score_lead', [Hkv, G]), T, S], { axis: int(0) }),
    );
    const probsShape = s.once('ref_probs_shape', () =>
      g.node('Concat', [s.const64('probs_lead', [Hkv, -1]), S], { axis: int(0) }),
    );
    const contextShape = s.once('ref_ctx_shape', () =>
      g.node('Concat', [s.const64('ctx_lead', [Hkv, G]), T, s.const64('ctx_hd', [hd])], { axis: int(0) }),
    );

    const presentKey = g.node('Concat', [pastKey, p.key], { axis: int(0) }); // [S, Hkv, hd]
    const presentValue = g.node('Concat', [pastValue, p.value], { axis: int(0) });
    const qGrouped = g.node('Reshape', [
      g.node('Transpose', [g.node('Reshape', [p.query, s.const64('q_group_shape', [0, Hkv, G, hd])])], {
        perm: ints([1, 2, 0, 3]),
      }),
      s.const64('q_stack_shape', [Hkv, -1, hd]),
    ]); // [Hkv, G·T, hd]
    const kT = g.node('Transpose', [presentKey], { perm: ints([1, 2, 0]) }); // [Hkv, hd, S]
    const vH = g.node('Transpose', [presentValue], { perm: ints([1, 0, 2]) }); // [Hkv, S, hd]
    const scores = g.node('Reshape', [g.node('Mul', [g.node('MatMul', [qGrouped, kT]), scale]), scoresShape]); // [Hkv, G, T, S]
    const scores32 = s.dtype === 'float32' ? scores : g.node('Cast', [scores], { to: int(1) });
    const probs = s.toCompute(g.node('Softmax', [g.node('Add', [scores32, mask])], { axis: int(-1) }));
    const context = g.node('MatMul', [g.node('Reshape', [probs, probsShape]), vH]); // [Hkv, G·T, hd]
    return g.node('Reshape', [
      g.node('Transpose', [g.node('Reshape', [context, contextShape])], { perm: ints([2, 0, 1, 3]) }), // [T, Hkv, G, hd]
      s.const64('merge_shape', [0, H * hd]),
    ]); // [T, H·hd]
  };
}

/** The graph of stages [from, to) (see the file comment for its inputs and outputs). */
export function buildStageGraph(
  config: ModelConfig,
  dtype: ComputeDType,
  range: StageRange,
  weights: StageWeights,
  attention: AttentionKind,
): BuiltModel {
  const {
    hiddenSize: D,
    numHeads: H,
    numKvHeads: Hkv,
    headDim: hd,
    intermediateSize: I,
    vocabSize: V,
  } = config;
  const { from, to } = range;
  const stages = 2 * config.numLayers;
  if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from < to && to <= stages))
    throw new Error(
      `stages [${from}, ${to}) are not a range of a ${config.numLayers}-layer model's ${stages} stages`,
    );
  const s = new StageGraph(`stages_${from}_${to}`, config, dtype);
  const { g } = s;
  let positions: string | null = null;
  const positionIds = () => (positions ??= g.input(IO.positions, 'int64', ['T']));
  let ropeOfGraph: Rope | null = null;
  const rope = () => (ropeOfGraph ??= (attention === 'fused' ? fusedRope : referenceRope)(s, positionIds()));
  const attend = (attention === 'fused' ? fusedAttention : referenceAttention)(s);

  let x: string; // the residual stream [T, D]
  let pending: Projection | null = null;
  if (from === 0) {
    const ids = g.input(IO.ids, 'int64', ['T']);
    x = g.node('Gather', [s.weight('model.embed_tokens.weight', [V, D], weights.embedding), ids], {
      axis: int(0),
    });
  } else {
    x = g.input(IO.hidden, dtype, ['T', D]);
  }
  if (!isProject(from)) {
    const l = layerOf(from);
    pending = {
      query: g.input(IO.query(l), dtype, ['T', H, hd]),
      key: g.input(IO.key(l), dtype, ['T', Hkv, hd]),
      value: g.input(IO.value(l), dtype, ['T', Hkv, hd]),
    };
  }

  for (let stage = from; stage < to; stage++) {
    const l = layerOf(stage);
    const w = weights.layer(l);
    const p = (name: string, dims: readonly number[], data: HostArray) =>
      s.weight(`layers.${l}.${name}`, dims, data);
    if (isProject(stage)) {
      const qkvRows = (H + 2 * Hkv) * hd;
      const qkv = s.linear(
        s.rmsNorm(x, p('input_layernorm.weight', [D], w.inputNorm)),
        p('self_attn.qkv_proj.weight', [qkvRows, D], w.qkv),
        w.qkvBias && p('self_attn.qkv_proj.bias', [qkvRows], w.qkvBias),
      ); // [T, (H + 2Hkv)·hd]
      const [q, k, v] = g.nodeN('Split', [qkv, s.const64('qkv_split', [H * hd, Hkv * hd, Hkv * hd])], 3, {
        axis: int(1),
      });
      const r = rope();
      pending = {
        query: r(q!, H),
        key: r(k!, Hkv),
        value: g.node('Reshape', [v!, s.const64('kv_shape', [-1, Hkv, hd])]),
      };
      g.output(pending.key, IO.key(l), dtype, ['T', Hkv, hd]);
      g.output(pending.value, IO.value(l), dtype, ['T', Hkv, hd]);
    } else {
      if (!pending) throw new Error(`attend(${l}) without its projection`);
      const pastKey = g.input(IO.pastKey(l), dtype, ['P', Hkv, hd]);
      const pastValue = g.input(IO.pastValue(l), dtype, ['P', Hkv, hd]);
      const merged = attend(pending, pastKey, pastValue);
      pending = null;
      const o = s.linear(
        merged,
        p('self_attn.o_proj.weight', [D, H * hd], w.o),
        w.oBias && p('self_attn.o_proj.bias', [D], w.oBias),
      );
      const h1 = g.node('Add', [x, o]); // [T, D]
      // SwiGLU MLP, down(silu(gate(x)) · up(x)); gate and up are two products over views of the
      // fused weight, which spares splitting a [T, 2I] product.
      const x2 = s.rmsNorm(h1, p('post_attention_layernorm.weight', [D], w.postNorm));
      const half = (data: HostArray, at: 0 | 1, n: number) => data.subarray(at * n, (at + 1) * n);
      const gate = s.linear(
        x2,
        p('mlp.gate_proj.weight', [I, D], half(w.gateUp, 0, I * D)),
        w.gateUpBias && p('mlp.gate_proj.bias', [I], half(w.gateUpBias, 0, I)),
      );
      const up = s.linear(
        x2,
        p('mlp.up_proj.weight', [I, D], half(w.gateUp, 1, I * D)),
        w.gateUpBias && p('mlp.up_proj.bias', [I], half(w.gateUpBias, 1, I)),
      );
      const silu = g.node('Mul', [gate, g.node('Sigmoid', [gate])]);
      const down = s.linear(
        g.node('Mul', [silu, up]),
        p('mlp.down_proj.weight', [D, I], w.down),
        w.downBias && p('mlp.down_proj.bias', [D], w.downBias),
      );
      x = g.node('Add', [h1, down]);
    }
  }

  if (pending) {
    g.output(pending.query, IO.query(layerOf(to - 1)), dtype, ['T', H, hd]);
    g.output(x, IO.hiddenOut, dtype, ['T', D]);
  } else if (to === stages) {
    const lastRow = g.node('Sub', [s.dim(x, 0), s.const64('one_1d', [1])]); // [1]
    const last = g.node('Gather', [x, lastRow], { axis: int(0) }); // [1, D]
    const normed = s.rmsNorm(last, s.weight('model.norm.weight', [D], weights.finalNorm));
    const logits = s.linear(normed, s.weight('lm_head.weight', [V, D], weights.lmHead), null);
    g.output(dtype === 'float32' ? logits : g.node('Cast', [logits], { to: int(1) }), IO.logits, 'float32', [
      1,
      V,
    ]);
  } else {
    g.output(x, IO.hiddenOut, dtype, ['T', D]);
  }
  return g.build();
}

/** rotate_half(x) = concat(-x2, x1) over the last axis, x = [x1 | x2]. */
function rotateHalf(g: GraphBuilder, x: string, headDim: number): string {
  const half = g.int64s('rope_half_split', [headDim / 2, headDim / 2]);
  const [x1, x2] = g.nodeN('Split', [x, half], 2, { axis: int(-1) });
  return g.node('Concat', [g.node('Neg', [x2!]), x1!], { axis: int(-1) });
}

/** float32 values as float16 bit patterns (round to nearest even). */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  return new Uint16Array(new Float16Array(values).buffer);
}
