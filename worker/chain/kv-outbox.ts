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
// It also keeps, per link and layer, when the rank had every byte of the layer in hand (ready), and
// per link the stretches it sat idle with nothing to send (from its last flush to the moment it was
// given more: the predecessor's next frame, or this rank's own K/V). The critical path
// (core/critical-path.ts) is measured from the LayerSend records, the cost model's transfer term
// (core/calibration.ts) from the send spans: a link's busy time, its idle stretches left out.
import { performance } from 'node:perf_hooks';
import type { KvFrame, LayerSend } from '../../core/gen/runahead/v1/rank.ts';
import type { KvBlock } from '../runtime/layer-engine.ts';
import type { LinkStats } from './kv-link.ts';

const now = () => performance.timeOrigin + performance.now();

/** The part of a KvLink the outbox uses. */
export interface OutLink {
  enqueue(frames: readonly KvFrame[], onEncoded?: () => void): Promise<void>;
  readonly stats: LinkStats;
}

interface Item {
  readonly layer: number;
  readonly block: KvBlock;
  readonly bytes: number;
  /** Cut once, shared by every link (the frames are views of the block). */
  frames: KvFrame[] | null;
  /** Links that still read the block (its frames not all encoded there yet). */
  readers: number;
}

interface LayerLedger {
  bytes: number;
  readyMs: number;
}

interface Interval {
  readonly startMs: number;
  readonly endMs: number;
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
  /** Stretches with nothing to send, each ended by bytes handed to the link. */
  readonly idle: Interval[] = [];

  constructor(link: OutLink) {
    this.link = link;
  }

  ledger(layer: number): LayerLedger {
    let l = this.layers.get(layer);
    if (!l) this.layers.set(layer, (l = { bytes: 0, readyMs: 0 }));
    return l;
  }

  /**
   * Bytes are about to be handed over at `at`: if the link had sent everything it was given and
   * nothing waited here, it was idle since its last flush.
   */
  noteHandOver(at: number): void {
    if (this.waiting !== 0 || this.handed !== this.link.stats.bytesSent) return;
    let last = -Infinity;
    for (const s of this.link.stats.sendSpans.values()) last = Math.max(last, s.end);
    if (Number.isFinite(last) && at > last) this.idle.push({ startMs: last, endMs: at });
  }

  /** The parts of [from, to] outside the idle stretches. */
  busyWithin(from: number, to: number): Interval[] {
    const out: Interval[] = [];
    let t = from;
    for (const gap of this.idle) {
      if (gap.endMs <= t || gap.startMs >= to) continue;
      if (gap.startMs > t) out.push({ startMs: t, endMs: gap.startMs });
      t = Math.max(t, gap.endMs);
    }
    if (to > t) out.push({ startMs: t, endMs: to });
    return out;
  }
}

export class KvOutbox {
  private readonly links = new Map<number, LinkOutbox>();
  private readonly cut: (layer: number, block: KvBlock) => KvFrame[];
  private readonly limitBytes: number;
  private readonly onError: (err: Error) => void;
  private readonly clock: () => number;
  private failure: Error | null = null;
  private waiters: (() => void)[] = [];
  private sentListener: ((block: KvBlock) => void) | null = null;

  /**
   * `cut` turns a layer's own K/V into frames; `limitBytes` bounds the own K/V waiting per link;
   * `onError` hears a link failure met while queueing (the run then stops); `clock` reads epoch ms
   * on the links' clock.
   */
  constructor(
    links: ReadonlyMap<number, OutLink>,
    cut: (layer: number, block: KvBlock) => KvFrame[],
    limitBytes: number,
    onError: (err: Error) => void,
    clock: () => number = now,
  ) {
    for (const [to, link] of links) this.links.set(to, new LinkOutbox(link));
    this.cut = cut;
    this.limitBytes = limitBytes;
    this.onError = onError;
    this.clock = clock;
  }

  /**
   * Called with each block put() once every link has encoded all of its frames (no link reads it any
   * more): the engine can reuse its memory. Never called for a block whose links failed first.
   */
  onBlockSent(listener: (block: KvBlock) => void): void {
    this.sentListener = listener;
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
    out.noteHandOver(this.clock());
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
    const item: Item = { layer, block, bytes, frames: null, readers: this.links.size };
    const at = this.clock();
    for (const out of this.links.values()) {
      out.noteHandOver(at);
      const ledger = out.ledger(layer);
      ledger.readyMs = at;
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
        const sent = item;
        await out.link.enqueue(item.frames, () => {
          if (--sent.readers === 0) this.sentListener?.(sent.block);
        });
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

  /** Per link and layer; times as the link measured them. */
  records(): LayerSend[] {
    const out: LayerSend[] = [];
    for (const [toRank, o] of this.links) {
      for (const [layer, l] of o.layers) {
        const span = o.link.stats.sendSpans.get(layer);
        if (!span || span.end <= 0) continue;
        const ready = l.readyMs || span.start;
        const upToReady = Math.max(0, Math.min(ready, span.end) - span.start);
        const busy = o.busyWithin(span.start, Math.min(ready, span.end));
        out.push({
          layer,
          toRank,
          bytes: l.bytes,
          readyMs: ready,
          startMs: span.start,
          endMs: span.end,
          idleMs: upToReady - busy.reduce((t, b) => t + b.endMs - b.startMs, 0),
        });
      }
    }
    return out.sort((a, b) => a.layer - b.layer || a.toRank - b.toRank);
  }

  /** Per link and layer, the stretches the link was busy with it: [start, end] less its idle ones. */
  busySpans(): { layer: number; toRank: number; startMs: number; endMs: number }[] {
    const out: { layer: number; toRank: number; startMs: number; endMs: number }[] = [];
    for (const [toRank, o] of this.links)
      for (const [layer, span] of o.link.stats.sendSpans)
        if (span.end > 0)
          for (const b of o.busyWithin(span.start, span.end)) out.push({ layer, toRank, ...b });
    return out;
  }
}
