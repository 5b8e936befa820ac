// The Llama forward pass as ONNX graphs, one builder function per graph:
//
//   embed:        ids[T]                                  → hidden[T, D]
//   layer_qkv(l): hidden[T, D], positions[T]              → query[T, H, hd], key[T, Hkv, hd], value[T, Hkv, hd]
//   layer_attn(l): query, key/value of the new positions [N], past key/value of [0, P), residual[T, D]
//                                                         → hidden[T, D], present key/value [0, P+N)
//   head:         hidden[T, D]                            → logits[T, V] (float32)
//
// A layer is split in two so that a rank has its own chunk's K/V *before* attention runs: KV-Runahead
// forwards them to the next rank while this one attends (PAPER.md, "per-layer granularity").
// layer_attn is the decoder-with-past step: queries sit at absolute positions P..P+T-1 and may see
// keys 0..P+t. With N = T it is a prefill chunk or one decoding step; with N > T (TSP, where a rank
// holds the keys of later ranks too) the same causal rule masks the future.
//
// K/V are token-major [tokens, Hkv, hd] so that a token range is one contiguous slice: appending a
// chunk is a Concat along axis 0, and a frame on the wire is a plain sub-array.
import { GraphBuilder, int, ints, type TensorDType } from '../onnx/graph-builder.ts';
import type { ModelConfig, RopeScaling } from './config.ts';
import type { ComputeDType, HostArray } from './tensor.ts';
import type { LayerWeights } from './weights.ts';

/** Value names of graph inputs and outputs: the runtime feeds and fetches by these. */
export const IO = {
  ids: 'input_ids',
  hidden: 'hidden',
  positions: 'position_ids',
  query: 'query',
  key: 'key',
  value: 'value',
  pastKey: 'past_key',
  pastValue: 'past_value',
  residual: 'residual',
  presentKey: 'present_key',
  presentValue: 'present_value',
  hiddenOut: 'hidden_out',
  logits: 'logits',
} as const;

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

function weight(
  g: GraphBuilder,
  name: string,
  dtype: ComputeDType,
  dims: readonly number[],
  data: HostArray,
): string {
  return g.initializer(name, dtype, dims, data);
}

/** x·Wᵀ (+ b), W stored [out, in] as in the checkpoint. */
function linear(g: GraphBuilder, x: string, w: string, bias: string | null): string {
  return g.node('Gemm', bias ? [x, w, bias] : [x, w], { transB: int(1) });
}

/** RMSNorm in float32 then back to the compute dtype, times the weight (transformers' LlamaRMSNorm). */
function rmsNorm(g: GraphBuilder, x: string, w: string, eps: number, dtype: ComputeDType): string {
  const x32 = dtype === 'float32' ? x : g.node('Cast', [x], { to: int(1) });
  const variance = g.node('ReduceMean', [g.node('Mul', [x32, x32])], { axes: ints([-1]), keepdims: int(1) });
  const inv = g.node('Reciprocal', [
    g.node('Sqrt', [g.node('Add', [variance, g.float32s('eps', [eps], [])])]),
  ]);
  const normed32 = g.node('Mul', [x32, inv]);
  const normed = dtype === 'float32' ? normed32 : g.node('Cast', [normed32], { to: int(10) });
  return g.node('Mul', [w, normed]);
}

/** rotate_half(x) = concat(-x2, x1) over the last axis, x = [x1 | x2]. */
function rotateHalf(g: GraphBuilder, x: string, headDim: number): string {
  const half = g.int64s('rope_half_split', [headDim / 2, headDim / 2]);
  const [x1, x2] = g.nodeN('Split', [x, half], 2, { axis: int(-1) });
  return g.node('Concat', [g.node('Neg', [x2!]), x1!], { axis: int(-1) });
}

function dtypeCode(dtype: ComputeDType): number {
  return dtype === 'float32' ? 1 : 10;
}

function computeDType(dtype: ComputeDType): TensorDType {
  return dtype;
}

