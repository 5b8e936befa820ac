// K/V sockets end to end on real sockets: KvLink → socketFrameWriter → (TCP or mutual TLS) →
// KvSocketServer → KvReceiver → a run. The run is a small KvSink that copies what it keeps, as the
// inbox does (a frame views a buffer the socket's reader reuses).
import { afterEach, describe, expect, it } from '@jest/globals';
import { connect } from 'node:net';
import { once } from 'node:events';
import { status } from '@grpc/grpc-js';
import { DType, type Identity, type KvFrame, type KvHello } from '../../core/gen/runahead/v1/rank.ts';
import { PROTOCOL_VERSION } from '../../core/protocol.ts';
import { makeTestCerts } from '../../test/support/certs.ts';
import { eventually } from '../../test/support/eventually.ts';
import { FrameError, frameChecksum, framesOf, type KvGeometry } from './frames.ts';
import { grpcError } from './grpc-error.ts';
import type { KvReceiverContext, KvSink } from './kv-receiver.ts';
import { KvLink } from './kv-link.ts';
import { KvSocketServer, hostOf, socketFrameWriter } from './kv-socket.ts';
import { helloBytes, frameWireParts } from './kv-socket-wire.ts';
import type { TlsFiles } from './tls-files.ts';

const g: KvGeometry = { dtype: DType.DTYPE_FLOAT32, kvHeads: 2, headDim: 4, bytesPerElement: 4 }; // 32 B per token and side

class CopyingRun implements KvSink {
  readonly frames: KvFrame[] = [];
  readonly closed: (string | null)[] = [];
  /** While set, onFrame waits for it (a rank busy with other work). */
  hold: Promise<void> | null = null;

  expectsFrom(rank: number): boolean {
    return rank === 0;
  }

  async onFrame(_: number, frame: KvFrame): Promise<void> {
    if (this.hold) await this.hold;
    // The inbox checks more (kv-inbox.ts frameProblem); the checksum is what these tests break.
    if (frameChecksum(frame.key, frame.value) !== frame.crc32)
      throw new FrameError('checksum mismatch: the frame is corrupted');
    this.frames.push({ ...frame, key: Uint8Array.from(frame.key), value: Uint8Array.from(frame.value) });
  }

  onStreamClosed(_: number, cause: string | null): void {
    this.closed.push(cause);
  }
}

const identity: Identity = {
  protocolVersion: PROTOCOL_VERSION,
  modelFingerprint: 'model-a',
  runId: 'run-1',
  rank: 0,
  worldSize: 2,
};
const hello: KvHello = { from: identity, toRank: 1, dtype: g.dtype, numLayers: 4, kvHeads: 2, headDim: 4 };

function context(run: CopyingRun, failed: string[]): KvReceiverContext<CopyingRun> {
  return {
    rank: 1,
    geometry: g,
    numLayers: 4,
    checkIdentity: (from) => {
      if (from?.modelFingerprint !== 'model-a')
        throw grpcError(status.FAILED_PRECONDITION, `model mismatch: ${from?.modelFingerprint}`);
      return from;
    },
    runFor: (runId) =>
      runId === 'run-1' ? Promise.resolve(run) : Promise.reject(new Error(`rank 1 has no run ${runId}`)),
    failRun: (_, err) => {
      failed.push(err.message);
    },
  };
}

/** `tokens` tokens of `layer` in frames of ≤ `perFrame` tokens; values differ per token. */
function frames(layer: number, tokens: number, perFrame: number): KvFrame[] {
  const key = Float32Array.from({ length: tokens * 8 }, (_, i) => layer * 1e4 + i);
  const value = Float32Array.from({ length: tokens * 8 }, (_, i) => -layer * 1e4 - i);
  return framesOf(layer, 0, key, value, g, perFrame * 64);
}

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function receiver(tls: TlsFiles | null = null, maxMessageBytes = 1 << 20) {
  const run = new CopyingRun();
  const failed: string[] = [];
  const server = await KvSocketServer.listen('127.0.0.1', 0, tls, maxMessageBytes, () =>
    context(run, failed),
  );
  cleanup.push(() => server.close());
  return { run, failed, server };
}

function link(port: number, opts: { tls?: TlsFiles | null; timeoutMs?: number; hello?: KvHello } = {}) {
  const errors: Error[] = [];
  const timeoutMs = opts.timeoutMs ?? 5000;
  const l = new KvLink(
    socketFrameWriter({
      hello: opts.hello ?? hello,
      tls: opts.tls ?? null,
      timeoutMs,
      // localhost: the name the test certificate carries.
      endpoint: () => Promise.resolve({ host: 'localhost', port }),
    }),
    1,
    1000,
    timeoutMs,
    (e) => errors.push(e),
  );
  cleanup.push(() => {
    l.abort('test over');
  });
  return { link: l, errors };
}

const plain = (f: KvFrame) => ({ ...f, key: Buffer.from(f.key), value: Buffer.from(f.value) });

