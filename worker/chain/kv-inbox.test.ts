import { describe, expect, it } from '@jest/globals';
import { DType, type KvFrame } from '../../core/gen/runahead/v1/rank.ts';
import { FrameError, framesOf, type KvGeometry } from './frames.ts';
import { InboxBuffers } from './inbox-buffers.ts';
import { KvInbox, type InboxLayout, type InboxSource } from './kv-inbox.ts';

const g: KvGeometry = { dtype: DType.DTYPE_FLOAT32, kvHeads: 2, headDim: 4, bytesPerElement: 4 }; // 32 B per token
const ROW = 8; // elements per token
const MAX_FRAME_BYTES = 4 * 64; // 4 tokens of K+V

/** Rank 1 of a chain split [0, 8, 12, 16]: rank 0 sends [0, 8) of each layer. */
function layout(sources: readonly InboxSource[] = [{ rank: 0, start: 0, end: 8 }]): InboxLayout {
  return {
    numLayers: 2,
    geometry: g,
    computeDType: 'float32',
    chunkStart: 8,
    chunkEnd: 12,
    contextLength: 16,
    sources,
    maxFrameBytes: MAX_FRAME_BYTES,
  };
}

const values = (tokens: number, base: number) =>
  Float32Array.from({ length: tokens * ROW }, (_, i) => base + i);

/** Frames of tokens [start, end) of `layer`, K = base + i, V = base + 1000 + i. */
function frames(layer: number, start: number, end: number, base = layer * 100): KvFrame[] {
  return framesOf(
    layer,
    start,
    values(end - start, base),
    values(end - start, base + 1000),
    g,
    MAX_FRAME_BYTES,
  );
}

