import { describe, expect, it } from '@jest/globals';
import { parseHfConfig, parameterCount, queriesPerKvHead } from './config.ts';

const v5 = {
  model_type: 'llama',
  vocab_size: 400,
  hidden_size: 64,
  intermediate_size: 160,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: true,
  rope_parameters: {
    rope_type: 'llama3',
    rope_theta: 500000,
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 32,
  },
  bos_token_id: 0,
  eos_token_id: [1, 7],
  transformers_version: '5.17.0',
  dtype: 'bfloat16',
};

const v4 = {
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  rope_theta: 10000.0,
  rope_scaling: null,
  torch_dtype: 'float16',
  transformers_version: '4.31.0',
};

describe('parseHfConfig', () => {
  it('reads a transformers 5.x config with rope_parameters, GQA and tied embeddings', () => {
    const { config, ignoredKeys } = parseHfConfig(v5);
    expect(config).toMatchObject({
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      ropeTheta: 500000,
      tieWordEmbeddings: true,
      bosTokenId: 0,
    });
    expect(config.eosTokenIds).toEqual([1, 7]);
    expect(config.ropeScaling).toEqual({
      ropeType: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 32,
    });
    expect(queriesPerKvHead(config)).toBe(2);
    expect(ignoredKeys).toEqual([]);
  });

  it('reads a transformers 4.x config with top-level rope_theta and defaults', () => {
    const { config } = parseHfConfig(v4);
    expect(config).toMatchObject({
      numKvHeads: 32,
      headDim: 128,
      ropeTheta: 10000,
      rmsNormEps: 1e-6,
      tieWordEmbeddings: false,
    });
    expect(config.ropeScaling).toEqual({ ropeType: 'default' });
    // Llama-2-7B: 6.74e9 parameters.
    expect(parameterCount(config)).toBe(6_738_415_616);
  });

  it('reads 4.x rope_scaling, including the pre-4.40 "type" spelling', () => {
    expect(parseHfConfig({ ...v4, rope_scaling: { type: 'linear', factor: 2 } }).config.ropeScaling).toEqual({
      ropeType: 'linear',
      factor: 2,
    });
    const rope = {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    };
    expect(parseHfConfig({ ...v4, rope_theta: 500000, rope_scaling: rope }).config).toMatchObject({
      ropeTheta: 500000,
      ropeScaling: { ropeType: 'llama3' },
    });
  });

  it('honours head_dim when given even if it differs from hidden/heads', () => {
    expect(parseHfConfig({ ...v4, head_dim: 96 }).config.headDim).toBe(96);
  });

  it('reports unknown keys instead of silently assuming they are harmless', () => {
    expect(parseHfConfig({ ...v4, some_new_knob: 3 }).ignoredKeys).toEqual(['some_new_knob']);
  });

  it.each([
    [{ ...v4, model_type: 'mistral' }, /model_type "mistral" is not supported/],
    [{ ...v4, hidden_act: 'gelu' }, /hidden_act "gelu" is not supported/],
    [
      { ...v4, rope_scaling: { rope_type: 'yarn', factor: 4 } },
      /rope_scaling\.rope_type "yarn" is not supported/,
    ],
    [
      { ...v5, rope_parameters: { rope_type: 'dynamic', factor: 2 } },
      /rope_parameters\.rope_type "dynamic" is not supported/,
    ],
    [
      { ...v5, rope_parameters: { rope_type: 'llama3', factor: 8 } },
      /rope_parameters\.low_freq_factor is required/,
    ],
    [
      { ...v4, num_key_value_heads: 5 },
      /num_attention_heads \(32\) must be a multiple of num_key_value_heads \(5\)/,
    ],
    [{ ...v4, hidden_size: 100, num_attention_heads: 3 }, /head_dim is not given and hidden_size \(100\)/],
    [{ ...v4, sliding_window: 4096 }, /sliding_window is set/],
    [{ ...v4, quantization_config: { bits: 4 } }, /quantization_config is set/],
    [{ ...v4, hidden_size: undefined }, /hidden_size/],
    [{ ...v4, num_hidden_layers: 0 }, /num_hidden_layers/],
    [{ ...v4, vocab_size: 'big' }, /vocab_size/],
    [[1, 2], /expected a JSON object/],
  ])('refuses %# with a message naming the field', (raw, message) => {
    expect(() => parseHfConfig(raw)).toThrow(message);
  });
});
