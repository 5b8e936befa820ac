// A real rank (rank 1 of 2) against a test that plays rank 0 and sends hand-made K/V: every
// malformed input ends the run with a clear error naming the rank and the cause, within the
// configured peer timeout, and the rank reports no result. The process keeps serving and exits
// on Shutdown.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DType, Mode, type KvFrame } from '../../core/gen/runahead/v1/rank.ts';
import { freePorts } from '../../cli/launcher/ports.ts';
import { framesOf, type KvGeometry } from '../../worker/chain/frames.ts';
import { FakeCoordinator, identity, openStream, rankClient, start } from '../support/fake-coordinator.ts';
import { startWorker, type WorkerProcess } from '../support/worker-process.ts';
import type { RankClient } from '../../core/gen/runahead/v1/rank.ts';

const FINGERPRINT = 'synthetic-tiny-0-float32';
const PEER_TIMEOUT_MS = 2000;
const MAX_FRAME_BYTES = 2048; // 8 tokens of K+V per frame for the tiny preset
const g: KvGeometry = { dtype: DType.DTYPE_FLOAT32, kvHeads: 2, headDim: 16, bytesPerElement: 4 };
const BOUNDARIES = [0, 10, 20];
const LAYERS = 2;

let fake: FakeCoordinator;
let worker: WorkerProcess;
let client: RankClient;
let address: string;

beforeAll(async () => {
  fake = await FakeCoordinator.start();
  const [port] = await freePorts(1);
  address = `127.0.0.1:${port}`;
  worker = startWorker([
    '--serve',
    ...['--rank', '1', '--world-size', '2', '--peers', `${fake.address},${address}`, '--listen', address],
    ...['--model', 'synthetic:tiny', '--threads', '1'],
    ...['--peer-timeout-ms', String(PEER_TIMEOUT_MS), '--max-frame-bytes', String(MAX_FRAME_BYTES)],
  ]);
  await worker.waitForLog(/"msg":"serving"/, 30_000);
  client = rankClient(address);
}, 40_000);

afterAll(async () => {
  if (process.env.SHOW_WORKER_LOG) process.stderr.write(worker.log);
  client.close();
  worker.child.kill('SIGKILL');
  await fake.stop();
});

function past(layer: number): KvFrame[] {
  const values = (base: number) => Float32Array.from({ length: 10 * 32 }, (_, i) => Math.sin(base + i));
  return framesOf(layer, 0, values(layer), values(layer + 100), g, MAX_FRAME_BYTES);
}

async function startRun(overrides: Parameters<typeof identity>[2] = {}): Promise<string> {
  const runId = randomUUID();
  await start(client, {
    from: identity(runId, FINGERPRINT, overrides),
    mode: Mode.MODE_RUNAHEAD,
    boundaries: BOUNDARIES,
    chunkTokenIds: Array.from({ length: 10 }, (_, i) => 3 + i),
    maxNewTokens: 0,
    releasedAtMs: Date.now(),
    debugState: false,
  });
  return runId;
}

function hello(runId: string) {
  return {
    body: {
      $case: 'hello' as const,
      value: {
        from: identity(runId, FINGERPRINT),
        toRank: 1,
        dtype: g.dtype,
        numLayers: LAYERS,
        kvHeads: 2,
        headDim: 16,
      },
    },
  };
}

const frameMsg = (f: KvFrame) => ({ body: { $case: 'frame' as const, value: f } });

/** Send `frames` after a hello, end the stream, and wait for the rank to abort the run. */
async function expectAbort(
  runId: string,
  frames: KvFrame[],
  reason: RegExp,
  end = true,
  via = client,
): Promise<unknown> {
  const { call, done } = openStream(via);
  call.write(hello(runId));
  for (const f of frames) call.write(frameMsg(f));
  if (end) call.end();
  const started = Date.now();
  await fake.until(
    () => fake.aborts.some((a) => a.from?.runId === runId),
    PEER_TIMEOUT_MS * 3,
    `an abort of run ${runId}`,
  );
  const abort = fake.aborts.find((a) => a.from?.runId === runId)!;
  expect(abort.reason).toMatch(/^rank 1: /);
  expect(abort.reason).toMatch(reason);
  expect(Date.now() - started).toBeLessThan(PEER_TIMEOUT_MS * 2);
  await fake.until(() => fake.reports.some((r) => r.from?.runId === runId), 5000, 'the failed report');
  const report = fake.reports.find((r) => r.from?.runId === runId)!;
  expect(report.error).toMatch(reason);
  expect(report.tokens).toEqual([]); // no partial result
  return done.catch((err: unknown) => err);
}

jest.setTimeout(20_000);

