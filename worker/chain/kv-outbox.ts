// What a rank sends, between its rank loop and its links (kv-link.ts): the rank loop hands over a
// layer's own K/V and goes on computing; a pump per link cuts them into frames (CRC-32 on the main
// thread, while the compute thread runs the next graph) and queues them on the link. So sending is
// never on the rank's own critical path unless it falls behind by more than the outbox holds: the
// loop then waits in room(), after it has started its next graph, and records only the wait that
// outlasts the graph (send-blocked).
//
// Bounded twice: each link queues at most LinkLimits.maxQueuedFrames frames (the link's own limit),
// and own K/V not yet queued on a link wait here, at most `limitBytes` of them per link, plus what
// one graph emits (room() is checked once per graph, after its K/V were put).
//
// It also keeps, per link and layer, when the rank had every byte of the layer in hand (ready) and
// how long the link sat idle just before that: the LayerSend records the critical path
// (core/critical-path.ts) and the cost model's transfer fit (core/calibration.ts) are measured from.
import { performance } from 'node:perf_hooks';
import type { KvFrame, LayerSend } from '../../core/gen/runahead/v1/rank.ts';
import type { KvBlock } from '../runtime/layer-engine.ts';
import type { LinkStats } from './kv-link.ts';

const now = () => performance.timeOrigin + performance.now();

/** The part of a KvLink the outbox uses. */
export interface OutLink {
  enqueue(frames: readonly KvFrame[]): Promise<void>;
  readonly stats: LinkStats;
}

interface Item {
  readonly layer: number;
  readonly block: KvBlock;
  readonly bytes: number;
  /** Cut once, shared by every link (the frames are views of the block). */
  frames: KvFrame[] | null;
}

interface LayerLedger {
  bytes: number;
  readyMs: number;
  /** When the link last flushed a frame before ready, if it was idle with nothing queued then. */
  idleFrom: number | null;
}

class LinkOutbox {
  readonly link: OutLink;
  readonly queue: Item[] = [];
  /** Own bytes put but not yet queued on the link. */
  waiting = 0;
  /** Bytes handed to the link (forwarded and own), to tell whether it has anything left to send. */
  handed = 0;
  pumping = false;
  readonly layers = new Map<number, LayerLedger>();

  constructor(link: OutLink) {
    this.link = link;
  }

  ledger(layer: number): LayerLedger {
    let l = this.layers.get(layer);
    if (!l) this.layers.set(layer, (l = { bytes: 0, readyMs: 0, idleFrom: null }));
    return l;
  }

  /** The link has sent everything it was given and nothing waits here. */
  idle(): boolean {
    return this.waiting === 0 && this.handed === this.link.stats.bytesSent;
  }

  lastFlush(): number {
    let last = -Infinity;
    for (const s of this.link.stats.sendSpans.values()) last = Math.max(last, s.end);
    return last;
  }
}

export class KvOutbox {
  private readonly links = new Map<number, LinkOutbox>();
  private readonly cut: (layer: number, block: KvBlock) => KvFrame[];
  private readonly limitBytes: number;
  private readonly onError: (err: Error) => void;
  private failure: Error | null = null;
  private waiters: (() => void)[] = [];

  /**
   * `cut` turns a layer's own K/V into frames; `limitBytes` bounds the own K/V waiting per link;
   * `onError` hears a link failure met while queueing (the run then stops).
   */
  constructor(
    links: ReadonlyMap<number, OutLink>,
    cut: (layer: number, block: KvBlock) => KvFrame[],
    limitBytes: number,
    onError: (err: Error) => void,
  ) {
    for (const [to, link] of links) this.links.set(to, new LinkOutbox(link));
    this.cut = cut;
    this.limitBytes = limitBytes;
    this.onError = onError;
  }

  get targets(): number[] {
    return [...this.links.keys()];
  }

