// A RankNode on a real socket, driven through its gRPC face: one run at a time (the run lifecycle),
// refusals with the status a caller can act on, and the engine free again after a failed run. The
// engine is a small fake that a test can hold (real engines run in test/chain and test/faults); the
// other rank is test/support's FakeCoordinator, or a plain client.
import { afterEach, describe, expect, it } from '@jest/globals';
import { Metadata, status } from '@grpc/grpc-js';
import { randomUUID } from 'node:crypto';
import {
  DType,
  Mode,
  type RankClient,
  type RunRequest,
  type RunResult,
} from '../../core/gen/runahead/v1/rank.ts';
import { DEFAULT_LIMITS } from '../../core/protocol.ts';
import { freePorts } from '../../cli/launcher/ports.ts';
import {
  FakeCoordinator,
  identity,
  openStream,
  rankClient,
  start,
} from '../../test/support/fake-coordinator.ts';
import { presetConfig } from '../model/presets.ts';
import type { EngineClient } from '../runtime/engine-client.ts';
import type { EngineInfo } from '../runtime/layer-engine.ts';
import { stagePlan } from '../runtime/stage-plan.ts';
import { framesOf } from './frames.ts';
import { RankNode } from './rank-node.ts';

const config = presetConfig('tiny'); // 2 layers, 2 KV heads × 16
const FIRST_TOKEN = 77;
const FINGERPRINT = 'fake-tiny';

/** The engine a test holds: `startChunk` waits for `release()` when `hold` is set. */
function fakeEngine() {
  const info: EngineInfo = {
    config,
    dtype: 'float32',
    fingerprint: FINGERPRINT,
    description: 'fake',
    loadMs: 0,
    loadBreakdownMs: { weights: 0, graphs: 0, sessions: 0 },
    attention: 'reference',
    graphs: stagePlan(config.numLayers, 0),
    kvOnHostIsFree: true,
    io: 'onnxruntime-node',
  };
  const held: (() => void)[] = [];
  const control = {
    hold: false,
    chunks: 0,
    release: () => {
      for (const r of held.splice(0)) r();
    },
  };
  const fake = {
    info,
    startChunk: () => {
      control.chunks++;
      return control.hold ? new Promise<void>((resolve) => held.push(resolve)) : Promise.resolve();
    },
    runGraph: () => Promise.resolve({ value: [], span: { start: 0, end: 1 } }),
    logits: () => {
      const logits = new Float32Array(config.vocabSize);
      logits[FIRST_TOKEN] = 1;
      return Promise.resolve(logits);
    },
    resetCache: () => Promise.resolve(),
    recycle: () => undefined,
  };
  return { engine: fake as unknown as EngineClient, control };
}

const tokenizer = { encode: () => [], decode: (ids: readonly number[]) => ids.join(' ') };

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

interface Node {
  readonly node: RankNode;
  readonly client: RankClient;
  readonly control: ReturnType<typeof fakeEngine>['control'];
  readonly ended: string[];
}

/** Rank `rank` of 2, the other rank at `other`. */
async function node(rank: number, other: string): Promise<Node> {
  const [port] = await freePorts(1);
  const address = `127.0.0.1:${port}`;
  const { engine, control } = fakeEngine();
  const n = await RankNode.start(
    {
      rank,
      worldSize: 2,
      peers: rank === 0 ? [address, other] : [other, address],
      listen: address,
      kvPort: 0,
      kvTransport: 'socket',
      tls: null,
      limits: { ...DEFAULT_LIMITS, peerTimeoutMs: 2000 },
      startupTimeoutMs: 2000,
      runTimeoutMs: 5000,
    },
    engine,
    tokenizer,
  );
  // How each run ended: '' for a success, else the failure's message.
  const ended: string[] = [];
  n.onRunEnded = (failure) => ended.push(failure?.message ?? '');
  const client = rankClient(address);
  cleanup.push(async () => {
    client.close();
    control.release();
    await n.stop();
  });
  return { node: n, client, control, ended };
}

async function fakeCoordinator(): Promise<FakeCoordinator> {
  const fake = await FakeCoordinator.start();
  cleanup.push(() => fake.stop());
  return fake;
}

/** A Start of rank 1's chunk [10, 20) of a 20-token prompt. */
async function startRank1(client: RankClient, runId: string = randomUUID(), chunk = 10): Promise<string> {
  await start(client, {
    from: identity(runId, FINGERPRINT),
    mode: Mode.MODE_RUNAHEAD,
    boundaries: [0, 10, 20],
    chunkTokenIds: Array.from({ length: chunk }, (_, i) => 3 + i),
    maxNewTokens: 0,
    releasedAtMs: Date.now(),
    debugState: false,
  });
  return runId;
}

