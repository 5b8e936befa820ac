// The graph plans and attention implementations of the engine all compute one function: fused
// attention (GroupQueryAttention) against the explicit reference graphs, and one graph of the whole
// model against one graph per stage and graphs of k layers, on the CPU with float32 — where the CUDA
// engine's graphs (fused, whole model or k layers) can be checked without a GPU.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import type { EngineSpec, KvBlock } from '../../worker/runtime/layer-engine.ts';
import { argmax } from '../../worker/sampling.ts';
import { syntheticPromptIds } from '../../worker/prompt.ts';
import { maxAbsDiff, modelDir, reference } from '../support/fixtures.ts';

interface Outcome {
  logits: Float32Array;
  cache: KvBlock[];
  chunkLogits: Float32Array;
}

/** Whole prompt, then the same prompt in three chunks (the decoder-with-past path). */
async function outcome(spec: EngineSpec, ids: number[]): Promise<Outcome> {
  const engine = await EngineClient.start(spec);
  try {
    await engine.resetCache();
    await engine.forward(ids, 0, true);
    const logits = await engine.logits();
    const cache = (await engine.cache()) as KvBlock[];
    await engine.resetCache();
    const a = Math.floor(ids.length / 3);
    const b = Math.floor((2 * ids.length) / 3);
    await engine.forward(ids.slice(0, a), 0, true);
    await engine.forward(ids.slice(a, b), a, true);
    await engine.forward(ids.slice(b), b, true);
    return { logits, cache, chunkLogits: await engine.logits() };
  } finally {
    await engine.close();
  }
}

const base = { seed: 3, dtype: 'float32', ep: 'cpu', threads: 1, deviceId: 0 } as const;

const models = [
  {
    name: 'llama3-tiny (GQA, llama3 rope)',
    model: modelDir('llama3-tiny'),
    ids: reference.models['llama3-tiny'].prompts[1]!.ids,
  },
  {
    name: 'synthetic:small (12 layers, GQA)',
    model: 'synthetic:small',
    ids: syntheticPromptIds(150, 32000, 3, 1),
  },
];

describe.each(models)('$name', ({ model, ids }) => {
  let reference: Outcome;
  beforeAll(async () => {
    reference = await outcome({ ...base, model, attention: 'reference', layersPerGraph: 1 }, ids);
  }, 120_000);

  it.each([
    ['fused, one graph per stage', 'fused', 1],
    ['fused, one graph of the whole model', 'fused', 0],
    ['fused, graphs of 5 layers', 'fused', 5],
    ['reference, graphs of 2 layers', 'reference', 2],
  ] as const)(
    "%s gives the reference graphs' logits and KV-cache",
    async (_, attention, layersPerGraph) => {
      const got = await outcome({ ...base, model, attention, layersPerGraph }, ids);
      expect(maxAbsDiff(got.logits, reference.logits)).toBeLessThan(1e-4);
      expect(maxAbsDiff(got.chunkLogits, reference.logits)).toBeLessThan(1e-4);
      expect(argmax(got.logits)).toBe(argmax(reference.logits));
      expect(got.cache).toHaveLength(reference.cache.length);
      got.cache.forEach((layer, l) => {
        expect(layer.tokens).toBe(ids.length);
        expect(maxAbsDiff(layer.key, reference.cache[l]!.key)).toBeLessThan(1e-4);
        expect(maxAbsDiff(layer.value, reference.cache[l]!.value)).toBeLessThan(1e-4);
      });
    },
    120_000,
  );
});

describe('attention choice', () => {
  it('refuses fused attention for a head size GroupQueryAttention cannot run, naming the fix', async () => {
    await expect(
      EngineClient.start({ ...base, model: modelDir('llama2-tiny'), attention: 'fused' }),
    ).rejects.toThrow(
      /fused attention needs a head size that is a multiple of 16 \(this model's is 24\); use --attention reference/,
    );
  });

  it('reports the plan and attention it chose', async () => {
    const engine = await EngineClient.start({ ...base, model: 'synthetic:tiny', layersPerGraph: 0 });
    try {
      expect(engine.info.attention).toBe('fused');
      expect(engine.info.graphs).toEqual([{ from: 0, to: 4 }]);
      expect(engine.info.kvOnHostIsFree).toBe(true);
    } finally {
      await engine.close();
    }
  });
});
