// The sending end of one K/V link: frames wait in a bounded queue, lowest layer first (the successor
// needs layer l before l+1, even when frames of l+1 that were forwarded from the predecessor are
// already queued); when the queue is full the producer waits, and when the connection is full (HTTP/2
// flow control, or the socket's buffer) the pump waits for 'drain'. A stalled peer fails the link
// after the peer timeout instead of hanging it. How frames travel is the writer's business: a K/V
// socket (kv-socket.ts, the default) or a StreamKv call (grpc-frame-writer.ts).
import { performance } from 'node:perf_hooks';
import type { KvFrame, KvHello, KvStreamSummary, RankClient } from '../../core/gen/runahead/v1/rank.ts';
import { grpcFrameWriter } from './grpc-frame-writer.ts';
import { LinkError, type KvFrameWriter, type LinkStats } from './kv-frame-writer.ts';

export { LinkError, type KvFrameWriter, type LinkStats };

const now = () => performance.timeOrigin + performance.now();

export class KvLink {
  private readonly writer: KvFrameWriter;
  private readonly toRank: number;
  private readonly queues = new Map<number, KvFrame[]>();
  private queued = 0;
  private readonly capacity: number;
  private readonly timeoutMs: number;
  private spaceWaiters: (() => void)[] = [];
  private pumping = false;
  private ended = false;
  private failure: Error | null = null;
  private flushWaiters: (() => void)[] = [];
  private inFlight = 0;
  /** enqueue()'s onEncoded, by the last frame of its call. */
  private readonly encodedHooks = new Map<KvFrame, () => void>();
  readonly stats: LinkStats = { framesSent: 0, bytesSent: 0, sendSpans: new Map() };

  /** A link over a StreamKv call to `client` (the chain's transport before K/V sockets). */
  static overGrpc(
    client: RankClient,
    hello: KvHello,
    capacity: number,
    timeoutMs: number,
    onError: (err: Error) => void,
  ): KvLink {
    return new KvLink(grpcFrameWriter(client, hello), hello.toRank, capacity, timeoutMs, onError);
  }

  constructor(
    writer: KvFrameWriter,
    toRank: number,
    capacity: number,
    timeoutMs: number,
    onError: (err: Error) => void,
  ) {
    this.writer = writer;
    this.toRank = toRank;
    this.capacity = capacity;
    this.timeoutMs = timeoutMs;
    const failed = (err: unknown) => {
      const e = err instanceof Error ? err : new LinkError(String(err));
      if (this.failure) return;
      this.fail(e);
      onError(e);
    };
    writer.ready?.catch(failed);
    writer.summary.catch(failed);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of this.spaceWaiters.splice(0)) w();
    for (const w of this.flushWaiters.splice(0)) w();
    this.writer.cancel();
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
      if (this.writer.ready) await this.writer.ready.catch(() => undefined);
      for (let frame = this.nextFrame(); frame && !this.failure; frame = this.nextFrame()) {
        this.queued--;
        for (const w of this.spaceWaiters.splice(0)) w();
        const span = this.stats.sendSpans.get(frame.layer) ?? { start: now(), end: 0 };
        this.stats.sendSpans.set(frame.layer, span);
        const bytes = frame.key.byteLength + frame.value.byteLength;
        this.inFlight++;
        const hook = this.encodedHooks.get(frame);
        this.encodedHooks.delete(frame);
        const accepted = this.writer.write(
          frame,
          () => hook?.(),
          () => {
            span.end = now();
            this.stats.framesSent++;
            this.stats.bytesSent += bytes;
            this.inFlight--;
            if (this.inFlight === 0) for (const w of this.flushWaiters.splice(0)) w();
          },
        );
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
      this.writer.onceDrain(() => {
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
      this.writer.end();
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
    return Promise.race([this.writer.summary, timeout]);
  }

  abort(reason: string): void {
    this.fail(new LinkError(reason));
  }
}
