// The K/V socket's byte stream: a frame written as parts is the StreamKv message byte for byte, and
// the reader cuts any chunking of the stream back into the same messages, refusing oversize ones.
import { describe, expect, it } from '@jest/globals';
import { DType, KvMessage, KvSocketEnd } from '../../core/gen/runahead/v1/rank.ts';
import { framesOf, type KvGeometry } from './frames.ts';
import { encodeKvMessage } from './kv-codec.ts';
import {
  END_OF_STREAM,
  LENGTH_BYTES,
  MessageReader,
  WireError,
  frameWireParts,
  helloBytes,
  socketEndBytes,
} from './kv-socket-wire.ts';

const g: KvGeometry = { dtype: DType.DTYPE_FLOAT16, kvHeads: 2, headDim: 8, bytesPerElement: 2 };

function someFrames() {
  const n = 40 * 2 * 8;
  const key = Uint16Array.from({ length: n }, (_, i) => (i * 31) & 0xffff);
  const value = Uint16Array.from({ length: n }, (_, i) => (i * 17 + 5) & 0xffff);
  // 40 tokens in frames of ≤ 16 tokens (32 B per token and side): three frames, the last shorter.
  return framesOf(3, 100, key, value, g, 16 * 64);
}

const concat = (parts: readonly Uint8Array[]) => Buffer.concat(parts.map((p) => Buffer.from(p)));

/** Every message the reader finds in `stream` when it arrives in chunks of `size` bytes, copied out. */
function readAll(stream: Uint8Array, size: number, max = 1 << 20): Buffer[] {
  const reader = new MessageReader(max);
  const out: Buffer[] = [];
  for (let at = 0; at < stream.byteLength; at += size) {
    for (const m of reader.push(stream.subarray(at, at + size))) out.push(Buffer.from(m));
  }
  expect(reader.atBoundary).toBe(true);
  return out;
}

describe('the K/V socket wire', () => {
  it('writes a frame as its StreamKv encoding behind a 4-byte length, with the payloads as the frame’s own arrays', () => {
    for (const frame of someFrames()) {
      const parts = frameWireParts(frame);
      expect(parts).toHaveLength(4);
      expect(parts[1]).toBe(frame.key);
      expect(parts[3]).toBe(frame.value);
      const bytes = concat(parts);
      const message = encodeKvMessage({ body: { $case: 'frame', value: frame } });
      expect(bytes.readUInt32BE(0)).toBe(message.byteLength);
      expect(bytes.subarray(LENGTH_BYTES).equals(message)).toBe(true);
    }
  });

  it('reads the same messages back whatever the chunking, the end of stream as an empty one', () => {
    const frames = someFrames();
    const hello = helloBytes({
      body: {
        $case: 'hello',
        value: { toRank: 1, dtype: g.dtype, numLayers: 4, kvHeads: 2, headDim: 8 },
      },
    });
    const stream = concat([hello, ...frames.flatMap(frameWireParts), END_OF_STREAM]);
    for (const size of [1, 3, 7, 64, 1000, stream.byteLength]) {
      const messages = readAll(stream, size);
      expect(messages).toHaveLength(frames.length + 2);
      expect(KvMessage.decode(messages[0]!).body?.$case).toBe('hello');
      frames.forEach((f, i) => {
        const decoded = KvMessage.decode(messages[i + 1]!).body;
        expect(decoded?.$case).toBe('frame');
        if (decoded?.$case !== 'frame') return;
        expect({
          ...decoded.value,
          key: Buffer.from(decoded.value.key),
          value: Buffer.from(decoded.value.value),
        }).toEqual({
          ...f,
          key: Buffer.from(f.key),
          value: Buffer.from(f.value),
        });
      });
      expect(messages.at(-1)!.byteLength).toBe(0);
    }
  });

  it('refuses a length over the limit before buffering anything, naming the limit', () => {
    const reader = new MessageReader(1024);
    const header = Buffer.alloc(LENGTH_BYTES);
    header.writeUInt32BE(0xffffffff, 0);
    expect(() => [...reader.push(header)]).toThrow(WireError);
    const ok = Buffer.alloc(LENGTH_BYTES);
    ok.writeUInt32BE(1025, 0);
    expect(() => [...new MessageReader(1024).push(ok)]).toThrow(/1025 bytes is over the limit of 1024/);
  });

  it('knows when the stream stopped inside a message', () => {
    const stream = concat(frameWireParts(someFrames()[0]!));
    const reader = new MessageReader(1 << 20);
    expect([...reader.push(stream.subarray(0, stream.byteLength - 1))]).toHaveLength(0);
    expect(reader.atBoundary).toBe(false);
    expect([...reader.push(stream.subarray(stream.byteLength - 1))]).toHaveLength(1);
    expect(reader.atBoundary).toBe(true);
    const lengthOnly = new MessageReader(1 << 20);
    expect([...lengthOnly.push(stream.subarray(0, 2))]).toHaveLength(0);
    expect(lengthOnly.atBoundary).toBe(false);
  });

  it('encodes the receiver’s answer as one length-prefixed KvSocketEnd', () => {
    const bytes = socketEndBytes({ summary: { frames: 3, bytes: 96 }, code: 15, error: 'checksum mismatch' });
    const [message] = readAll(bytes, 5);
    expect(KvSocketEnd.decode(message!)).toEqual({
      summary: { frames: 3, bytes: 96 },
      code: 15,
      error: 'checksum mismatch',
    });
  });
});
