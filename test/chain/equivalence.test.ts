// KV-Runahead and TSP across 2–5 real worker processes give the single-process prefill's
// first-token logits and KV-cache, for even, explicit and uneven splits (chunks of one token
// included), on the committed reference checkpoints. Frames are kept small so that every layer
// travels as many frames.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Mode } from '../../core/gen/runahead/v1/rank.ts';
import { evenBoundaries } from '../../core/partition.ts';
import { RankGroup } from '../../cli/launcher/rank-group.ts';
import { REFERENCE_MODELS, maxAbsDiff, modelDir, reference } from '../support/fixtures.ts';
import { referenceState, request, stateOf, type ModelState } from '../support/chain.ts';

const TOLERANCE = 1e-4;

function splits(c: number, n: number): [string, number[]][] {
  const uneven = [0];
  // Earlier ranks longer, the last ones one token each: the extreme of a balanced split.
  for (let i = 1; i < n; i++)
    uneven.push(i === n - 1 ? c - 1 : Math.floor((c * i) / n) + Math.floor(c / (2 * n)));
  uneven.push(c);
  const ones = [0, ...Array.from({ length: n - 1 }, (_, i) => i + 1), c]; // chunks of 1 token, then the rest
  return [
    ['even', evenBoundaries(c, n)],
    ['uneven', uneven],
    ['one-token chunks', ones],
  ];
}

describe.each(REFERENCE_MODELS)('%s', (name) => {
  const ids = reference.models[name].prompts[1]!.ids;
  let single: ModelState;

  beforeAll(async () => {
    single = await referenceState(modelDir(name), ids);
  });

  describe.each([2, 3, 4, 5])('%i ranks', (n) => {
    let group: RankGroup;
    beforeAll(async () => {
      group = await RankGroup.start({
        ranks: n,
        spec: { model: modelDir(name), seed: 0, dtype: 'float32', ep: 'cpu', threads: 1, deviceId: 0 },
        limits: { maxFrameBytes: 4096, maxQueuedFrames: 8, peerTimeoutMs: 20_000 },
        startupTimeoutMs: 60_000,
        runTimeoutMs: 60_000,
      });
    }, 90_000);
    afterAll(async () => {
      await group.close();
    });

    it.each(
      splits(ids.length, n).flatMap(([label, b]) =>
        [Mode.MODE_RUNAHEAD, Mode.MODE_TSP].map((m) => [label, m, b] as const),
      ),
    )(
      '%s split, mode %i: logits and KV-cache equal the single-process prefill',
      async (_, mode, boundaries) => {
        const result = await group.run(request(ids, mode, boundaries));
        expect(result.boundaries).toEqual(boundaries);
        const state = stateOf(result);
        expect(maxAbsDiff(state.logits, single.logits)).toBeLessThan(TOLERANCE);
        expect(state.cache.length).toBe(single.cache.length);
        state.cache.forEach((layer, l) => {
          expect(maxAbsDiff(layer.key, single.cache[l]!.key)).toBeLessThan(TOLERANCE);
          expect(maxAbsDiff(layer.value, single.cache[l]!.value)).toBeLessThan(TOLERANCE);
        });
        expect(result.firstToken).toBe(reference.models[name].prompts[1]!.greedy[0]);
      },
      60_000,
    );

    it('moves exactly the bytes of the paper’s schemes: cumulative prefix per hop (runahead), every chunk to every rank (TSP)', async () => {
      const b = evenBoundaries(ids.length, n);
      const { numLayers, rowBytes } = await geometry(name);
      const runahead = await group.run(request(ids, Mode.MODE_RUNAHEAD, b, { debugState: false }));
      expect(runahead.ranks.map((r) => r.bytesSent)).toEqual(
        b.slice(1).map((end, i) => (i < n - 1 ? numLayers * end * 2 * rowBytes : 0)),
      );
      const tsp = await group.run(request(ids, Mode.MODE_TSP, b, { debugState: false }));
      expect(tsp.ranks.map((r) => r.bytesSent)).toEqual(
        b.slice(1).map((end, i) => numLayers * (n - 1) * (end - b[i]!) * 2 * rowBytes),
      );
      const total = (r: typeof tsp) => r.ranks.reduce((s, x) => s + x.bytesSent, 0);
      expect(total(runahead)).toBeLessThan(total(tsp));
    }, 60_000);
  });
});

async function geometry(
  name: (typeof REFERENCE_MODELS)[number],
): Promise<{ numLayers: number; rowBytes: number }> {
  const { inspectCheckpoint } = await import('../../worker/model/checkpoint.ts');
  const { config } = await inspectCheckpoint(modelDir(name));
  return { numLayers: config.numLayers, rowBytes: config.numKvHeads * config.headDim * 4 };
}
