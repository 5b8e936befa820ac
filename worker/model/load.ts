// Resolve a model reference — a checkpoint directory or `synthetic:<preset>` — to its weights.
import { openCheckpoint } from './checkpoint.ts';
import { syntheticWeights } from './synthetic.ts';
import type { ComputeDType } from './tensor.ts';
import type { ModelWeights } from './weights.ts';

export const SYNTHETIC_PREFIX = 'synthetic:';

export interface ModelRef {
  /** A checkpoint directory, or `synthetic:<preset>`. */
  readonly model: string;
  /** Seed of a synthetic model (ignored for checkpoints). */
  readonly seed: number;
  readonly dtype: ComputeDType;
}

export function isSynthetic(model: string): boolean {
  return model.startsWith(SYNTHETIC_PREFIX);
}

export async function loadModelWeights(ref: ModelRef): Promise<ModelWeights> {
  if (isSynthetic(ref.model))
    return syntheticWeights(ref.model.slice(SYNTHETIC_PREFIX.length), ref.seed, ref.dtype);
  return openCheckpoint(ref.model, ref.dtype);
}
