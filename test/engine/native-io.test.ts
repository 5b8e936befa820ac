// The engine on the ort_io addon's IO path (what a GPU rank runs) against onnxruntime-node's, on the
// CPU provider: the same logits and the same K/V a chain rank sends, chunk after chunk with the
// predecessor's K/V fed back as pasts, and the host buffers reused once the caller recycles them.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import type { EngineSpec, KvBlock, LayerKv } from '../../worker/runtime/layer-engine.ts';
import { stageLayers } from '../../worker/runtime/stage-plan.ts';
import { syntheticPromptIds } from '../../worker/prompt.ts';
import { maxAbsDiff } from '../support/fixtures.ts';

const base = {
  model: 'synthetic:small',
  seed: 5,
  dtype: 'float32',
  ep: 'cpu',
  threads: 1,
  deviceId: 0,
  inChain: true,
  layersPerGraph: 4,
} as const satisfies EngineSpec;
const ids = syntheticPromptIds(96, 32000, 5, 1);
const SPLIT = 40;

interface Rank {
  logits: Float32Array;
  /** K/V per layer of the second chunk, as emitted (copied out before recycling). */
  sent: Map<number, KvBlock>;
}

/** Two chunks as two chain ranks on one engine: [0, SPLIT) emits its K/V, [SPLIT, n) attends them. */
async function chain(engine: EngineClient, recycle: boolean): Promise<Rank> {
  const first = new Map<number, KvBlock>();
  await engine.startChunk(ids.slice(0, SPLIT), 0);
  for (let g = 0; g < engine.info.graphs.length; g++) {
    const attends = stageLayers(engine.info.graphs[g]!).attends;
    const { value } = await engine.runGraph(
      g,
      attends.map(() => null),
      { emit: true, keep: false },
    );
    for (const { layer, block } of value) first.set(layer, copy(block));
    if (recycle) engine.recycle(value.map((k: LayerKv) => k.block));
  }
  const sent = new Map<number, KvBlock>();
  await engine.startChunk(ids.slice(SPLIT), SPLIT);
  for (let g = 0; g < engine.info.graphs.length; g++) {
    const attends = stageLayers(engine.info.graphs[g]!).attends;
    const { value } = await engine.runGraph(
      g,
      attends.map((l) => first.get(l)!),
      { emit: true, keep: false },
    );
    for (const { layer, block } of value) sent.set(layer, copy(block));
    if (recycle) engine.recycle(value.map((k: LayerKv) => k.block));
  }
  return { logits: await engine.logits(), sent };
}

function copy(b: KvBlock): KvBlock {
  return { tokens: b.tokens, key: b.key.slice(), value: b.value.slice() };
}

describe('the engine on the ort_io IO path', () => {
  let ortNode: EngineClient;
  let addon: EngineClient;
  const started: EngineClient[] = [];
  beforeAll(async () => {
    [ortNode, addon] = await Promise.all([
      EngineClient.start({ ...base, io: 'onnxruntime-node' }),
      EngineClient.start({ ...base, io: 'native' }),
    ]);
    started.push(ortNode, addon);
  }, 120_000);
  afterAll(async () => {
    await Promise.all(started.map((e) => e.close()));
  });

  it('says which path it runs', () => {
    expect(ortNode.info.io).toBe('onnxruntime-node');
    expect(addon.info.io).toBe('native');
  });

  it('computes the logits and sends the K/V that onnxruntime-node does', async () => {
    const want = await chain(ortNode, false);
    const got = await chain(addon, true);
    expect(maxAbsDiff(got.logits, want.logits)).toBeLessThan(1e-5);
    expect([...got.sent.keys()].sort((a, b) => a - b)).toEqual([...want.sent.keys()].sort((a, b) => a - b));
    expect(got.sent.size).toBe(12);
    for (const [layer, block] of want.sent) {
      const mine = got.sent.get(layer)!;
      expect(mine.tokens).toBe(ids.length - SPLIT);
      expect(maxAbsDiff(mine.key as Float32Array, block.key as Float32Array)).toBeLessThan(1e-5);
      expect(maxAbsDiff(mine.value as Float32Array, block.value as Float32Array)).toBeLessThan(1e-5);
    }
  }, 120_000);

  it('writes the next run into the buffers the caller gave back', async () => {
    const before = (await addon.kvPoolStats())!;
    await chain(addon, true);
    const after = (await addon.kvPoolStats())!;
    expect(after.created).toBe(before.created); // nothing new: every K/V went into a reused buffer
    expect(after.reused - before.reused).toBe(24); // 12 layers × 2 chunks
    // Per chunk length, no more buffers than the K/V of two graphs (held until attended, then recycled).
    const perGraph = Math.max(...addon.info.graphs.map((r) => stageLayers(r).projects.length));
    expect(after.slots).toBeLessThanOrEqual(2 * 2 * perGraph);
    expect(await ortNode.kvPoolStats()).toBeNull();
  }, 120_000);

  it('keeps the KV-cache for decoding that onnxruntime-node keeps, chunk after chunk', async () => {
    const cached = async (engine: EngineClient) => {
      await engine.resetCache();
      await engine.forward(ids.slice(0, SPLIT), 0, true);
      await engine.forward(ids.slice(SPLIT), SPLIT, true);
      await engine.forward([7], ids.length, true); // one decoding step over the cache
      return { logits: await engine.logits(), cache: (await engine.cache()) as KvBlock[] };
    };
    const want = await cached(ortNode);
    const got = await cached(addon);
    expect(maxAbsDiff(got.logits, want.logits)).toBeLessThan(1e-5);
    got.cache.forEach((block, l) => {
      expect(block.tokens).toBe(ids.length + 1);
      expect(maxAbsDiff(block.key as Float32Array, want.cache[l]!.key as Float32Array)).toBeLessThan(1e-5);
    });
    // The cache's pooled buffers go back when it is reset: nothing is held after.
    await addon.resetCache();
    const stats = (await addon.kvPoolStats())!;
    expect(stats.free).toBe(stats.slots);
  }, 120_000);

  it('never hands out a buffer the caller still holds', async () => {
    // Without recycle(), every run needs new buffers; the values stay what they were.
    const kept = new Map<number, LayerKv[]>();
    await addon.startChunk(ids.slice(0, SPLIT), 0);
    for (let g = 0; g < addon.info.graphs.length; g++) {
      const attends = stageLayers(addon.info.graphs[g]!).attends;
      kept.set(
        g,
        (
          await addon.runGraph(
            g,
            attends.map(() => null),
            { emit: true, keep: false },
          )
        ).value,
      );
    }
    const snapshot = [...kept.values()].flat().map((k) => copy(k.block));
    await chain(addon, false);
    const again = [...kept.values()].flat().map((k) => k.block);
    snapshot.forEach((b, i) => {
      expect(maxAbsDiff(again[i]!.key as Float32Array, b.key as Float32Array)).toBe(0);
    });
  }, 120_000);
});
