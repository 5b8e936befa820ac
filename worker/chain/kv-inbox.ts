// The receiving end of a rank's K/V links. Frames from each sender are checked (frames.ts) and
// copied once into per-layer buffers — SharedArrayBuffers, so the compute thread reads them without
// another copy. A layer is ready when every sender has delivered its whole token range.
//
// KV-Runahead: one sender (rank i−1) delivers [0, start_i) per layer, the "past".
// TSP: every other rank j delivers its chunk [b_j, b_{j+1}); those before i form the past, those
// after i the "later" block that the causal mask hides.
import type { KvFrame } from '../../core/gen/runahead/v1/rank.ts';
import type { ComputeDType, HostArray } from '../model/tensor.ts';
import type { KvBlock } from '../runtime/layer-engine.ts';
import { FrameError, frameProblem, rowBytes, type KvGeometry } from './frames.ts';
import { InboxBuffers } from './inbox-buffers.ts';
import { copyBytes } from '../runtime/native-session.ts';

export interface InboxSource {
  readonly rank: number;
  /** Token range this sender delivers for every layer. */
  readonly start: number;
  readonly end: number;
}

export interface InboxLayout {
  readonly numLayers: number;
  readonly geometry: KvGeometry;
  readonly computeDType: ComputeDType;
  /** This rank's chunk [chunkStart, chunkEnd): senders deliver tokens outside it. */
  readonly chunkStart: number;
  readonly chunkEnd: number;
  readonly contextLength: number;
  readonly sources: readonly InboxSource[];
  readonly maxFrameBytes: number;
}

export interface ReceivedLayer {
  /** Positions [0, chunkStart), or null when there are none. */
  readonly past: KvBlock | null;
  /** Positions [chunkEnd, contextLength) (TSP), or null. */
  readonly later: KvBlock | null;
}

interface Region {
  readonly start: number;
  readonly key: HostArray;
  readonly value: HostArray;
}

interface Waiter {
  resolve(layer: ReceivedLayer): void;
  reject(err: Error): void;
}

export class KvInbox {
  private readonly layout: InboxLayout;
  private readonly rowElements: number;
  private readonly past: (Region | null)[];
  private readonly later: (Region | null)[];
  /** next[layer].get(rank): first token still due from that sender. */
  private readonly next: Map<number, number>[];
  private readonly pending: number[];
  private readonly waiters = new Map<number, Waiter>();
  private failure: Error | null = null;
  private lastActivity = Date.now();
  bytesReceived = 0;

  private readonly buffers: InboxBuffers;

  /** `buffers`: where the received K/V are kept (a rank's, reused across its runs); default fresh ones. */
  constructor(layout: InboxLayout, buffers: InboxBuffers = new InboxBuffers(0)) {
    this.layout = layout;
    this.buffers = buffers;
    const g = layout.geometry;
    this.rowElements = g.kvHeads * g.headDim;
    const region = (start: number, tokens: number): Region | null =>
      tokens > 0
        ? {
            start,
            key: buffers.take(layout.computeDType, tokens * this.rowElements),
            value: buffers.take(layout.computeDType, tokens * this.rowElements),
          }
        : null;
    const laterTokens = layout.sources.some((s) => s.start >= layout.chunkEnd)
      ? layout.contextLength - layout.chunkEnd
      : 0;
    this.past = Array.from({ length: layout.numLayers }, () => region(0, layout.chunkStart));
    this.later = Array.from({ length: layout.numLayers }, () => region(layout.chunkEnd, laterTokens));
    const active = layout.sources.filter((s) => s.end > s.start);
    this.next = Array.from({ length: layout.numLayers }, () => new Map(active.map((s) => [s.rank, s.start])));
    this.pending = Array.from({ length: layout.numLayers }, () => active.length);
  }

  /** Hands the K/V buffers back for the next run; nothing may read what this inbox returned after. */
  release(): void {
    this.failure ??= new Error('this run is over: its inbox was released');
    for (const r of [...this.past, ...this.later]) if (r) this.buffers.giveBack([r.key, r.value]);
    this.past.fill(null);
    this.later.fill(null);
  }

  expects(rank: number): boolean {
    return this.layout.sources.some((s) => s.rank === rank);
  }

