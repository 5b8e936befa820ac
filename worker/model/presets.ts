// Synthetic model presets: real Llama shapes with generated weights, for tests (tiny), CPU
// benchmarks (small) and GPU benchmarks (llama-7b: Llama-2-7B's shapes; llama3-8b: GQA, 128k vocab).
import type { ModelConfig } from './config.ts';

const base = {
  ropeScaling: { ropeType: 'default' },
  rmsNormEps: 1e-5,
  attentionBias: false,
  mlpBias: false,
  bosTokenId: 1,
  eosTokenIds: [2],
} as const;

export const PRESETS = {
  tiny: {
    ...base,
    vocabSize: 512,
    hiddenSize: 64,
    intermediateSize: 160,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    ropeTheta: 10000,
    tieWordEmbeddings: true,
    maxPositionEmbeddings: 65536,
  },
  small: {
    ...base,
    vocabSize: 32000,
    hiddenSize: 768,
    intermediateSize: 2048,
    numLayers: 12,
    numHeads: 12,
    numKvHeads: 4,
    headDim: 64,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 65536,
  },
  'llama-7b': {
    ...base,
    vocabSize: 32000,
    hiddenSize: 4096,
    intermediateSize: 11008,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 32,
    headDim: 128,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 65536,
  },
  'llama3-8b': {
    ...base,
    vocabSize: 128256,
    hiddenSize: 4096,
    intermediateSize: 14336,
    numLayers: 32,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    ropeTheta: 500000,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: 131072,
    bosTokenId: 128000,
    eosTokenIds: [128001],
  },
} as const satisfies Record<string, ModelConfig>;

export type PresetName = keyof typeof PRESETS;

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

export function presetConfig(name: string): ModelConfig {
  if (!isPresetName(name)) {
    throw new Error(`unknown synthetic preset "${name}" (known: ${Object.keys(PRESETS).join(', ')})`);
  }
  return PRESETS[name];
}