export function buildEmbedGraph(config: ModelConfig, dtype: ComputeDType, table: HostArray): Uint8Array {
  const g = new GraphBuilder('embed');
  const ids = g.input(IO.ids, 'int64', ['T']);
  const w = weight(g, 'model.embed_tokens.weight', dtype, [config.vocabSize, config.hiddenSize], table);
  g.output(g.node('Gather', [w, ids], { axis: int(0) }), IO.hidden, dtype, ['T', config.hiddenSize]);
  return g.toBytes();
}

export function buildLayerQkvGraph(
  config: ModelConfig,
  dtype: ComputeDType,
  layer: number,
  weights: Pick<LayerWeights, 'inputNorm' | 'qkv' | 'qkvBias'>,
): Uint8Array {
  const { hiddenSize: D, numHeads: H, numKvHeads: Hkv, headDim: hd } = config;
  const g = new GraphBuilder(`layer${layer}_qkv`);
  const hidden = g.input(IO.hidden, computeDType(dtype), ['T', D]);
  const positions = g.input(IO.positions, 'int64', ['T']);
  const qkvRows = (H + 2 * Hkv) * hd;
  const wNorm = weight(g, `layers.${layer}.input_layernorm.weight`, dtype, [D], weights.inputNorm);
  const wQkv = weight(g, `layers.${layer}.self_attn.qkv_proj.weight`, dtype, [qkvRows, D], weights.qkv);
  const bQkv = weights.qkvBias
    ? weight(g, `layers.${layer}.self_attn.qkv_proj.bias`, dtype, [qkvRows], weights.qkvBias)
    : null;

  const x = rmsNorm(g, hidden, wNorm, config.rmsNormEps, dtype); // [T, D]
  const qkv = linear(g, x, wQkv, bQkv); // [T, (H + 2Hkv)·hd]
  const [q, k, v] = g.nodeN('Split', [qkv, g.int64s('qkv_split', [H * hd, Hkv * hd, Hkv * hd])], 3, {
    axis: int(1),
  });
  const query = g.node('Reshape', [q!, g.int64s('q_shape', [0, H, hd])]); // [T, H, hd]
  const key = g.node('Reshape', [k!, g.int64s('kv_shape', [0, Hkv, hd])]); // [T, Hkv, hd]
  const value = g.node('Reshape', [v!, g.int64s('kv_shape', [0, Hkv, hd])]);

  // RoPE at absolute positions: angle[t, i] = pos[t]·inv_freq[i], in float32 like transformers.
  const invFreq = g.float32s('inv_freq', ropeInverseFrequencies(hd, config.ropeTheta, config.ropeScaling), [
    1,
    hd / 2,
  ]);
  const pos = g.node('Unsqueeze', [g.node('Cast', [positions], { to: int(1) }), g.int64s('axis1', [1])]); // [T, 1]
  const freqs = g.node('Mul', [pos, invFreq]); // [T, hd/2]
  const angles = g.node('Concat', [freqs, freqs], { axis: int(-1) }); // [T, hd]
  const toDtype = (t: string) =>
    dtype === 'float32' ? t : g.node('Cast', [t], { to: int(dtypeCode(dtype)) });
  const cos = g.node('Unsqueeze', [toDtype(g.node('Cos', [angles])), g.int64s('axis1', [1])]); // [T, 1, hd]
  const sin = g.node('Unsqueeze', [toDtype(g.node('Sin', [angles])), g.int64s('axis1', [1])]);
  const rope = (t: string) =>
    g.node('Add', [g.node('Mul', [t, cos]), g.node('Mul', [rotateHalf(g, t, hd), sin])]);

  g.output(rope(query), IO.query, dtype, ['T', H, hd]);
  g.output(rope(key), IO.key, dtype, ['T', Hkv, hd]);
  g.output(value, IO.value, dtype, ['T', Hkv, hd]);
  return g.toBytes();
}

