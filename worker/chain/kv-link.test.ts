// KvLink against a real gRPC server on a real socket: the server plays the receiving rank and
// decides how fast (or whether) it reads.
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  Server,
  ServerCredentials,
  status,
  type ServerReadableStream,
  type sendUnaryData,
} from '@grpc/grpc-js';
import {
  DType,
  type KvFrame,
  type KvHello,
  type KvMessage,
  type KvStreamSummary,
} from '../../core/gen/runahead/v1/rank.ts';
import { DEFAULT_LIMITS, grpcOptions } from '../../core/protocol.ts';
import { framesOf, type KvGeometry } from './frames.ts';
import { KvLink, LinkError } from './kv-link.ts';
import { Peers, RankServiceDefinition } from './transport.ts';

type StreamKv = (
  call: ServerReadableStream<KvMessage, KvStreamSummary>,
  callback: sendUnaryData<KvStreamSummary>,
) => void;

const g: KvGeometry = { dtype: DType.DTYPE_FLOAT32, kvHeads: 8, headDim: 64, bytesPerElement: 4 }; // 2 KiB per token
const hello: KvHello = {
  from: { protocolVersion: 1, modelFingerprint: 'test', runId: 'run', rank: 0, worldSize: 2 },
  toRank: 1,
  dtype: g.dtype,
  numLayers: 4,
  kvHeads: g.kvHeads,
  headDim: g.headDim,
};

/** `count` frames of `tokens` tokens each for `layer`. */
function frames(layer: number, count: number, tokens = 1): KvFrame[] {
  const block = new Float32Array(count * tokens * 8 * 64).fill(layer);
  return framesOf(layer, 0, block, block, g, tokens * 2 * 2048);
}

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** A receiving rank that serves only StreamKv, and a client to it. */
async function peer(streamKv: StreamKv): Promise<Peers> {
  const server = new Server(grpcOptions(DEFAULT_LIMITS));
  server.addService(RankServiceDefinition, { streamKv });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  const peers = new Peers([`127.0.0.1:${port}`], null, DEFAULT_LIMITS);
  cleanup.push(() => {
    peers.close();
    server.forceShutdown();
  });
  return peers;
}

/** A peer that does not read until told to (a busy rank): HTTP/2 flow control fills up, then the queue. */
function slowReader(): { layers: number[]; reading: Promise<() => void>; streamKv: StreamKv } {
  const layers: number[] = [];
  let started: (resume: () => void) => void = () => undefined;
  const reading = new Promise<() => void>((resolve) => (started = resolve));
  return {
    layers,
    reading,
    streamKv: (call, callback) => {
      call.pause();
      call.on('data', (m: KvMessage) => {
        if (m.body?.$case === 'frame') layers.push(m.body.value.layer);
      });
      call.on('end', () => {
        callback(null, { frames: layers.length, bytes: 0 });
      });
      started(() => call.resume());
    },
  };
}

/** A peer that records every message and answers with what it counted once the stream ends. */
function recorder(): { messages: KvMessage[]; streamKv: StreamKv } {
  const messages: KvMessage[] = [];
  return {
    messages,
    streamKv: (call, callback) => {
      let frameCount = 0;
      call.on('data', (m: KvMessage) => {
        messages.push(m);
        if (m.body?.$case === 'frame') frameCount++;
      });
      call.on('end', () => {
        callback(null, { frames: frameCount, bytes: 0 });
      });
    },
  };
}

const settledWithin = async (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<boolean>((r) =>
      setTimeout(() => {
        r(false);
      }, ms),
    ),
  ]);