/** Rank 0 aborts a run, telling why: a failure that began on rank 0 unless `reasonRank` says. */
function abort(client: RankClient, runId: string, reason: string, reasonRank = 0): Promise<void> {
  return new Promise((resolve, reject) => {
    client.abort(
      { from: identity(runId, FINGERPRINT), reason: `rank ${reasonRank}: ${reason}`, reasonRank },
      new Metadata(),
      { deadline: Date.now() + 5000 },
      (err) => {
        if (err) reject(err);
        else resolve();
      },
    );
  });
}

function run(client: RankClient, request: RunRequest): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    client.run(request, new Metadata(), { deadline: Date.now() + 10_000 }, (err, result) => {
      if (err) reject(err);
      else resolve(result);
    });
  });
}

const prompt = (tokens: number): RunRequest => ({
  prompt: { source: { $case: 'tokenIds', value: { ids: Array.from({ length: tokens }, (_, i) => 3 + i) } } },
  mode: Mode.MODE_SINGLE,
  boundaries: [],
  maxNewTokens: 0,
  partition: '',
  debugState: false,
});

const eventually = async (what: string, predicate: () => boolean) => {
  const deadline = Date.now() + 5000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('RankNode, rank 1 of 2', () => {
  it('refuses Run: only rank 0 coordinates', async () => {
    const rank0 = await fakeCoordinator();
    const { client } = await node(1, rank0.address);
    await expect(run(client, prompt(8))).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: 'rank 1 is not the coordinator; send Run to rank 0',
    });
  });

  it('refuses a Start from another model, and stays idle', async () => {
    const rank0 = await fakeCoordinator();
    const { node: n, client } = await node(1, rank0.address);
    await expect(
      start(client, {
        from: identity('r', 'another-model'),
        mode: Mode.MODE_RUNAHEAD,
        boundaries: [0, 10, 20],
        chunkTokenIds: [],
        maxNewTokens: 0,
        releasedAtMs: 0,
        debugState: false,
      }),
    ).rejects.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: expect.stringMatching(/model mismatch/),
    });
    expect(n.state).toEqual({ phase: 'idle' });
  });

  it('refuses an unusable Start with INVALID_ARGUMENT and is free for the next one', async () => {
    const rank0 = await fakeCoordinator();
    const { node: n, client, control } = await node(1, rank0.address);
    await expect(startRank1(client, 'bad', 4)).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: expect.stringMatching(/got 4 token ids for chunk \[10, 20\)/),
    });
    expect(n.state).toEqual({ phase: 'idle' });
    control.hold = true;
    const runId = await startRank1(client);
    expect(n.state).toEqual({ phase: 'executing', runId });
  });

  it('runs one Start at a time: a second is UNAVAILABLE until the first has ended', async () => {
    const rank0 = await fakeCoordinator();
    const { node: n, client, control, ended } = await node(1, rank0.address);
    control.hold = true;
    const first = await startRank1(client);
    expect(n.state).toEqual({ phase: 'executing', runId: first });
    await expect(startRank1(client)).rejects.toMatchObject({
      code: status.UNAVAILABLE,
      details: 'rank 1 is busy with another run',
    });
    // Rank 0 aborts the run: this rank reports the failure, and the engine is free again.
    await abort(client, first, 'run deadline');
    control.release();
    await eventually('the failed run to end', () => ended.length === 1);
    expect(ended).toEqual([expect.stringMatching(/^rank 0: run deadline/)]);
    expect(rank0.reports.map((r) => [r.from?.runId, r.error])).toEqual([[first, ended[0]]]);
    expect(n.state).toEqual({ phase: 'idle' });
    const second = await startRank1(client);
    expect(n.state).toEqual({ phase: 'executing', runId: second });
    await abort(client, second, 'stop');
    await n.runSettled(5000);
    expect(control.chunks).toBe(2);
    expect(rank0.reports.map((r) => r.from?.runId)).toEqual([first, second]);
  });

  it('takes a K/V stream that comes before its Start, computes, and reports the first token to rank 0', async () => {
    const rank0 = await fakeCoordinator();
    const { node: n, client, ended } = await node(1, rank0.address);
    const runId = randomUUID();
    const { call, done } = openStream(client);
    call.write({
      body: {
        $case: 'hello',
        value: {
          from: identity(runId, FINGERPRINT),
          toRank: 1,
          dtype: DType.DTYPE_FLOAT32,
          numLayers: config.numLayers,
          kvHeads: config.numKvHeads,
          headDim: config.headDim,
        },
      },
    });
    await new Promise((r) => setTimeout(r, 50)); // the stream waits for its run
    await startRank1(client, runId);
    const g = {
      dtype: DType.DTYPE_FLOAT32,
      kvHeads: config.numKvHeads,
      headDim: config.headDim,
      bytesPerElement: 4,
    };
    const past = new Float32Array(10 * config.numKvHeads * config.headDim);
    for (let layer = 0; layer < config.numLayers; layer++)
      for (const frame of framesOf(layer, 0, past, past, g, 1 << 20))
        call.write({ body: { $case: 'frame', value: frame } });
    call.end();
    expect(await done).toEqual({ frames: config.numLayers, bytes: config.numLayers * 2 * past.byteLength });
    await eventually('the run to end', () => ended.length === 1);
    expect(ended).toEqual(['']);
    expect(rank0.firstTokens.map((f) => f.token)).toEqual([FIRST_TOKEN]);
    expect(rank0.reports.map((r) => [r.error, r.tokens])).toEqual([['', [FIRST_TOKEN]]]);
    expect(rank0.aborts).toEqual([]);
    expect(n.state).toEqual({ phase: 'idle' });
  });

  it('fails a run whose K/V stream is refused, and tells rank 0 why', async () => {
    const rank0 = await fakeCoordinator();
    const { client, ended } = await node(1, rank0.address);
    const runId = await startRank1(client);
    const { call, done } = openStream(client);
    call.write({
      body: {
        $case: 'hello',
        value: {
          from: identity(runId, FINGERPRINT),
          toRank: 1,
          dtype: DType.DTYPE_FLOAT32,
          numLayers: config.numLayers,
          kvHeads: config.numKvHeads,
          headDim: config.headDim,
        },
      },
    });
    const g = {
      dtype: DType.DTYPE_FLOAT32,
      kvHeads: config.numKvHeads,
      headDim: config.headDim,
      bytesPerElement: 4,
    };
    const [frame] = framesOf(0, 0, new Float32Array(10 * 32), new Float32Array(10 * 32), g, 1 << 20);
    call.write({ body: { $case: 'frame', value: { ...frame!, crc32: (frame!.crc32 ^ 1) >>> 0 } } });
    await expect(done).rejects.toMatchObject({
      code: status.DATA_LOSS,
      details: expect.stringMatching(/checksum mismatch/),
    });
    await eventually('the run to end', () => ended.length === 1);
    expect(ended[0]).toMatch(/^rank 1: bad KV frame from rank 0 .*checksum mismatch/);
    expect(rank0.aborts.map((a) => a.reason)).toEqual([
      'rank 1: bad KV frame from rank 0 (layer 0, tokens 0..10): checksum mismatch: the frame is corrupted',
    ]);
  });
});

