// The sending end of one K/V link: a client stream to a peer's StreamKv. Frames wait in a bounded
// queue, lowest layer first (the successor needs layer l before l+1, even when frames of l+1 that
// were forwarded from the predecessor are already queued); when the queue is full the producer
// waits, and when the socket is full (HTTP/2 flow control) the pump waits for 'drain'. A stalled
// peer fails the link after the peer timeout instead of hanging it.
import { performance } from 'node:perf_hooks';
import type { ClientWritableStream, ServiceError } from '@grpc/grpc-js';
import type {
  KvFrame,
  KvHello,
  KvMessage,
  KvStreamSummary,
  RankClient,
} from '../../core/gen/runahead/v1/rank.ts';
import { EncodeBuffers, encodeKvMessage } from './kv-codec.ts';

export class LinkError extends Error {
  override readonly name = 'LinkError';
}

export interface LinkStats {
  framesSent: number;
  bytesSent: number;
  /** Per layer: first frame handed to gRPC → last frame flushed, epoch ms. */
  readonly sendSpans: Map<number, { start: number; end: number }>;
}

const now = () => performance.timeOrigin + performance.now();

export class KvLink {
  private readonly call: ClientWritableStream<KvMessage>;
  private readonly toRank: number;
  private readonly queues = new Map<number, KvFrame[]>();
  private queued = 0;
  private readonly capacity: number;
  private readonly timeoutMs: number;
  private spaceWaiters: (() => void)[] = [];
  private pumping = false;
  private ended = false;
  private failure: Error | null = null;
  private readonly summary: Promise<KvStreamSummary>;
  private flushWaiters: (() => void)[] = [];
  private inFlight = 0;
  /** Frames are written encoded (transport.ts passes them through), into buffers reused per link. */
  private readonly writer: ClientWritableStream<KvMessage | Buffer>;
  private readonly buffers = new EncodeBuffers();
  /** enqueue()'s onEncoded, by the last frame of its call. */
  private readonly encodedHooks = new Map<KvFrame, () => void>();
  readonly stats: LinkStats = { framesSent: 0, bytesSent: 0, sendSpans: new Map() };

  constructor(
    client: RankClient,
    hello: KvHello,
    capacity: number,
    timeoutMs: number,
    onError: (err: Error) => void,
  ) {
    this.toRank = hello.toRank;
    this.capacity = capacity;
    this.timeoutMs = timeoutMs;
    let settle: { resolve(s: KvStreamSummary): void; reject(e: Error): void };
    this.summary = new Promise((resolve, reject) => (settle = { resolve, reject }));
    this.summary.catch(() => undefined);
    this.call = client.streamKv((err: ServiceError | null, summary?: KvStreamSummary) => {
      if (err) {
        const e = new LinkError(`KV stream to rank ${this.toRank} failed: ${err.details || err.message}`);
        this.fail(e);
        settle.reject(e);
        onError(e);
      } else settle.resolve(summary ?? { frames: 0, bytes: 0 });
    });
    this.call.on('error', () => undefined); // reported through the callback above
    this.writer = this.call as ClientWritableStream<KvMessage | Buffer>;
    this.call.write({ body: { $case: 'hello', value: hello } });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.spaceWaiters.splice(0)) w();
    for (const w of this.flushWaiters.splice(0)) w();
    this.call.cancel();
  }

  /**
   * Queue frames (in order); waits while the queue is full. `onEncoded` is called once the last of
   * them has been encoded (copied out of the arrays it views): from then on this link no longer
   * reads them. Not called when the link fails first.
   */
  async enqueue(frames: readonly KvFrame[], onEncoded?: () => void): Promise<void> {
    if (onEncoded) {
      const last = frames.at(-1);
      if (last) this.encodedHooks.set(last, onEncoded);
      else onEncoded();
    }
    for (const frame of frames) {
      while (this.queued >= this.capacity && !this.failure) {
        await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
      }
      if (this.failure) throw this.failure;
      let q = this.queues.get(frame.layer);
      if (!q) this.queues.set(frame.layer, (q = []));
      q.push(frame);
      this.queued++;
      this.kick();
    }
  }

  private nextFrame(): KvFrame | undefined {
    let lowest = Infinity;
    for (const [layer, q] of this.queues) if (q.length > 0 && layer < lowest) lowest = layer;
    if (lowest === Infinity) return undefined;
    const q = this.queues.get(lowest)!;
    const frame = q.shift()!;
    if (q.length === 0) this.queues.delete(lowest);
    return frame;
  }

  private kick(): void {
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (let frame = this.nextFrame(); frame && !this.failure; frame = this.nextFrame()) {
        this.queued--;
        for (const w of this.spaceWaiters.splice(0)) w();
        const span = this.stats.sendSpans.get(frame.layer) ?? { start: now(), end: 0 };
        this.stats.sendSpans.set(frame.layer, span);
        const bytes = frame.key.byteLength + frame.value.byteLength;
        this.inFlight++;
        const encoded = encodeKvMessage({ body: { $case: 'frame', value: frame } }, this.buffers);
        const hook = this.encodedHooks.get(frame);
        if (hook) {
          this.encodedHooks.delete(frame);
          hook();
        }
        const accepted = this.writer.write(encoded, () => {
          // grpc-js has copied the message by now (kv-codec.ts EncodeBuffers).
          this.buffers.give(encoded);
          span.end = now();
          this.stats.framesSent++;
          this.stats.bytesSent += bytes;
          this.inFlight--;
          if (this.inFlight === 0) for (const w of this.flushWaiters.splice(0)) w();
        });
        if (!accepted) await this.drain();
      }
    } finally {
      this.pumping = false;
    }
    if (this.queued > 0 && !this.failure) this.kick();
  }

  private drain(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.fail(
          new LinkError(
            `rank ${this.toRank} stopped reading K/V for ${this.timeoutMs} ms (backpressure deadline)`,
          ),
        );
        resolve();
      }, this.timeoutMs);
      this.call.once('drain', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Send what is queued, close the stream and wait for the peer's summary. */
  async finish(): Promise<KvStreamSummary> {
    while ((this.queued > 0 || this.pumping || this.inFlight > 0) && !this.failure) {
      await new Promise<void>((resolve) => {
        this.flushWaiters.push(resolve);
        setTimeout(resolve, 5);
      });
    }
    if (this.failure) throw this.failure;
    if (!this.ended) {
      this.ended = true;
      this.call.end();
    }
    const timeout = new Promise<never>((_, reject) =>
      setTimeout(() => {
        reject(
          new LinkError(
            `rank ${this.toRank} did not acknowledge the end of the KV stream in ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs).unref(),
    );
    return Promise.race([this.summary, timeout]);
  }

  abort(reason: string): void {
    this.fail(new LinkError(reason));
  }
}
