import { describe, expect, it } from '@jest/globals';
import { DType, KvMessage, type KvFrame } from '../../core/gen/runahead/v1/rank.ts';
import { framesOf, type KvGeometry } from './frames.ts';
import { EncodeBuffers, encodeKvMessage } from './kv-codec.ts';

const generated = (m: KvMessage) => Buffer.from(KvMessage.encode(m).finish());

/** Bytes that typed-array copies (set, copyWithin, slice) moved while `fn` ran. */
function copiedBytes(fn: () => unknown): number {
  type Fn = (this: Uint8Array, ...args: number[]) => unknown;
  const proto = Uint8Array.prototype as unknown as Record<'set' | 'copyWithin' | 'slice', Fn>;
  const saved = { set: proto.set, copyWithin: proto.copyWithin, slice: proto.slice };
  let bytes = 0;
  const counting = (orig: Fn, count: (self: Uint8Array, args: unknown[]) => number): Fn =>
    function (this: Uint8Array, ...args: number[]) {
      bytes += count(this, args);
      return orig.apply(this, args);
    };
  proto.set = counting(saved.set, (_, [source]) => (source as ArrayLike<number>).length);
  proto.copyWithin = counting(
    saved.copyWithin,
    (self, [, start, end]) => ((end as number | undefined) ?? self.length) - (start as number),
  );
  proto.slice = counting(
    saved.slice,
    (self, [start, end]) =>
      ((end as number | undefined) ?? self.length) - ((start as number | undefined) ?? 0),
  );
  try {
    fn();
  } finally {
    Object.assign(proto, saved);
  }
  return bytes;
}
const frameMessage = (value: KvFrame): KvMessage => ({ body: { $case: 'frame', value } });

function frame(tokens: number, layer = 3, tokenStart = 100): KvFrame {
  const g: KvGeometry = { dtype: DType.DTYPE_FLOAT16, kvHeads: 2, headDim: 64, bytesPerElement: 2 };
  const k = Uint16Array.from({ length: tokens * 128 }, (_, i) => i * 7);
  const v = Uint16Array.from({ length: tokens * 128 }, (_, i) => i * 13);
  return framesOf(layer, tokenStart, k, v, g, 1 << 30)[0]!;
}

describe('encodeKvMessage', () => {
  it('writes the bytes the generated encoder writes, for payloads whose lengths take 2 to 4 varint bytes', () => {
    // 256 B, 64 KiB and 4 MiB per payload: length prefixes of 2, 3 and 4 bytes; the frame's own more.
    for (const tokens of [1, 256, 16384]) {
      const m = frameMessage(frame(tokens));
      expect(encodeKvMessage(m).equals(generated(m))).toBe(true);
    }
  });

  it('leaves zero-valued header fields out as proto3 does (layer 0, token 0)', () => {
    const m = frameMessage(frame(4, 0, 0));
    expect(encodeKvMessage(m).equals(generated(m))).toBe(true);
  });

  it('decodes to the same frame, K and V as views of the message (no copy on the receiving side)', () => {
    const f = frame(32);
    const bytes = encodeKvMessage(frameMessage(f));
    const back = KvMessage.decode(bytes);
    expect(back.body?.$case).toBe('frame');
    const g = back.body!.value as KvFrame;
    expect({ ...g, key: null, value: null }).toEqual({ ...f, key: null, value: null });
    expect(Buffer.from(g.key).equals(Buffer.from(f.key))).toBe(true);
    expect(Buffer.from(g.value).equals(Buffer.from(f.value))).toBe(true);
    expect(g.key.buffer).toBe(bytes.buffer);
  });

  it('copies every payload byte once, where the generated encoder copies it four times', () => {
    const m = frameMessage(frame(2048)); // 512 KiB of K and as much V: a 1 MiB frame
    const payload = 2 * 2048 * 128 * 2;
    expect(copiedBytes(() => encodeKvMessage(m)) / payload).toBeCloseTo(1, 2);
    expect(copiedBytes(() => KvMessage.encode(m).finish()) / payload).toBeCloseTo(4, 2);
    const buffers = new EncodeBuffers();
    buffers.give(encodeKvMessage(m, buffers));
    expect(copiedBytes(() => encodeKvMessage(m, buffers)) / payload).toBeCloseTo(1, 2);
  });

  it('copies the payload: the encoding does not change when the tensor does afterwards', () => {
    const f = frame(8);
    const bytes = encodeKvMessage(frameMessage(f));
    const before = Buffer.from(bytes);
    f.key.fill(0);
    expect(bytes.equals(before)).toBe(true);
  });

  it('encodes a hello through the generated code', () => {
    const hello: KvMessage = {
      body: {
        $case: 'hello',
        value: {
          from: { protocolVersion: 1, modelFingerprint: 'm', runId: 'r', rank: 0, worldSize: 2 },
          toRank: 1,
          dtype: DType.DTYPE_FLOAT32,
          numLayers: 2,
          kvHeads: 2,
          headDim: 4,
        },
      },
    };
    expect(encodeKvMessage(hello).equals(generated(hello))).toBe(true);
  });

  it('encodes into a buffer from the pool it is given, byte for byte the same', () => {
    const m = frameMessage(frame(64));
    const buffers = new EncodeBuffers();
    const a = encodeKvMessage(m, buffers);
    expect(a.equals(generated(m))).toBe(true);
    buffers.give(a);
    const b = encodeKvMessage(frameMessage(frame(16)), buffers);
    expect(b.buffer).toBe(a.buffer); // the same memory, a view of the size needed
    expect(b.byteLength).toBeLessThan(a.byteLength);
    expect(b.equals(generated(frameMessage(frame(16))))).toBe(true);
  });
});

describe('EncodeBuffers', () => {
  it('hands out buffers of their own (never slices of Node’s shared pool), keeping a bounded few', () => {
    const buffers = new EncodeBuffers(2);
    const small = buffers.take(100);
    expect(small.byteLength).toBe(100);
    expect(small.buffer.byteLength).toBe(100);
    const taken = [buffers.take(10), buffers.take(10), buffers.take(10)];
    for (const t of taken) buffers.give(t);
    // Two kept: the next two takes reuse them, the third is new.
    const again = [buffers.take(10), buffers.take(10), buffers.take(10)];
    const reused = again.filter((a) => taken.some((t) => t.buffer === a.buffer));
    expect(reused).toHaveLength(2);
  });

  it('does not hand out a kept buffer too small for the request', () => {
    const buffers = new EncodeBuffers();
    const a = buffers.take(10);
    buffers.give(a);
    expect(buffers.take(20).buffer).not.toBe(a.buffer);
  });
});