describe('RankNode, rank 0 (coordinator)', () => {
  it('coordinates one run at a time, over gRPC and in job mode alike', async () => {
    const { node: n, client, control, ended } = await node(0, '127.0.0.1:1');
    control.hold = true;
    const first = n.runOnce(prompt(8)); // single mode: rank 0 alone
    await eventually('the run to start', () => control.chunks === 1);
    expect(n.state.phase).toBe('coordinating');
    await expect(n.runOnce(prompt(8))).rejects.toThrow('a run is already in progress');
    await expect(run(client, prompt(8))).rejects.toMatchObject({
      code: status.UNAVAILABLE,
      details: 'a run is already in progress',
    });
    expect(ended).toEqual([]); // a refused Run is no run
    control.release();
    expect((await first).firstToken).toBe(FIRST_TOKEN);
    expect(n.state).toEqual({ phase: 'idle' });
    control.hold = false;
    expect((await run(client, prompt(8))).firstToken).toBe(FIRST_TOKEN);
    expect(ended).toEqual(['']); // the Run call's run
    expect(n.state).toEqual({ phase: 'idle' });
  });

  it('is free again after a run that failed', async () => {
    const { node: n } = await node(0, '127.0.0.1:1');
    await expect(n.runOnce({ ...prompt(8), prompt: undefined })).rejects.toThrow(
      'the run request has no prompt',
    );
    expect(n.state).toEqual({ phase: 'idle' });
    expect((await n.runOnce(prompt(8))).firstToken).toBe(FIRST_TOKEN);
  });
});