describe('KvLink', () => {
  it('opens with the hello, sends every frame once, and returns the peer’s summary', async () => {
    const { messages, streamKv } = recorder();
    const errors: Error[] = [];
    const link = KvLink.overGrpc((await peer(streamKv)).client(0), hello, 4, 5000, (e) => errors.push(e));
    const encoded: number[] = [];
    await link.enqueue(frames(0, 3), () => encoded.push(0));
    await link.enqueue(frames(1, 2), () => encoded.push(1));
    await link.enqueue([], () => encoded.push(2)); // nothing to send: done at once
    const summary = await link.finish();
    expect([...encoded].sort()).toEqual([0, 1, 2]);
    expect(summary.frames).toBe(5);
    expect(messages[0]?.body?.$case).toBe('hello');
    expect(messages.slice(1).map((m) => (m.body?.$case === 'frame' ? m.body.value.layer : -1))).toEqual([
      0, 0, 0, 1, 1,
    ]);
    expect(link.stats.framesSent).toBe(5);
    expect(link.stats.bytesSent).toBe(5 * 2 * 2048);
    expect([...link.stats.sendSpans.keys()]).toEqual([0, 1]);
    for (const span of link.stats.sendSpans.values()) expect(span.end).toBeGreaterThanOrEqual(span.start);
    expect(errors).toEqual([]);
  });

  it('holds the producer once `capacity` frames wait, and lets it go as the peer reads', async () => {
    const peer1 = slowReader();
    const link = KvLink.overGrpc((await peer(peer1.streamKv)).client(0), hello, 2, 10_000, () => undefined);
    // 64 frames of 128 KiB: far more than the socket and HTTP/2 buffers take while nobody reads.
    const producing = link.enqueue(frames(0, 64, 32));
    const resume = await peer1.reading;
    expect(await settledWithin(producing, 500)).toBe(false);
    resume();
    await producing;
    expect((await link.finish()).frames).toBe(64);
    expect(peer1.layers).toHaveLength(64);
  });

  it('sends the lowest layer first among the frames still queued', async () => {
    const peer1 = slowReader();
    const link = KvLink.overGrpc(
      (await peer(peer1.streamKv)).client(0),
      hello,
      1000,
      10_000,
      () => undefined,
    );
    await link.enqueue(frames(3, 48, 32)); // more than gRPC takes while the peer does not read
    await link.enqueue(frames(2, 4, 32));
    (await peer1.reading)();
    await link.finish();
    const layers = peer1.layers;
    expect(layers).toHaveLength(52);
    // Layer 2 was queued last but goes out before the layer-3 frames still waiting.
    const firstOfLayer2 = layers.indexOf(2);
    expect(firstOfLayer2).toBeGreaterThan(0);
    expect(layers.lastIndexOf(3)).toBeGreaterThan(firstOfLayer2);
    expect(layers.slice(firstOfLayer2, firstOfLayer2 + 4)).toEqual([2, 2, 2, 2]);
  });

  it('fails after the peer timeout when the peer stops reading (backpressure deadline)', async () => {
    const peers = await peer((call) => {
      call.pause(); // never reads, never answers
    });
    const errors: Error[] = [];
    const link = KvLink.overGrpc(peers.client(0), hello, 2, 300, (e) => errors.push(e));
    const producing = link.enqueue(frames(0, 64, 32));
    await expect(producing).rejects.toThrow(
      /rank 1 stopped reading K\/V for 300 ms \(backpressure deadline\)/,
    );
    await expect(link.finish()).rejects.toBeInstanceOf(LinkError);
    await expect(link.enqueue(frames(1, 1))).rejects.toThrow(/backpressure deadline/);
  });

  it('reports a peer that refuses the stream, naming the rank and its reason', async () => {
    const peers = await peer((_call, callback) => {
      callback({ code: status.FAILED_PRECONDITION, details: 'not a K/V source of rank 1' });
    });
    const errors: Error[] = [];
    const link = KvLink.overGrpc(peers.client(0), hello, 4, 5000, (e) => errors.push(e));
    const deadline = Date.now() + 5000;
    while (errors.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(errors.map((e) => e.message)).toEqual(['KV stream to rank 1 failed: not a K/V source of rank 1']);
    await expect(link.enqueue(frames(0, 1))).rejects.toThrow(/KV stream to rank 1 failed/);
  });

  it('stops at once when aborted: queued and later frames fail with the reason', async () => {
    const peers = await peer((call) => {
      call.pause();
    });
    const link = KvLink.overGrpc(peers.client(0), hello, 1, 10_000, () => undefined);
    const producing = link.enqueue(frames(0, 64, 32));
    expect(await settledWithin(producing, 200)).toBe(false);
    link.abort('rank 0 stopped: run aborted');
    await expect(producing).rejects.toThrow('rank 0 stopped: run aborted');
    await expect(link.finish()).rejects.toThrow('rank 0 stopped: run aborted');
  });

  it('fails finish() when the peer never acknowledges the end of the stream', async () => {
    const peers = await peer(() => undefined); // reads nothing, answers nothing
    const link = KvLink.overGrpc(peers.client(0), hello, 4, 300, () => undefined);
    await expect(link.finish()).rejects.toThrow(
      /rank 1 did not acknowledge the end of the KV stream in 300 ms/,
    );
  });
});
