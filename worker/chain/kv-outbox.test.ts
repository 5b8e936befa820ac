// KvOutbox against a link whose sending the test drives: when its queue is full, when it flushes.
import { describe, expect, it } from '@jest/globals';
import { DType, type KvFrame } from '../../core/gen/runahead/v1/rank.ts';
import { eventually } from '../../test/support/eventually.ts';
import { framesOf, type KvGeometry } from './frames.ts';
import type { LinkStats } from './kv-link.ts';
import { KvOutbox, type OutLink } from './kv-outbox.ts';

const g: KvGeometry = { dtype: DType.DTYPE_FLOAT32, kvHeads: 1, headDim: 4, bytesPerElement: 4 }; // 16 B a row
const FRAME = 64; // K+V bytes: 2 tokens a frame
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A link with a queue of `capacity` frames that sends only when told to. */
class FakeLink implements OutLink {
  readonly stats: LinkStats = { framesSent: 0, bytesSent: 0, sendSpans: new Map() };
  readonly queue: KvFrame[] = [];
  readonly sent: KvFrame[] = [];
  private waiters: (() => void)[] = [];
  /** enqueue()'s onEncoded, by its last frame: called when that frame is flushed. */
  private readonly hooks = new Map<KvFrame, () => void>();
  failure: Error | null = null;

  private readonly capacity: number;

  constructor(capacity = Infinity) {
    this.capacity = capacity;
  }

  async enqueue(frames: readonly KvFrame[], onEncoded?: () => void): Promise<void> {
    if (onEncoded && frames.length > 0) this.hooks.set(frames.at(-1)!, onEncoded);
    for (const f of frames) {
      while (this.queue.length >= this.capacity && !this.failure)
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      if (this.failure) throw this.failure;
      this.queue.push(f);
    }
  }

  /** Send `n` queued frames, each flushed at `at` (epoch ms). */
  flush(n = Infinity, at = clock.now): void {
    for (let i = 0; i < n && this.queue.length > 0; i++) {
      const f = this.queue.shift()!;
      const span = this.stats.sendSpans.get(f.layer) ?? { start: at, end: 0 };
      span.end = at;
      this.stats.sendSpans.set(f.layer, span);
      this.stats.framesSent++;
      this.stats.bytesSent += f.key.byteLength + f.value.byteLength;
      this.sent.push(f);
      this.hooks.get(f)?.();
      this.hooks.delete(f);
    }
    for (const w of this.waiters.splice(0)) w();
  }

  fail(err: Error): void {
    this.failure = err;
    for (const w of this.waiters.splice(0)) w();
  }
}

/** K/V of `tokens` tokens starting at `start`, every value `fill`. */
function block(tokens: number, fill = 1) {
  const a = new Float32Array(tokens * 4).fill(fill);
  return { tokens, key: a, value: a.slice() };
}

/** The test's clock, epoch ms: it moves only when a test moves it. */
const clock = { now: 1_000_000 };

function outbox(links: Map<number, FakeLink>, limitBytes = 1 << 20, start = 0) {
  const errors: Error[] = [];
  const box = new KvOutbox(
    links,
    (layer, b) => framesOf(layer, start, b.key, b.value, g, FRAME),
    limitBytes,
    (err) => errors.push(err),
    () => clock.now,
  );
  return { box, errors };
}