describe('a rank fed by a fake predecessor', () => {
  it('completes a run with sound frames (the fake itself is correct)', async () => {
    const runId = await startRun();
    const { call, done } = openStream(client);
    call.write(hello(runId));
    for (let l = 0; l < LAYERS; l++) for (const f of past(l)) call.write(frameMsg(f));
    call.end();
    await expect(done).resolves.toEqual({ frames: 4, bytes: 2 * 10 * 256 });
    await fake.until(() => fake.firstTokens.some((t) => t.from?.runId === runId), 10_000, 'the first token');
    await fake.until(() => fake.reports.some((r) => r.from?.runId === runId), 10_000, 'the report');
    expect(fake.reports.find((r) => r.from?.runId === runId)!.error).toBe('');
  });

  it('refuses a corrupted frame (bad checksum)', async () => {
    const runId = await startRun();
    const [first, ...rest] = past(0);
    const corrupted = { ...first!, key: Uint8Array.from(first!.key, (b, i) => (i === 17 ? b ^ 0x40 : b)) };
    await expectAbort(
      runId,
      [corrupted, ...rest],
      /bad KV frame from rank 0 \(layer 0, tokens 0\.\.8\): checksum mismatch/,
    );
  });

  it('refuses a truncated stream', async () => {
    const runId = await startRun();
    await expectAbort(
      runId,
      [past(0)[0]!],
      /the KV stream from rank 0 ended at layer 0 after tokens 0\.\.8 of 0\.\.10: truncated stream/,
    );
  });

  it('refuses a frame for a layer that does not exist', async () => {
    const runId = await startRun();
    const f = past(0)[0]!;
    await expectAbort(runId, [{ ...f, layer: 7 }], /layer 7 does not exist/);
  });

  it('refuses a frame of the wrong shape', async () => {
    const runId = await startRun();
    const f = past(0)[0]!;
    await expectAbort(
      runId,
      [{ ...f, shape: [8, 1, 32] }],
      /shape \[8, 1, 32\] where \[8, 2, 16\] was expected/,
    );
  });

  it('refuses a frame of the wrong dtype', async () => {
    const runId = await startRun();
    await expectAbort(runId, [{ ...past(0)[0]!, dtype: DType.DTYPE_FLOAT16 }], /dtype 2 where 1 was agreed/);
  });

  it('refuses a frame larger than the frame limit', async () => {
    const runId = await startRun();
    const big = framesOf(0, 0, new Float32Array(10 * 32), new Float32Array(10 * 32), g, 1 << 20)[0]!; // 10 tokens, 2560 B > 2048
    await expectAbort(runId, [big], /payload of 2560 bytes exceeds the frame limit 2048/);
  });

  it('refuses a message larger than the gRPC limit', async () => {
    const runId = await startRun();
    const huge = new Uint8Array(20 << 20);
    const f = { ...past(0)[0]!, key: huge, value: huge };
    // A sender that ignores the limit: the receiving rank's own limit must stop it.
    const unbounded = rankClient(address, { 'grpc.max_send_message_length': -1 });
    try {
      const senderSaw = await expectAbort(
        runId,
        [f],
        /the KV stream from rank 0 ended \(cancelled .* over the size limit\) at layer 0 .*: truncated stream/,
        true,
        unbounded,
      );
      expect(String(senderSaw)).toMatch(
        /RESOURCE_EXHAUSTED: Received message larger than max \(41943\d+ vs 16777216\)/,
      );
    } finally {
      unbounded.close();
    }
  });

  it('fails when the predecessor never sends, after the peer timeout', async () => {
    const started = Date.now();
    const runId = await startRun();
    await fake.until(() => fake.aborts.some((a) => a.from?.runId === runId), PEER_TIMEOUT_MS * 4, 'an abort');
    const reason = fake.aborts.find((a) => a.from?.runId === runId)!.reason;
    const waited =
      /rank 1: no K\/V for layer 0 from rank 0 \(tokens 0\.\.10\) in (\d+) ms \(deadline 2000 ms\)/.exec(
        reason,
      );
    expect(waited).not.toBeNull();
    // Not before the deadline, on the rank's own clock (the test's clock starts before the rank's
    // wait does, by however long the Start call takes on a loaded machine); and not long after it.
    expect(Number(waited![1])).toBeGreaterThanOrEqual(PEER_TIMEOUT_MS - 5); // timers may round down a millisecond
    expect(Date.now() - started).toBeLessThan(PEER_TIMEOUT_MS * 3);
  });

  it('refuses a Start from another protocol version or another model', async () => {
    await expect(startRun({ protocolVersion: 99 })).rejects.toThrow(
      /protocol version mismatch: rank 0 speaks v99, rank 1 speaks v1/,
    );
    await expect(startRun({ modelFingerprint: 'synthetic-small-0-float32' })).rejects.toThrow(
      /model mismatch: rank 0 has model synthetic-small-0-float32, rank 1 has synthetic-tiny-0-float32/,
    );
  });

  it('refuses a KV stream from another protocol version', async () => {
    const runId = await startRun();
    const { call, done } = openStream(client);
    call.write({
      body: {
        $case: 'hello',
        value: { ...hello(runId).body.value, from: identity(runId, FINGERPRINT, { protocolVersion: 2 }) },
      },
    });
    await expect(done).rejects.toThrow(/protocol version mismatch: rank 0 speaks v2, rank 1 speaks v1/);
  });

  it('still serves, and exits on Shutdown', async () => {
    const answer = await new Promise<Error | null>((resolve) => {
      client.shutdown({}, (err) => {
        resolve(err);
      });
    });
    expect(answer).toBeNull();
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      worker.exited,
      new Promise((r) => {
        timer = setTimeout(() => {
          r('timeout');
        }, 10_000);
      }),
    ]);
    clearTimeout(timer); // a pending timer would keep Jest from exiting
    expect(exit).toEqual({ code: 0, signal: null });
  });
});
