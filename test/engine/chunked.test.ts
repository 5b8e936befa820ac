// Chunked prefill — any split of the prompt fed through the decoder-with-past graphs — must give the
// one-shot prefill's logits and KV-cache. This is the property the KV-Runahead chain relies on.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { argmax } from '../../worker/sampling.ts';
import type { KvBlock } from '../../worker/runtime/layer-engine.ts';
import { syntheticPromptIds } from '../../worker/prompt.ts';
import { maxAbsDiff, modelDir, reference } from '../support/fixtures.ts';

/** Deterministic random split of [0, n) into chunks, always including some of length 1. */
function randomSplit(n: number, seed: number): number[] {
  let s = seed;
  const rand = () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const bounds = [0];
  while (bounds.at(-1)! < n) {
    const len = rand() < 0.3 ? 1 : 1 + Math.floor(rand() * (n / 3));
    bounds.push(Math.min(n, bounds.at(-1)! + len));
  }
  return bounds;
}

async function prefill(engine: EngineClient, ids: number[], bounds: number[]) {
  await engine.resetCache();
  for (let i = 0; i + 1 < bounds.length; i++)
    await engine.forward(ids.slice(bounds[i], bounds[i + 1]), bounds[i]!, true);
  return { logits: await engine.logits(), cache: (await engine.cache()) as KvBlock[] };
}

const cases = [
  {
    name: 'llama3-tiny (GQA, tied)',
    model: modelDir('llama3-tiny'),
    ids: reference.models['llama3-tiny'].prompts[1]!.ids,
  },
  {
    name: 'llama2-tiny (MHA, head_dim 24, bias)',
    model: modelDir('llama2-tiny'),
    ids: reference.models['llama2-tiny'].prompts[1]!.ids,
  },
  { name: 'synthetic:tiny', model: 'synthetic:tiny', ids: syntheticPromptIds(97, 512, 3, 1) },
];

describe.each(cases)('$name', ({ model, ids }) => {
  let engine: EngineClient;
  let whole: { logits: Float32Array; cache: KvBlock[] };

  beforeAll(async () => {
    engine = await EngineClient.start({
      model,
      seed: 1,
      dtype: 'float32',
      ep: 'cpu',
      threads: 1,
      deviceId: 0,
    });
    whole = await prefill(engine, ids, [0, ids.length]);
  });
  afterAll(async () => {
    await engine.close();
  });

  it.each([1, 2, 3, 4, 5])('random split #%i gives the same logits and KV-cache', async (seed) => {
    const bounds = randomSplit(ids.length, seed);
    const chunked = await prefill(engine, ids, bounds);
    expect(maxAbsDiff(chunked.logits, whole.logits)).toBeLessThan(1e-5);
    expect(argmax(chunked.logits)).toBe(argmax(whole.logits));
    chunked.cache.forEach((layer, l) => {
      expect(layer.tokens).toBe(ids.length);
      expect(maxAbsDiff(layer.key, whole.cache[l]!.key)).toBeLessThan(1e-5);
      expect(maxAbsDiff(layer.value, whole.cache[l]!.value)).toBeLessThan(1e-5);
    });
  });

  it('one token at a time gives the same logits', async () => {
    const bounds = Array.from({ length: ids.length + 1 }, (_, i) => i);
    const chunked = await prefill(engine, ids, bounds);
    expect(maxAbsDiff(chunked.logits, whole.logits)).toBeLessThan(1e-5);
  });
});

describe('decoder-with-past contract', () => {
  it('refuses a past whose length is not the chunk start', async () => {
    const engine = await EngineClient.start({
      model: 'synthetic:tiny',
      seed: 1,
      dtype: 'float32',
      ep: 'cpu',
      threads: 1,
      deviceId: 0,
    });
    try {
      // One graph per stage on the CPU: graph 0 projects layer 0, graph 1 attends it.
      await engine.startChunk([1, 2, 3], 5);
      await engine.runGraph(0, [], { emit: false, keep: false });
      await expect(engine.runGraph(1, [null], { emit: false, keep: false })).rejects.toThrow(
        /layer 0: past holds 0 tokens, the chunk starts at 5/,
      );
      await expect(engine.runGraph(3, [null], { emit: false, keep: false })).rejects.toThrow(
        /graph 3 cannot run now: graph 1 of this chunk is next/,
      );
      await expect(engine.startChunk([1, 99999], 0)).rejects.toThrow(
        /token id 99999 is outside the vocabulary \[0, 512\)/,
      );
      await expect(engine.forward([1, 2], 4, true)).rejects.toThrow(
        /forward at position 4: layer 0 has no KV-cache; prefill positions \[0, 4\) first/,
      );
    } finally {
      await engine.close();
    }
  });
});
