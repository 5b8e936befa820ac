// What the graph builder needs from a model, whatever its origin (a checkpoint directory or a
// synthetic preset): one config and the weight arrays in the compute dtype, in Hugging Face's
// [out, in] layout. Projections that run on the same input are fused (q|k|v, gate|up) so that a
// layer does one matrix product where the checkpoint has three.
import type { ModelConfig } from './config.ts';
import type { ComputeDType, HostArray } from './tensor.ts';

export interface LayerWeights {
  /** [hidden] */
  readonly inputNorm: HostArray;
  /** [(heads + 2·kvHeads)·headDim, hidden]: q rows, then k rows, then v rows. */
  readonly qkv: HostArray;
  readonly qkvBias: HostArray | null;
  /** [hidden, heads·headDim] */
  readonly o: HostArray;
  readonly oBias: HostArray | null;
  /** [hidden] */
  readonly postNorm: HostArray;
  /** [2·intermediate, hidden]: gate rows, then up rows. */
  readonly gateUp: HostArray;
  readonly gateUpBias: HostArray | null;
  /** [hidden, intermediate] */
  readonly down: HostArray;
  readonly downBias: HostArray | null;
}

export interface ModelWeights {
  readonly config: ModelConfig;
  readonly dtype: ComputeDType;
  /** Identifies the exact weights: ranks refuse a peer whose fingerprint differs. */
  readonly fingerprint: string;
  /** Human-readable origin, for logs. */
  readonly description: string;
  /** [vocab, hidden] */
  embedding(): Promise<HostArray>;
  /** [hidden] */
  finalNorm(): Promise<HostArray>;
  /** [vocab, hidden]; the embedding itself when the model ties them. */
  lmHead(): Promise<HostArray>;
  layer(index: number): Promise<LayerWeights>;
}

/** Row-wise concatenation of [rows_i, cols] matrices stored row-major. */
export function concatRows(parts: readonly HostArray[]): HostArray {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const first = parts[0];
  if (!first) throw new Error('concatRows: nothing to concatenate');
  const out = first instanceof Float32Array ? new Float32Array(total) : new Uint16Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Shapes of every weight of one layer, in [out, in] order (checkpoint names are in checkpoint.ts). */
export function layerShapes(c: ModelConfig) {
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  return {
    qProj: [q, c.hiddenSize],
    kProj: [kv, c.hiddenSize],
    vProj: [kv, c.hiddenSize],
    oProj: [c.hiddenSize, q],
    gateProj: [c.intermediateSize, c.hiddenSize],
    upProj: [c.intermediateSize, c.hiddenSize],
    downProj: [c.hiddenSize, c.intermediateSize],
    norm: [c.hiddenSize],
  } as const;
}