export function buildLayerAttentionGraph(
  config: ModelConfig,
  dtype: ComputeDType,
  layer: number,
  weights: Omit<LayerWeights, 'inputNorm' | 'qkv' | 'qkvBias'>,
): Uint8Array {
  const { hiddenSize: D, numHeads: H, numKvHeads: Hkv, headDim: hd, intermediateSize: I } = config;
  const G = H / Hkv; // query heads per kv head
  const g = new GraphBuilder(`layer${layer}_attn`);
  const dt = computeDType(dtype);
  const query = g.input(IO.query, dt, ['T', H, hd]);
  const key = g.input(IO.key, dt, ['N', Hkv, hd]);
  const value = g.input(IO.value, dt, ['N', Hkv, hd]);
  const pastKey = g.input(IO.pastKey, dt, ['P', Hkv, hd]);
  const pastValue = g.input(IO.pastValue, dt, ['P', Hkv, hd]);
  const residual = g.input(IO.residual, dt, ['T', D]);
  const w = (name: string, dims: readonly number[], data: HostArray) =>
    weight(g, `layers.${layer}.${name}`, dtype, dims, data);
  const wO = w('self_attn.o_proj.weight', [D, H * hd], weights.o);
  const bO = weights.oBias ? w('self_attn.o_proj.bias', [D], weights.oBias) : null;
  const wPost = w('post_attention_layernorm.weight', [D], weights.postNorm);
  const wGateUp = w('mlp.gate_up_proj.weight', [2 * I, D], weights.gateUp);
  const bGateUp = weights.gateUpBias ? w('mlp.gate_up_proj.bias', [2 * I], weights.gateUpBias) : null;
  const wDown = w('mlp.down_proj.weight', [D, I], weights.down);
  const bDown = weights.downBias ? w('mlp.down_proj.bias', [D], weights.downBias) : null;

  const presentKey = g.node('Concat', [pastKey, key], { axis: int(0) }, IO.presentKey); // [S, Hkv, hd], S = P + N
  const presentValue = g.node('Concat', [pastValue, value], { axis: int(0) }, IO.presentValue);

  // Sizes as 1-D int64 tensors: P (past), T (queries), S (keys).
  const dim0 = (t: string) => g.node('Shape', [t], { start: int(0), end: int(1) });
  const P = dim0(pastKey);
  const T = dim0(query);
  const S = dim0(presentKey);
  const scalar = (t: string) => g.node('Squeeze', [t, g.int64s('axis0', [0])]);
  const zero = g.int64Scalar('zero', 0);
  const one = g.int64Scalar('one', 1);

  // Causal mask for queries at absolute positions P..P+T-1 over keys 0..S-1: key s visible iff s ≤ P + t.
  const queryPos = g.node('Range', [scalar(P), g.node('Add', [scalar(P), scalar(T)]), one]); // [T]
  const keyPos = g.node('Range', [zero, scalar(S), one]); // [S]
  const visible = g.node('LessOrEqual', [
    g.node('Unsqueeze', [keyPos, g.int64s('axis0', [0])]), // [1, S]
    g.node('Unsqueeze', [queryPos, g.int64s('axis1', [1])]), // [T, 1]
  ]); // [T, S]
  const mask = g.node('Where', [
    visible,
    g.float32s('mask_open', [0], []),
    g.float32s('mask_closed', [FLOAT32_MIN], []),
  ]);

  // Grouped-query attention without repeating K/V: query head h = j·G + g uses kv head j, so the G
  // query heads of kv head j are stacked into one [G·T, hd] matrix against that head's keys.
  const qGrouped = g.node('Reshape', [
    g.node('Transpose', [g.node('Reshape', [query, g.int64s('q_group_shape', [0, Hkv, G, hd])])], {
      perm: ints([1, 2, 0, 3]),
    }),
    g.int64s('q_stack_shape', [Hkv, -1, hd]),
  ]); // [Hkv, G·T, hd]
  const kT = g.node('Transpose', [presentKey], { perm: ints([1, 2, 0]) }); // [Hkv, hd, S]
  const vH = g.node('Transpose', [presentValue], { perm: ints([1, 0, 2]) }); // [Hkv, S, hd]
  const scale =
    dtype === 'float32'
      ? g.float32s('scale', [1 / Math.sqrt(hd)], [])
      : g.initializer('scale', 'float16', [], f16Scalar(1 / Math.sqrt(hd)));
  const scores = g.node('Mul', [g.node('MatMul', [qGrouped, kT]), scale]); // [Hkv, G·T, S]
  const scoresShape = g.node('Concat', [g.int64s('score_lead', [Hkv, G]), T, S], { axis: int(0) });
  const scores4 = g.node('Reshape', [scores, scoresShape]); // [Hkv, G, T, S]
  const scores32 = dtype === 'float32' ? scores4 : g.node('Cast', [scores4], { to: int(1) });
  // Softmax in float32, as transformers does, then back to the compute dtype.
  const probs32 = g.node('Softmax', [g.node('Add', [scores32, mask])], { axis: int(-1) });
  const probs = dtype === 'float32' ? probs32 : g.node('Cast', [probs32], { to: int(10) });
  const probsStackShape = g.node('Concat', [g.int64s('probs_lead', [Hkv, -1]), S], { axis: int(0) });
  const context = g.node('MatMul', [g.node('Reshape', [probs, probsStackShape]), vH]); // [Hkv, G·T, hd]
  const contextShape = g.node('Concat', [g.int64s('ctx_lead', [Hkv, G]), T, g.int64s('ctx_hd', [hd])], {
    axis: int(0),
  });
  const merged = g.node('Reshape', [
    g.node('Transpose', [g.node('Reshape', [context, contextShape])], { perm: ints([2, 0, 1, 3]) }), // [T, Hkv, G, hd]
    g.int64s('merge_shape', [0, H * hd]),
  ]); // [T, H·hd]
  const h1 = g.node('Add', [residual, linear(g, merged, wO, bO)]); // [T, D]

  // SwiGLU MLP: down(silu(gate(x)) · up(x)).
  const x2 = rmsNorm(g, h1, wPost, config.rmsNormEps, dtype);
  const [gate, up] = g.nodeN(
    'Split',
    [linear(g, x2, wGateUp, bGateUp), g.int64s('gate_up_split', [I, I])],
    2,
    { axis: int(1) },
  );
  const silu = g.node('Mul', [gate!, g.node('Sigmoid', [gate!])]);
  const out = g.node('Add', [h1, linear(g, g.node('Mul', [silu, up!]), wDown, bDown)]);

  g.output(out, IO.hiddenOut, dtype, ['T', D]);
  g.output(presentKey, IO.presentKey, dtype, ['S', Hkv, hd]);
  g.output(presentValue, IO.presentValue, dtype, ['S', Hkv, hd]);
  return g.toBytes();
}

export function buildHeadGraph(
  config: ModelConfig,
  dtype: ComputeDType,
  norm: HostArray,
  lmHead: HostArray,
): Uint8Array {
  const g = new GraphBuilder('head');
  const hidden = g.input(IO.hidden, computeDType(dtype), ['T', config.hiddenSize]);
  const wNorm = weight(g, 'model.norm.weight', dtype, [config.hiddenSize], norm);
  const wHead = weight(g, 'lm_head.weight', dtype, [config.vocabSize, config.hiddenSize], lmHead);
  const logits = linear(g, rmsNorm(g, hidden, wNorm, config.rmsNormEps, dtype), wHead, null);
  g.output(dtype === 'float32' ? logits : g.node('Cast', [logits], { to: int(1) }), IO.logits, 'float32', [
    'T',
    config.vocabSize,
  ]);
  return g.toBytes();
}

function f16Scalar(value: number): Uint16Array {
  const half = new Float16Array([value]);
  return new Uint16Array(half.buffer);
}
