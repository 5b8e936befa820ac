// The sending rank of `runahead bench link`: it holds every layer's K and V, as a chain rank holds
// the cache it computed, and sends them as a rank's run does (rank-run.ts): each layer put in a
// KvOutbox, which cuts it into frames (frames.ts: views and CRC-32) and queues them on a KvLink to
// the receiver's rank client (transport.ts). Or over a raw socket, or copied inside the process.
import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { crc32 } from '../../worker/chain/checksum.ts';
import type { KvHello } from '../../core/gen/runahead/v1/rank.ts';
import { DEFAULT_LIMITS, PROTOCOL_VERSION, type LinkLimits } from '../../core/protocol.ts';
import type { HostArray } from '../../worker/model/tensor.ts';
import type { KvBlock } from '../../worker/runtime/layer-engine.ts';
import { framesOf, tokensPerFrame, type KvGeometry } from '../../worker/chain/frames.ts';
import { KvLink } from '../../worker/chain/kv-link.ts';
import type { KvFrameWriter } from '../../worker/chain/kv-frame-writer.ts';
import { grpcFrameWriter } from '../../worker/chain/grpc-frame-writer.ts';
import { socketFrameWriter } from '../../worker/chain/kv-socket.ts';
import { KvOutbox } from '../../worker/chain/kv-outbox.ts';
import { Peers, type TlsFiles } from '../../worker/chain/transport.ts';
import type { CrossingPath, LocalPath, SendResult } from './link-ipc.ts';
import { geometryOf, rowBytes, type KvShape, type LinkSettings } from './link-plan.ts';
import { tcpHeader } from './link-tcp.ts';

/** The model fingerprint both ends of the benchmark claim: the receiver refuses any other. */
export const BENCH_FINGERPRINT = 'runahead-bench-link';

export const linkLimits = (s: LinkSettings): LinkLimits => ({
  ...DEFAULT_LIMITS,
  maxFrameBytes: s.frameBytes,
});

const bytesOf = (a: HostArray) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

type Link =
  | { readonly path: 'grpc' | 'grpc-tls'; readonly peers: Peers; readonly settings: LinkSettings }
  | {
      readonly path: 'socket' | 'socket-tls';
      readonly port: number;
      readonly tls: TlsFiles | null;
      readonly timeoutMs: number;
      readonly settings: LinkSettings;
    }
  | { readonly path: 'tcp'; readonly socket: Socket; readonly settings: LinkSettings };

export class LinkSender {
  private readonly shape: KvShape;
  private readonly geometry: KvGeometry;
  private readonly key: HostArray[];
  private readonly value: HostArray[];
  private link: Link | null = null;

  constructor(shape: KvShape) {
    this.shape = shape;
    this.geometry = geometryOf(shape);
    const elements = shape.tokens * shape.kvHeads * shape.headDim;
    const make = (): HostArray => {
      const a = shape.dtype === 'float32' ? new Float32Array(elements) : new Uint16Array(elements);
      randomFillSync(bytesOf(a));
      return a;
    };
    this.key = Array.from({ length: shape.layers }, make);
    this.value = Array.from({ length: shape.layers }, make);
  }

  /** CRC-32 of every layer's K then V, in layer order: what the receiver must end up holding. */
  checksum(): number {
    let c = 0;
    for (let l = 0; l < this.shape.layers; l++) {
      c = crc32(bytesOf(this.value[l]!), crc32(bytesOf(this.key[l]!), c));
    }
    return c;
  }

  async connect(
    path: CrossingPath,
    port: number,
    settings: LinkSettings,
    tls: TlsFiles | null,
    timeoutMs: number,
  ): Promise<void> {
    this.close();
    // localhost, not 127.0.0.1: the name TLS checks (an IP address as TLS server name is deprecated).
    const address = `localhost:${port}`;
    if (path === 'socket' || path === 'socket-tls') {
      // A K/V socket per transfer, as a rank opens one per run; the port is known here, where a
      // rank asks its receiver for it (KvEndpoint).
      this.link = { path, port, tls: path === 'socket-tls' ? tls : null, timeoutMs, settings };
      return;
    }
    if (path === 'tcp') {
      const socket = connect({ host: '127.0.0.1', port, noDelay: true });
      await once(socket, 'connect');
      this.link = { path, socket, settings };
      return;
    }
    // Rank 0 sends to rank 1; the receiver's address is rank 1's.
    const peers = new Peers(['(this rank)', address], path === 'grpc-tls' ? tls : null, linkLimits(settings));
    await new Promise<void>((resolve, reject) => {
      peers.client(1).waitForReady(Date.now() + timeoutMs, (err) => {
        if (err) reject(new Error(`cannot connect to the receiver at ${address}: ${err.message}`));
        else resolve();
      });
    });
    this.link = { path, peers, settings };
  }

  /** One transfer of every layer's K and V over the connected link. */
  async send(trial: string): Promise<SendResult> {
    const link = this.link;
    if (!link) throw new Error('send before connect');
    if (link.path === 'tcp') return this.sendTcp(link.socket, link.settings);
    if ('peers' in link) {
      const client = link.peers.client(1);
      return this.sendChain((hello) => grpcFrameWriter(client, hello), link.settings, trial);
    }
    const { port, tls, timeoutMs } = link;
    return this.sendChain(
      (hello) =>
        socketFrameWriter({
          hello,
          tls,
          timeoutMs,
          endpoint: () => Promise.resolve({ host: 'localhost', port }),
        }),
      link.settings,
      trial,
    );
  }