describe('KvInbox (KV-Runahead: one predecessor sends the past)', () => {
  it('assembles a layer from its frames, copies the payloads, and counts the bytes', async () => {
    const inbox = new KvInbox(layout());
    const waiting = inbox.layer(1, 1000);
    for (const f of frames(1, 0, 8)) inbox.accept(0, f);
    const { past, later } = await waiting;
    expect(later).toBeNull();
    expect(past?.tokens).toBe(8);
    expect(Array.from(past!.key as Float32Array)).toEqual(Array.from(values(8, 100)));
    expect(Array.from(past!.value as Float32Array)).toEqual(Array.from(values(8, 1100)));
    expect(inbox.bytesReceived).toBe(2 * 8 * 32);
    expect(inbox.expects(0)).toBe(true);
    expect(inbox.expects(2)).toBe(false);
  });

  it('takes its buffers from the rank’s InboxBuffers and gives them back for the next run', async () => {
    const buffers = new InboxBuffers(1 << 20);
    const first = new KvInbox(layout(), buffers);
    for (const l of [0, 1]) for (const f of frames(l, 0, 8)) first.accept(0, f);
    const old = await Promise.all([0, 1].map(async (l) => (await first.layer(l, 1000)).past!));
    const oldBuffers = old.flatMap((b) => [b.key.buffer, b.value.buffer]);
    first.release();
    expect(() => {
      first.accept(0, frames(0, 0, 8)[0]!);
    }).toThrow(/run is over/);
    const second = new KvInbox(layout(), buffers);
    for (const f of frames(1, 0, 8, 7)) second.accept(0, f);
    const again = (await second.layer(1, 1000)).past!;
    expect(oldBuffers).toContain(again.key.buffer);
    expect(oldBuffers).toContain(again.value.buffer);
    expect(Array.from(again.key as Float32Array)).toEqual(Array.from(values(8, 7))); // overwritten
    expect(buffers.stats()).toMatchObject({ created: 4, reused: 4 }); // 2 layers × K, V
  });

  it('hands out a layer that completed before anyone asked', async () => {
    const inbox = new KvInbox(layout());
    for (const f of frames(0, 0, 8)) inbox.accept(0, f);
    expect((await inbox.layer(0, 1000)).past?.tokens).toBe(8);
  });

  it('keeps a layer waiting until the last token of it arrived', async () => {
    const inbox = new KvInbox(layout());
    const [first, second] = frames(0, 0, 8);
    let done = false;
    const waiting = inbox.layer(0, 1000).then(() => (done = true));
    inbox.accept(0, first!);
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    inbox.accept(0, second!);
    await waiting;
    expect(done).toBe(true);
  });

  it.each<[string, (f: KvFrame) => KvFrame, number, RegExp]>([
    [
      'a frame from a rank that sends nothing here',
      (f) => f,
      2,
      /from rank 2 .*expects nothing from this sender/,
    ],
    ['a frame of a layer that does not exist', (f) => ({ ...f, layer: 2 }), 0, /\(layer 2, .*does not exist/],
    ['a frame that skips tokens', (f) => f, 0, /out of order: expected the range to start at 0/],
    [
      'a truncated payload',
      (f) => ({ ...f, key: f.key.subarray(0, 64) }),
      0,
      /bad KV frame from rank 0 \(layer 0, tokens 0\.\.4\): payload sizes K 64 B/,
    ],
  ])('refuses %s, naming sender, layer and tokens', (name, mutate, from, message) => {
    const inbox = new KvInbox(layout());
    const [first, second] = frames(0, 0, 8);
    const frame = name.includes('skips') ? second! : mutate(first!);
    expect(() => {
      inbox.accept(from, frame);
    }).toThrow(FrameError);
    expect(() => {
      inbox.accept(from, frame);
    }).toThrow(message);
    expect(inbox.bytesReceived).toBe(0);
  });

  it('refuses a frame that repeats tokens already received', () => {
    const inbox = new KvInbox(layout());
    const [first] = frames(0, 0, 8);
    inbox.accept(0, first!);
    expect(() => {
      inbox.accept(0, first!);
    }).toThrow(/out of order: expected the range to start at 4/);
  });

  it('fails a layer when the sender closes its stream early: a truncated stream', async () => {
    const inbox = new KvInbox(layout());
    const waiting = inbox.layer(1, 1000);
    for (const f of frames(0, 0, 8)) inbox.accept(0, f);
    inbox.accept(0, frames(1, 0, 8)[0]!);
    inbox.senderClosed(0, 'connection reset');
    await expect(waiting).rejects.toThrow(
      /the KV stream from rank 0 ended \(connection reset\) at layer 1 after tokens 0\.\.4 of 0\.\.8: truncated stream/,
    );
    // Once failed, it stays failed: later frames and layers see the same error.
    expect(() => {
      inbox.accept(0, frames(1, 0, 8)[1]!);
    }).toThrow(/truncated stream/);
    await expect(inbox.layer(0, 1000)).rejects.toThrow(/truncated stream/);
  });

  it('lets a sender that delivered everything close its stream', async () => {
    const inbox = new KvInbox(layout());
    for (const l of [0, 1]) for (const f of frames(l, 0, 8)) inbox.accept(0, f);
    inbox.senderClosed(0, null);
    inbox.senderClosed(5, 'not a sender of this rank');
    expect((await inbox.layer(1, 1000)).past?.tokens).toBe(8);
  });

  it('fails a wait after the peer timeout with no frame, naming who still owes what', async () => {
    const inbox = new KvInbox(layout());
    inbox.accept(0, frames(0, 0, 8)[0]!);
    const started = Date.now();
    await expect(inbox.layer(0, 60)).rejects.toThrow(
      /no K\/V for layer 0 from rank 0 \(tokens 4\.\.8\) in \d+ ms \(deadline 60 ms\)/,
    );
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('fails every waiter with the error it is failed with', async () => {
    const inbox = new KvInbox(layout());
    const a = inbox.layer(0, 10_000);
    const b = inbox.layer(1, 10_000);
    inbox.fail(new Error('run aborted'));
    await expect(a).rejects.toThrow('run aborted');
    await expect(b).rejects.toThrow('run aborted');
  });
});

describe('KvInbox (TSP: every other rank sends its chunk)', () => {
  const tsp: InboxSource[] = [
    { rank: 0, start: 0, end: 8 },
    { rank: 2, start: 12, end: 14 },
    { rank: 3, start: 14, end: 16 },
  ];

  it('assembles the past from earlier ranks and the later block from later ones, in any order', async () => {
    const inbox = new KvInbox(layout(tsp));
    const waiting = inbox.layer(0, 1000);
    for (const f of frames(0, 14, 16, 7)) inbox.accept(3, f);
    for (const f of frames(0, 0, 8)) inbox.accept(0, f);
    for (const f of frames(0, 12, 14, 5)) inbox.accept(2, f);
    const { past, later } = await waiting;
    expect(past?.tokens).toBe(8);
    expect(later?.tokens).toBe(4);
    expect(Array.from(later!.key as Float32Array)).toEqual([...values(2, 5), ...values(2, 7)]);
  });

  it('refuses tokens of the own chunk', () => {
    const inbox = new KvInbox(layout([{ rank: 2, start: 8, end: 12 }]));
    expect(() => {
      inbox.accept(2, frames(0, 8, 12)[0]!);
    }).toThrow(/tokens 8\.\.12 fall inside this rank's own chunk/);
  });
});