  /**
   * Check and store one frame; throws FrameError (naming sender, layer and tokens) if it is unusable.
   * Returns the frame with its K and V viewing the inbox's copy, valid until release().
   */
  accept(fromRank: number, frame: KvFrame): KvFrame {
    if (this.failure) throw this.failure;
    const source = this.layout.sources.find((s) => s.rank === fromRank);
    const next = this.next[frame.layer]?.get(fromRank);
    const want =
      source && next !== undefined ? { numLayers: this.layout.numLayers, next, end: source.end } : null;
    const problem = frameProblem(frame, this.layout.geometry, want, this.layout.maxFrameBytes);
    if (problem) {
      throw new FrameError(
        `bad KV frame from rank ${fromRank} (layer ${frame.layer}, tokens ${frame.tokenStart}..${frame.tokenEnd}): ${problem}`,
      );
    }
    const region =
      frame.tokenStart < this.layout.chunkStart ? this.past[frame.layer] : this.later[frame.layer];
    if (!region)
      throw new FrameError(
        `bad KV frame from rank ${fromRank}: tokens ${frame.tokenStart}..${frame.tokenEnd} fall inside this rank's own chunk`,
      );
    const offset = (frame.tokenStart - region.start) * rowBytes(this.layout.geometry);
    const key = new Uint8Array(region.key.buffer, offset, frame.key.byteLength);
    const value = new Uint8Array(region.value.buffer, offset, frame.value.byteLength);
    // Into shared memory: memmove (native-session.ts copyBytes), not V8's element-wise copy.
    copyBytes(key, frame.key);
    copyBytes(value, frame.value);
    this.bytesReceived += frame.key.byteLength + frame.value.byteLength;
    this.lastActivity = Date.now();
    const layerNext = this.next[frame.layer]!;
    layerNext.set(fromRank, frame.tokenEnd);
    if (frame.tokenEnd === source!.end) {
      this.pending[frame.layer]!--;
      if (this.pending[frame.layer] === 0) this.waiters.get(frame.layer)?.resolve(this.received(frame.layer));
    }
    return { ...frame, key, value };
  }

  private block(region: Region | null): KvBlock | null {
    return region && { tokens: region.key.length / this.rowElements, key: region.key, value: region.value };
  }

  private received(layer: number): ReceivedLayer {
    return { past: this.block(this.past[layer] ?? null), later: this.block(this.later[layer] ?? null) };
  }

  /** Senders that still owe tokens of `layer`, for error messages. */
  private owing(layer: number): string {
    const due = [...(this.next[layer] ?? new Map<number, number>()).entries()]
      .map(([rank, next]) => ({ rank, next, end: this.layout.sources.find((s) => s.rank === rank)!.end }))
      .filter((d) => d.next < d.end);
    return due.map((d) => `rank ${d.rank} (tokens ${d.next}..${d.end})`).join(', ');
  }

  /** The layer's received K/V; fails if no frame arrives for `timeoutMs` while waiting. */
  layer(layer: number, timeoutMs: number): Promise<ReceivedLayer> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending[layer] === 0) return Promise.resolve(this.received(layer));
    this.lastActivity = Math.max(this.lastActivity, Date.now());
    return new Promise((resolve, reject) => {
      const timer = setInterval(
        () => {
          const idle = Date.now() - this.lastActivity;
          if (idle > timeoutMs) {
            this.fail(
              new FrameError(
                `no K/V for layer ${layer} from ${this.owing(layer)} in ${idle} ms (deadline ${timeoutMs} ms)`,
              ),
            );
          }
        },
        Math.min(1000, Math.max(10, timeoutMs / 10)),
      );
      const done = () => {
        clearInterval(timer);
        this.waiters.delete(layer);
      };
      this.waiters.set(layer, {
        resolve: (r) => {
          done();
          resolve(r);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
    });
  }

  /** A sender's stream ended (cleanly or not): an error if it still owed tokens of some layer. */
  senderClosed(fromRank: number, cause: string | null): void {
    const source = this.layout.sources.find((s) => s.rank === fromRank);
    if (!source) return;
    const layer = this.next.findIndex((m) => (m.get(fromRank) ?? source.end) < source.end);
    if (layer < 0) return;
    const got = this.next[layer]!.get(fromRank)!;
    this.fail(
      new FrameError(
        `the KV stream from rank ${fromRank} ended${cause ? ` (${cause})` : ''} at layer ${layer} after tokens ${source.start}..${got} of ${source.start}..${source.end}: truncated stream`,
      ),
    );
  }

  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    for (const w of [...this.waiters.values()]) w.reject(err);
    this.waiters.clear();
  }
}
