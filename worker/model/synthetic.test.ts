import { describe, expect, it } from '@jest/globals';
import { randomTensor, syntheticWeights } from './synthetic.ts';
import { toFloat32 } from './tensor.ts';
import { presetConfig } from './presets.ts';
import { parameterCount } from './config.ts';

describe('synthetic weights', () => {
  it('are deterministic per seed and tensor name', () => {
    const a = randomTensor('float32', 1000, -4, 7, 'x');
    expect(randomTensor('float32', 1000, -4, 7, 'x')).toEqual(a);
    expect(randomTensor('float32', 1000, -4, 8, 'x')).not.toEqual(a);
    expect(randomTensor('float32', 1000, -4, 7, 'y')).not.toEqual(a);
  });

  it.each(['float32', 'float16'] as const)('lie in ±[2^e, 2^(e+1)) with both signs (%s)', (dtype) => {
    const values = toFloat32(randomTensor(dtype, 10001, -6, 1, 'w'));
    expect(values.length).toBe(10001);
    for (const v of values) {
      expect(Math.abs(v)).toBeGreaterThanOrEqual(2 ** -6);
      expect(Math.abs(v)).toBeLessThan(2 ** -5);
    }
    const negatives = values.filter((v) => v < 0).length;
    expect(negatives / values.length).toBeGreaterThan(0.45);
    expect(negatives / values.length).toBeLessThan(0.55);
  });

  it('generates every layer of a preset with the shapes of its config', async () => {
    const w = syntheticWeights('tiny', 3, 'float32');
    const c = w.config;
    const layer = await w.layer(1);
    expect(layer.qkv.length).toBe((c.numHeads + 2 * c.numKvHeads) * c.headDim * c.hiddenSize);
    expect(layer.down.length).toBe(c.hiddenSize * c.intermediateSize);
    expect((await w.embedding()).length).toBe(c.vocabSize * c.hiddenSize);
    expect(w.fingerprint).toBe('synthetic-tiny-3-float32');
  });

  it('has presets of the documented sizes', () => {
    expect(parameterCount(presetConfig('small')) / 1e6).toBeGreaterThan(100);
    expect(parameterCount(presetConfig('small')) / 1e6).toBeLessThan(300);
    expect(parameterCount(presetConfig('llama-7b'))).toBe(6_738_415_616);
    expect(() => presetConfig('huge')).toThrow(
      /unknown synthetic preset "huge" \(known: tiny, small, llama-7b, llama3-8b\)/,
    );
  });
});