describe('K/V sockets', () => {
  it('carry every frame intact, in order, and the receiver’s summary back; frames are released once written', async () => {
    const { run, failed, server } = await receiver();
    const { link: l, errors } = link(server.port);
    const sent = [...frames(0, 100, 16), ...frames(1, 40, 16)];
    let released = 0;
    await l.enqueue(sent.slice(0, 7), () => released++);
    await l.enqueue(sent.slice(7), () => released++);
    const summary = await l.finish();
    expect(summary).toEqual({ frames: sent.length, bytes: 2 * 140 * 32 });
    expect(released).toBe(2);
    expect(run.frames.map(plain)).toEqual(sent.map(plain));
    expect(run.closed).toEqual([null]);
    expect(failed).toEqual([]);
    expect(errors).toEqual([]);
    expect(l.stats).toMatchObject({ framesSent: sent.length, bytesSent: 2 * 140 * 32 });
  });

  it('with mutual TLS carry the same bytes, and refuse a client whose certificate another CA signed', async () => {
    const certs = makeTestCerts();
    const { run, server } = await receiver(certs.ranks);
    const good = link(server.port, { tls: certs.ranks });
    const sent = frames(2, 64, 16);
    await good.link.enqueue(sent);
    expect((await good.link.finish()).frames).toBe(sent.length);
    expect(run.frames.map(plain)).toEqual(sent.map(plain));

    const rogue = link(server.port, { tls: certs.rogue, timeoutMs: 3000 });
    await rogue.link.enqueue(frames(3, 8, 8)).catch(() => undefined);
    await expect(rogue.link.finish()).rejects.toThrow(/KV stream to rank 1 failed/);
    expect(run.frames).toHaveLength(sent.length);
  });

  it('refuse a corrupted frame with the checksum named: the sender’s link fails and the run is failed', async () => {
    const { run, failed, server } = await receiver();
    const { link: l, errors } = link(server.port);
    const [first, second] = frames(0, 32, 16);
    const bad = { ...second!, crc32: second!.crc32 ^ 1 };
    await l.enqueue([first!, bad]);
    await expect(l.finish()).rejects.toThrow(/rank 1 ended the stream: .*checksum mismatch/);
    expect(errors[0]?.message).toMatch(/checksum mismatch/);
    expect(run.frames).toHaveLength(1);
    expect(failed[0]).toMatch(/checksum mismatch/);
  });

  it('refuse a hello of another geometry before any frame, naming both', async () => {
    const { run, server } = await receiver();
    const { link: l } = link(server.port, { hello: { ...hello, kvHeads: 8 } });
    await l.enqueue(frames(0, 4, 4)).catch(() => undefined);
    await expect(l.finish()).rejects.toThrow(/× \[8, 4\] dtype 1; rank 1 has 4 × \[2, 4\] dtype 1/);
    expect(run.frames).toHaveLength(0);
  });

  it('tell the run when a sender goes away inside a message, and refuse an oversize one before reading it', async () => {
    const { run, server } = await receiver(null, 4096);
    const socket = connect({ host: '127.0.0.1', port: server.port });
    await once(socket, 'connect');
    socket.write(helloBytes({ body: { $case: 'hello', value: hello } }));
    const parts = frameWireParts(frames(0, 16, 16)[0]!);
    socket.write(Buffer.concat(parts.map((p) => Buffer.from(p))).subarray(0, 100));
    await new Promise((r) => setTimeout(r, 50));
    socket.destroy();
    await eventually('the run hears that the stream closed', () => run.closed.length === 1);
    expect(run.closed[0]).toMatch(/before the end of the stream, inside a message/);

    const big = connect({ host: '127.0.0.1', port: server.port });
    await once(big, 'connect');
    const answer = once(big, 'data');
    big.write(helloBytes({ body: { $case: 'hello', value: hello } }));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(1 << 30, 0);
    big.write(length);
    const [reply] = (await answer) as [Buffer];
    expect(reply.toString('latin1')).toMatch(/1073741824 bytes is over the limit of 4096/);
    big.destroy();
  });

  it('fail a link whose receiver stops reading, after the backpressure deadline', async () => {
    const { run, server } = await receiver(null, 4 << 20);
    let release: () => void = () => undefined;
    run.hold = new Promise((r) => (release = r));
    // 64 MiB: more than the socket buffers and the sender's own hold before it waits.
    const toSend = [0, 1, 2, 3].flatMap((layer) => frames(layer, 1 << 19, 1 << 15));
    const { link: l, errors } = link(server.port, { timeoutMs: 500 });
    await l.enqueue(toSend);
    await expect(l.finish()).rejects.toThrow(/stopped reading K\/V for 500 ms \(backpressure deadline\)/);
    expect(errors).toEqual([]); // the run hears it from finish(), as with every link failure it causes itself
    release();
  });

  it('let a stream still open end, with its answer, when the receiving rank closes', async () => {
    // A receiving rank whose own run is over may stop while the sender's end of stream is on its way.
    const { run, server } = await receiver();
    const { link: l } = link(server.port);
    await l.enqueue(frames(0, 16, 16));
    await eventually('the frame arrives', () => run.frames.length === 1);
    const closing = server.close(5000);
    expect(await l.finish()).toEqual({ frames: 1, bytes: 2 * 16 * 32 });
    await closing;
    expect(run.closed).toEqual([null]);
  });

  it('name the rank when it takes no K/V socket', async () => {
    const errors: Error[] = [];
    const l = new KvLink(
      socketFrameWriter({
        hello,
        tls: null,
        timeoutMs: 1000,
        endpoint: () => Promise.resolve({ host: 'localhost', port: 0 }),
      }),
      1,
      10,
      1000,
      (e) => errors.push(e),
    );
    await expect(l.finish()).rejects.toThrow(/rank 1 takes no K\/V socket/);
  });

  it('take the host of a rank’s gRPC address', () => {
    expect(hostOf('rank-1.job.ns.svc:50051')).toBe('rank-1.job.ns.svc');
    expect(hostOf('127.0.0.1:4000')).toBe('127.0.0.1');
    expect(hostOf('[::1]:4000')).toBe('::1');
  });
});
