// What the planning commands need to know about a model without loading its weights.
import { inspectCheckpoint } from '../worker/model/checkpoint.ts';
import { parameterCount, type ModelConfig } from '../worker/model/config.ts';
import { isSynthetic, SYNTHETIC_PREFIX } from '../worker/model/load.ts';
import { presetConfig } from '../worker/model/presets.ts';
import type { ModelShape } from '../core/cost-model.ts';

export async function modelConfig(model: string): Promise<ModelConfig> {
  return isSynthetic(model)
    ? presetConfig(model.slice(SYNTHETIC_PREFIX.length))
    : (await inspectCheckpoint(model)).config;
}

export function shapeOf(config: ModelConfig, dtype: 'float32' | 'float16'): ModelShape {
  return {
    numLayers: config.numLayers,
    kvBytesPerToken: 2 * config.numKvHeads * config.headDim * (dtype === 'float32' ? 4 : 2),
  };
}

export function describeConfig(config: ModelConfig): string {
  return `${(parameterCount(config) / 1e6).toFixed(1)}M parameters, ${config.numLayers} layers, hidden ${config.hiddenSize}, ${config.numHeads} heads / ${config.numKvHeads} kv heads`;
}