describe('KvOutbox', () => {
  it('never waits in put, and cuts frames only after the caller’s step (its next graph is started first)', async () => {
    const link = new FakeLink();
    const { box } = outbox(new Map([[1, link]]));
    box.put(0, block(4));
    expect(link.queue).toHaveLength(0);
    await eventually('frames queued', () => link.queue.length === 2);
    expect(link.queue.map((f) => [f.layer, f.tokenStart, f.tokenEnd])).toEqual([
      [0, 0, 2],
      [0, 2, 4],
    ]);
  });

  it('queues own K/V behind the forwarded frames of the same layer, in token order', async () => {
    const link = new FakeLink();
    const { box } = outbox(new Map([[1, link]]), 1 << 20, 4);
    const fwd = framesOf(3, 0, block(4, 7).key, block(4, 7).value, g, FRAME);
    for (const f of fwd) await box.forward(1, f);
    box.put(3, block(2));
    await box.drained();
    expect(link.queue.map((f) => [f.tokenStart, f.tokenEnd])).toEqual([
      [0, 2],
      [2, 4],
      [4, 6],
    ]);
  });

  it('holds own K/V while the link is full, and room() waits only beyond its limit', async () => {
    const link = new FakeLink(1);
    const { box } = outbox(new Map([[1, link]]), 2 * FRAME);
    box.put(0, block(4)); // 2 frames: 1 queued on the link, 1 waiting here
    box.put(1, block(4)); // 2 more: 4·64 B waiting in all, over the 128 B limit
    expect(box.hasRoom()).toBe(false);
    let roomy = false;
    void box.room().then(() => (roomy = true));
    await tick();
    await tick();
    expect(roomy).toBe(false);
    link.flush(2);
    await eventually('within the limit', () => roomy);
    expect(box.hasRoom()).toBe(true);
    // The link's queue holds one frame; the rest wait in the outbox until the link takes them.
    const drained = { done: false };
    void box.drained().then(() => (drained.done = true));
    await tick();
    expect(drained.done).toBe(false);
    await eventually('drained', () => {
      link.flush(1);
      return drained.done;
    });
    expect(link.sent.length + link.queue.length).toBe(4);
  });

  it('records per layer when the rank had it all, its bytes, and the link’s idle stretch before', async () => {
    const link = new FakeLink();
    const { box } = outbox(new Map([[1, link]]), 1 << 20, 4);
    const t0 = (clock.now = 2_000_000);
    // Layer 0: the forwarded frames go out 0–30 ms; the own K/V come at 80: the link was idle 30–80.
    for (const f of framesOf(0, 0, block(4).key, block(4).value, g, FRAME)) await box.forward(1, f);
    link.flush(1, t0);
    link.flush(1, t0 + 30);
    clock.now = t0 + 80;
    box.put(0, block(2));
    // Layer 1: its forwarded frames come while the own K/V of layer 0 still wait: no idle time.
    for (const f of framesOf(1, 0, block(4).key, block(4).value, g, FRAME)) await box.forward(1, f);
    clock.now = t0 + 90;
    box.put(1, block(2));
    await box.drained();
    link.flush(1, t0 + 100); // layer 1, forwarded
    link.flush(1, t0 + 110); // layer 1, forwarded
    link.flush(1, t0 + 120); // layer 0, own
    link.flush(1, t0 + 130); // layer 1, own
    const [r0, r1] = box.records();
    expect(r0).toEqual({
      layer: 0,
      toRank: 1,
      bytes: 6 * 32,
      readyMs: t0 + 80,
      startMs: t0,
      endMs: t0 + 120,
      idleMs: 50,
    });
    expect(r1).toEqual({
      layer: 1,
      toRank: 1,
      bytes: 6 * 32,
      readyMs: t0 + 90,
      startMs: t0 + 100,
      endMs: t0 + 130,
      idleMs: 0,
    });
    // The busy parts leave the idle stretch out.
    expect(box.busySpans()).toEqual([
      { layer: 0, toRank: 1, startMs: t0, endMs: t0 + 30 },
      { layer: 0, toRank: 1, startMs: t0 + 80, endMs: t0 + 120 },
      { layer: 1, toRank: 1, startMs: t0 + 100, endMs: t0 + 130 },
    ]);
  });

  it('leaves out every stretch a forwarding link waited for the predecessor’s next frame', async () => {
    const link = new FakeLink();
    const { box } = outbox(new Map([[1, link]]), 1 << 20, 6);
    const t0 = (clock.now = 3_000_000);
    const [a, b, c] = framesOf(2, 0, block(6).key, block(6).value, g, FRAME);
    // Frames a, b, c of the predecessor arrive at 0, 40 and 100; each leaves 10 ms later.
    await box.forward(1, a!);
    link.flush(1, t0 + 10);
    clock.now = t0 + 40;
    await box.forward(1, b!);
    link.flush(1, t0 + 50);
    clock.now = t0 + 100;
    await box.forward(1, c!);
    link.flush(1, t0 + 110);
    clock.now = t0 + 130;
    box.put(2, block(2));
    await box.drained();
    link.flush(1, t0 + 140);
    // The fake link starts a layer's span at its first flush (10): busy 40–50, 100–110, 130–140.
    expect(box.busySpans()).toEqual([
      { layer: 2, toRank: 1, startMs: t0 + 40, endMs: t0 + 50 },
      { layer: 2, toRank: 1, startMs: t0 + 100, endMs: t0 + 110 },
      { layer: 2, toRank: 1, startMs: t0 + 130, endMs: t0 + 140 },
    ]);
    // Idle 10–40, 50–100, 110–130, all before the own K/V were ready.
    expect(box.records()[0]).toMatchObject({
      readyMs: t0 + 130,
      startMs: t0 + 10,
      endMs: t0 + 140,
      idleMs: 100,
    });
  });

  it('gives each block back once every link has taken all of its frames, and never after a failure', async () => {
    const a = new FakeLink();
    const b = new FakeLink();
    const { box } = outbox(
      new Map([
        [1, a],
        [2, b],
      ]),
    );
    const sent: unknown[] = [];
    box.onBlockSent((blk) => sent.push(blk));
    const first = block(4);
    const second = block(2);
    box.put(0, first);
    box.put(1, second);
    await tick();
    a.flush();
    expect(sent).toEqual([]); // link 2 still reads both
    b.flush(1); // half of the first block
    expect(sent).toEqual([]);
    b.flush(1);
    expect(sent).toEqual([first]);
    b.flush();
    expect(sent).toEqual([first, second]);
    const third = block(2);
    box.put(2, third);
    await tick();
    a.fail(new Error('peer gone'));
    b.flush();
    await tick();
    expect(sent).toEqual([first, second]); // link 1 never took the third block's frames
  });

  it('sends to every link (TSP), and a failing link stops the outbox and tells the run once', async () => {
    const a = new FakeLink();
    const b = new FakeLink(0);
    const { box, errors } = outbox(
      new Map([
        [1, a],
        [2, b],
      ]),
    );
    expect(box.targets).toEqual([1, 2]);
    box.put(0, block(2));
    await eventually('queued on the open link', () => a.queue.length === 1);
    const drained = box.drained();
    b.fail(new Error('peer gone'));
    await expect(drained).rejects.toThrow('peer gone');
    await expect(box.room()).rejects.toThrow('peer gone');
    box.put(1, block(2));
    expect(errors.map((e) => e.message)).toEqual(['peer gone']);
  });
});
