// The receiving rank of `runahead bench link`: a rank's gRPC server (transport.ts rankServer, its
// credentials and message limits) whose StreamKv runs the chain's receiver (serveKvStream) into a
// KvInbox — the frame checks, the CRC and the copy into shared buffers that a rank's run makes —
// or a raw socket whose frames are copied into per-layer buffers. Each gRPC trial gets a new inbox
// whose buffers come from the receiver's InboxBuffers, as a rank's runs take theirs from the rank's;
// the raw socket copies into fresh buffers.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { crc32 } from '../../worker/chain/checksum.ts';
import type { Server, handleClientStreamingCall } from '@grpc/grpc-js';
import type { Identity, KvFrame, KvMessage, KvStreamSummary } from '../../core/gen/runahead/v1/rank.ts';
import { PROTOCOL_VERSION, identityProblem, maxMessageBytes } from '../../core/protocol.ts';
import type { HostArray } from '../../worker/model/tensor.ts';
import { InboxBuffers } from '../../worker/chain/inbox-buffers.ts';
import { KvInbox } from '../../worker/chain/kv-inbox.ts';
import { serveKvStream, type KvReceiverContext, type KvSink } from '../../worker/chain/kv-receiver.ts';
import { KvSocketServer } from '../../worker/chain/kv-socket.ts';
import {
  RankServiceDefinition,
  rankServer,
  serverCredentials,
  type TlsFiles,
} from '../../worker/chain/transport.ts';
import type { CrossingPath, ReceiveResult } from './link-ipc.ts';
import { geometryOf, rowBytes, type KvShape, type LinkSettings } from './link-plan.ts';
import { BENCH_FINGERPRINT, linkLimits } from './link-sender.ts';
import { TcpFrameReader } from './link-tcp.ts';

const bytesOf = (a: HostArray) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** One armed transfer: where its bytes go, and how it ended. */
abstract class Arrival {
  readonly trial: string;
  private readonly cpuStart = process.cpuUsage();
  private cpuMs = 0;
  private over = false;
  private settle: { resolve(): void; reject(e: Error): void } = { resolve() {}, reject() {} };
  readonly ended: Promise<void>;

  constructor(trial: string) {
    this.trial = trial;
    this.ended = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.ended.catch(() => undefined);
  }

  /** The transfer is over: its CPU time stops here, before the checksum of the result. */
  protected end(err: Error | null): void {
    if (this.over) return;
    this.over = true;
    const d = process.cpuUsage(this.cpuStart);
    this.cpuMs = (d.user + d.system) / 1000;
    if (err) this.settle.reject(err);
    else this.settle.resolve();
  }

  abstract readonly frames: number;
  abstract readonly bytes: number;
  /** CRC-32 of every layer's K then V as they arrived. */
  protected abstract checksum(): Promise<number>;

  async result(): Promise<ReceiveResult> {
    await this.ended;
    return { cpuMs: this.cpuMs, bytes: this.bytes, frames: this.frames, checksum: await this.checksum() };
  }
}

/** Received K/V kept between gRPC trials, as a rank keeps them between runs (rank-node.ts). */
const inboxBuffers = new InboxBuffers(8 * 2 ** 30);

/** A gRPC transfer: the run's side of the chain's receiver, as RankRun is (KvSink). */
class GrpcArrival extends Arrival implements KvSink {
  private readonly inbox: KvInbox;
  private readonly layers: number;
  frames = 0;

  constructor(trial: string, shape: KvShape, settings: LinkSettings) {
    super(trial);
    this.layers = shape.layers;
    this.inbox = new KvInbox(
      {
        numLayers: shape.layers,
        geometry: geometryOf(shape),
        computeDType: shape.dtype,
        // The receiver is rank 1 of 2 with an empty chunk: all it holds is rank 0's past.
        chunkStart: shape.tokens,
        chunkEnd: shape.tokens,
        contextLength: shape.tokens,
        sources: [{ rank: 0, start: 0, end: shape.tokens }],
        maxFrameBytes: settings.frameBytes,
      },
      inboxBuffers,
    );
  }

  get bytes(): number {
    return this.inbox.bytesReceived;
  }

  expectsFrom(rank: number): boolean {
    return this.inbox.expects(rank);
  }

  onFrame(fromRank: number, frame: KvFrame): Promise<void> {
    this.inbox.accept(fromRank, frame);
    this.frames++;
    return Promise.resolve();
  }

  onStreamClosed(fromRank: number, cause: string | null): void {
    this.inbox.senderClosed(fromRank, cause);
    this.end(cause === null ? null : new Error(`the K/V stream ended: ${cause}`));
  }

  fail(err: Error): void {
    this.inbox.fail(err);
    this.end(err);
  }

  protected async checksum(): Promise<number> {
    let c = 0;
    for (let l = 0; l < this.layers; l++) {
      const past = (await this.inbox.layer(l, 1000)).past;
      if (!past) throw new Error(`layer ${l} holds no K/V`);
      c = crc32(bytesOf(past.value), crc32(bytesOf(past.key), c));
    }
    this.inbox.release();
    return c;
  }
}

/** A raw TCP transfer: frames copied into one K and one V buffer per layer. */
class TcpArrival extends Arrival {
  private readonly keys: Uint8Array[];
  private readonly values: Uint8Array[];
  private readonly expected: number;
  readonly reader: TcpFrameReader;

  constructor(trial: string, shape: KvShape) {
    super(trial);
    const layerBytes = shape.tokens * rowBytes(shape);
    this.keys = Array.from({ length: shape.layers }, () => new Uint8Array(layerBytes));
    this.values = Array.from({ length: shape.layers }, () => new Uint8Array(layerBytes));
    this.expected = 2 * shape.layers * layerBytes;
    this.reader = new TcpFrameReader({
      rowBytes: rowBytes(shape),
      numLayers: shape.layers,
      key: (l) => this.keys[l]!,
      value: (l) => this.values[l]!,
    });
  }