  /**
   * A frame received from the predecessor, passed on to `to` (KV-Runahead's cut-through). Queued on
   * the link at once, in arrival order; waits while the link's queue is full, so that the stream it
   * came from pauses (HTTP/2 flow control holds the predecessor back).
   */
  async forward(to: number, frame: KvFrame): Promise<void> {
    const out = this.links.get(to);
    if (!out) return;
    const bytes = frame.key.byteLength + frame.value.byteLength;
    out.ledger(frame.layer).bytes += bytes;
    out.handed += bytes;
    await out.link.enqueue([frame]);
  }

  /**
   * This rank's own K/V of `layer`, for every link; with them, every byte of the layer it sends is in
   * hand (the caller puts them once the predecessor's have all arrived). Never waits.
   */
  put(layer: number, block: KvBlock): void {
    if (this.failure) return;
    const bytes = block.key.byteLength + block.value.byteLength;
    const item: Item = { layer, block, bytes, frames: null };
    const at = now();
    for (const out of this.links.values()) {
      const ledger = out.ledger(layer);
      ledger.readyMs = at;
      ledger.idleFrom = out.idle() ? out.lastFlush() : null;
      ledger.bytes += bytes;
      out.waiting += bytes;
      out.queue.push(item);
      if (!out.pumping) {
        out.pumping = true;
        // After the caller's current step, once it has started its next graph and awaits it: the
        // frames are cut while the compute thread runs.
        setImmediate(() => void this.pump(out));
      }
    }
  }

  private async pump(out: LinkOutbox): Promise<void> {
    try {
      for (let item = out.queue.shift(); item && !this.failure; item = out.queue.shift()) {
        item.frames ??= this.cut(item.layer, item.block);
        out.handed += item.bytes;
        await out.link.enqueue(item.frames);
        out.waiting -= item.bytes;
        this.wake();
      }
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
    } finally {
      out.pumping = false;
    }
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const out of this.links.values()) out.queue.length = 0;
    this.wake();
    this.onError(err);
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private until(done: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (this.failure) reject(this.failure);
        else if (done()) resolve();
        else this.waiters.push(check);
      };
      check();
    });
  }

  /** Whether the own K/V waiting for each link are within the limit. */
  hasRoom(): boolean {
    return [...this.links.values()].every((o) => o.waiting <= this.limitBytes);
  }

  /** Resolves once the own K/V waiting for each link are within the limit. */
  room(): Promise<void> {
    return this.until(() => this.hasRoom());
  }

  /** Resolves once everything put has been queued on its link. */
  drained(): Promise<void> {
    return this.until(() => [...this.links.values()].every((o) => o.waiting === 0));
  }

  /** Per link and layer; times as the link measured them (its send spans). */
  records(): LayerSend[] {
    const out: LayerSend[] = [];
    for (const [toRank, o] of this.links) {
      for (const [layer, l] of o.layers) {
        const span = o.link.stats.sendSpans.get(layer);
        if (!span || span.end <= 0) continue;
        const idleMs =
          l.idleFrom !== null && span.start < l.readyMs
            ? Math.max(0, l.readyMs - Math.max(l.idleFrom, span.start))
            : 0;
        out.push({
          layer,
          toRank,
          bytes: l.bytes,
          readyMs: l.readyMs || span.start,
          startMs: span.start,
          endMs: span.end,
          idleMs,
        });
      }
    }
    return out.sort((a, b) => a.layer - b.layer || a.toRank - b.toRank);
  }
}

/** The busy parts of a layer's send on a link: [start, end] without its idle stretch. */
export function busySpans(send: LayerSend): { startMs: number; endMs: number }[] {
  if (send.idleMs <= 0) return [{ startMs: send.startMs, endMs: send.endMs }];
  const idleStart = send.readyMs - send.idleMs;
  return [
    { startMs: send.startMs, endMs: idleStart },
    { startMs: send.readyMs, endMs: send.endMs },
  ].filter((s) => s.endMs > s.startMs);
}