  private async sendChain(
    writer: (hello: KvHello) => KvFrameWriter,
    settings: LinkSettings,
    trial: string,
  ): Promise<SendResult> {
    const { layers } = this.shape;
    const g = this.geometry;
    const limits = linkLimits(settings);
    const hello: KvHello = {
      from: {
        protocolVersion: PROTOCOL_VERSION,
        modelFingerprint: BENCH_FINGERPRINT,
        runId: trial,
        rank: 0,
        worldSize: 2,
      },
      toRank: 1,
      dtype: g.dtype,
      numLayers: layers,
      kvHeads: g.kvHeads,
      headDim: g.headDim,
    };
    // A failure surfaces through the promises awaited below (room, drained, finish).
    const failed = () => undefined;
    const start = performance.now();
    const cpu = process.cpuUsage();
    // As RankRun does: a link per run and an outbox before it, bounded as the rank bounds it; every
    // layer put as soon as it exists (here: at once, no compute between), then drained and closed.
    const link = new KvLink(writer(hello), 1, limits.maxQueuedFrames, limits.peerTimeoutMs, failed);
    const outbox = new KvOutbox(
      new Map([[1, link]]),
      (layer, block) => framesOf(layer, 0, block.key, block.value, g, limits.maxFrameBytes),
      limits.maxQueuedFrames * limits.maxFrameBytes,
      failed,
    );
    for (let l = 0; l < layers; l++) {
      const block: KvBlock = { tokens: this.shape.tokens, key: this.key[l]!, value: this.value[l]! };
      outbox.put(l, block);
      if (!outbox.hasRoom()) await outbox.room();
    }
    await outbox.drained();
    const summary = await link.finish();
    const elapsedMs = performance.now() - start;
    const cpuMs = cpuMsSince(cpu);
    if (summary.bytes !== link.stats.bytesSent) {
      throw new Error(`the receiver acknowledged ${summary.bytes} B of ${link.stats.bytesSent} B sent`);
    }
    return { elapsedMs, cpuMs, bytes: link.stats.bytesSent, frames: link.stats.framesSent };
  }

  private async sendTcp(socket: Socket, settings: LinkSettings): Promise<SendResult> {
    const row = rowBytes(this.shape);
    const step = tokensPerFrame(this.geometry, settings.frameBytes);
    const { layers, tokens } = this.shape;
    // The receiver answers one byte once it holds everything.
    const acknowledged = once(socket, 'data');
    const start = performance.now();
    const cpu = process.cpuUsage();
    let frames = 0;
    let bytes = 0;
    for (let l = 0; l < layers; l++) {
      const k = bytesOf(this.key[l]!);
      const v = bytesOf(this.value[l]!);
      for (let t = 0; t < tokens; t += step) {
        const n = Math.min(step, tokens - t);
        socket.cork();
        socket.write(tcpHeader(l, t, n, n * row));
        socket.write(k.subarray(t * row, (t + n) * row));
        const more = socket.write(v.subarray(t * row, (t + n) * row));
        socket.uncork();
        frames++;
        bytes += 2 * n * row;
        if (!more) await once(socket, 'drain');
      }
    }
    await acknowledged;
    return { elapsedMs: performance.now() - start, cpuMs: cpuMsSince(cpu), bytes, frames };
  }

  /**
   * A path inside this process over the same frames. memcpy: into fresh memory, as every receiver
   * does per run (page faults included); memcpy-warm: into memory already written once; crc32: the
   * checksum pass each end of the gRPC link makes.
   */
  local(path: LocalPath, frameBytes: number): SendResult {
    const row = rowBytes(this.shape);
    const step = tokensPerFrame(this.geometry, frameBytes);
    const { layers, tokens } = this.shape;
    const layerBytes = tokens * row;
    const warm =
      path === 'memcpy-warm'
        ? Array.from({ length: 2 * layers }, () => new Uint8Array(layerBytes).fill(1))
        : null;
    const start = performance.now();
    const cpu = process.cpuUsage();
    let frames = 0;
    let sum = 0;
    for (let l = 0; l < layers; l++) {
      const k = bytesOf(this.key[l]!);
      const v = bytesOf(this.value[l]!);
      const dk = warm ? warm[2 * l]! : path === 'memcpy' ? new Uint8Array(layerBytes) : null;
      const dv = warm ? warm[2 * l + 1]! : path === 'memcpy' ? new Uint8Array(layerBytes) : null;
      for (let t = 0; t < tokens; t += step) {
        const a = t * row;
        const b = Math.min(tokens, t + step) * row;
        if (dk && dv) {
          dk.set(k.subarray(a, b), a);
          dv.set(v.subarray(a, b), a);
        } else sum += crc32(v.subarray(a, b), crc32(k.subarray(a, b)));
        frames++;
      }
    }
    const elapsedMs = performance.now() - start;
    // Keeps the checksums observable, so that the loop is not optimized away.
    if (sum === -1) throw new Error('unreachable');
    return { elapsedMs, cpuMs: cpuMsSince(cpu), bytes: 2 * layers * layerBytes, frames };
  }

  close(): void {
    const link = this.link;
    this.link = null;
    if (!link) return;
    if (link.path === 'tcp') link.socket.destroy();
    else if ('peers' in link) link.peers.close();
  }
}