  get frames(): number {
    return this.reader.frames;
  }

  get bytes(): number {
    return this.reader.bytes;
  }

  /** Takes a chunk; true once everything has arrived. */
  take(chunk: Uint8Array): boolean {
    this.reader.push(chunk);
    if (this.reader.bytes < this.expected) return false;
    this.end(null);
    return true;
  }

  fail(err: Error): void {
    this.end(err);
  }

  protected checksum(): Promise<number> {
    let c = 0;
    for (let l = 0; l < this.keys.length; l++) c = crc32(this.values[l]!, crc32(this.keys[l]!, c));
    return Promise.resolve(c);
  }
}

type Listener =
  | { readonly path: 'grpc' | 'grpc-tls'; readonly server: Server; readonly settings: LinkSettings }
  | {
      readonly path: 'socket' | 'socket-tls';
      readonly server: KvSocketServer;
      readonly settings: LinkSettings;
    }
  | { readonly path: 'tcp'; readonly server: TcpServer; readonly sockets: Set<Socket> };

export class LinkReceiver {
  private readonly shape: KvShape;
  private listener: Listener | null = null;
  private arrival: GrpcArrival | TcpArrival | null = null;

  constructor(shape: KvShape) {
    this.shape = shape;
  }

  /** Serve `path` on a loopback port (closing the previous listener); resolves with the port. */
  async listen(path: CrossingPath, settings: LinkSettings, tls: TlsFiles | null): Promise<number> {
    await this.close();
    if (path === 'tcp') {
      const sockets = new Set<Socket>();
      const server = createServer({ noDelay: true }, (socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('data', (chunk: Buffer) => {
          this.onTcpData(socket, chunk);
        });
        socket.on('error', (err) => {
          if (this.arrival instanceof TcpArrival) this.arrival.fail(err);
        });
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      this.listener = { path, server, sockets };
      return (server.address() as AddressInfo).port;
    }
    if (path === 'socket' || path === 'socket-tls') {
      const context = this.grpcContext();
      const limits = linkLimits(settings);
      const server = await KvSocketServer.listen(
        '127.0.0.1',
        0,
        path === 'socket-tls' ? tls : null,
        maxMessageBytes(limits),
        () => context,
      );
      this.listener = { path, server, settings };
      return server.port;
    }
    const server = rankServer(linkLimits(settings), settings.windowBytes);
    const context = this.grpcContext();
    const streamKv: handleClientStreamingCall<KvMessage, KvStreamSummary> = (call, callback) => {
      serveKvStream(call, callback, context);
    };
    server.addService(RankServiceDefinition, { streamKv });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', serverCredentials(path === 'grpc-tls' ? tls : null), (err, p) => {
        if (err) reject(err);
        else resolve(p);
      });
    });
    this.listener = { path, server, settings };
    return port;
  }

  private onTcpData(socket: Socket, chunk: Buffer): void {
    const arrival = this.arrival;
    if (!(arrival instanceof TcpArrival)) {
      socket.destroy(new Error('bytes arrived before the trial was armed'));
      return;
    }
    try {
      if (arrival.take(chunk)) socket.write('k');
    } catch (err) {
      arrival.fail(err as Error);
      socket.destroy();
    }
  }

  /** What the chain's receiver needs from the rank serving the stream (rank-node.ts's kvContext). */
  private grpcContext(): KvReceiverContext<GrpcArrival> {
    const geometry = geometryOf(this.shape);
    return {
      rank: 1,
      geometry,
      numLayers: this.shape.layers,
      checkIdentity: (from: Identity | undefined): Identity => {
        if (!from) throw new Error('the K/V stream carries no identity');
        const mine = {
          protocolVersion: PROTOCOL_VERSION,
          modelFingerprint: BENCH_FINGERPRINT,
          runId: from.runId,
          rank: 1,
          worldSize: 2,
        };
        const problem = identityProblem(mine, from);
        if (problem) throw new Error(problem);
        return from;
      },
      runFor: (runId: string) => {
        const a = this.arrival;
        return a instanceof GrpcArrival && a.trial === runId
          ? Promise.resolve(a)
          : Promise.reject(new Error(`no trial ${runId} is armed`));
      },
      failRun: (run, err) => {
        run.fail(err);
      },
    };
  }

  /** Fresh buffers for the next transfer, and its CPU clock started. */
  arm(trial: string): void {
    const l = this.listener;
    if (!l) throw new Error('arm before listen');
    this.arrival =
      l.path === 'tcp' ? new TcpArrival(trial, this.shape) : new GrpcArrival(trial, this.shape, l.settings);
  }

  async collect(trial: string, timeoutMs: number): Promise<ReceiveResult> {
    const a = this.arrival;
    if (a?.trial !== trial) throw new Error(`trial ${trial} was not armed`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`trial ${trial}: ${a.bytes} B in ${a.frames} frames after ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([a.result(), timeout]);
    } finally {
      clearTimeout(timer);
      this.arrival = null;
    }
  }

  async close(): Promise<void> {
    const l = this.listener;
    this.listener = null;
    if (!l) return;
    if (l.path === 'tcp') {
      for (const s of l.sockets) s.destroy();
      await new Promise<void>((resolve) =>
        l.server.close(() => {
          resolve();
        }),
      );
    } else if (l.server instanceof KvSocketServer) {
      await l.server.close();
    } else {
      l.server.forceShutdown();
    }
  }
}
