// The wire encoding of a StreamKv message with one copy of a frame's K and V. The generated encoder
// (ts-proto over @bufbuild/protobuf's BinaryWriter) grows its buffer by doubling, zero-fills every
// new buffer, moves the nested frame when its length prefix widens and slices the result: four
// copies of every payload byte of a 1 MiB frame (counted in the test) and 2 MiB of fresh memory. Here the size is
// known up front: one uninitialized buffer, the header fields from the generated encoder, then the
// payloads copied in once. The bytes are the generated encoder's, field for field (tested). On the
// device host, sender CPU per 512 MiB of K/V went from 1.86 to 1.70 s, and to 1.59 s with the
// buffers reused (EncodeBuffers; bench/results/link-h200-sweep.md).
import { KvFrame, KvMessage } from '../../core/gen/runahead/v1/rank.ts';

const EMPTY = new Uint8Array(0);
/** KvMessage.frame: field 2, length-delimited. */
const TAG_FRAME = (2 << 3) | 2;
/** KvFrame.key and KvFrame.value: fields 7 and 8, length-delimited. */
const TAG_KEY = (7 << 3) | 2;
const TAG_VALUE = (8 << 3) | 2;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Uint8Array, pos: number, n: number): number {
  while (n >= 0x80) {
    buf[pos++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[pos++] = n;
  return pos;
}

/** Bytes of a length-delimited field holding `len` bytes; proto3 leaves empty bytes out. */
const fieldSize = (len: number) => (len === 0 ? 0 : 1 + varintSize(len) + len);

/**
 * Buffers for the encoded frames of one stream, used again once grpc-js is done with them. A fresh
 * megabyte per frame costs more than copying into it: V8 frees each one's ArrayBuffer only in a
 * full garbage collection, which external memory of that rate triggers every few hundred frames,
 * and its pages fault in anew. grpc-js copies a message behind its 5-byte prefix before it writes
 * to HTTP/2, so once a write's callback has run, its buffer is free (KvLink gives it back there).
 */
export class EncodeBuffers {
  private readonly free: Buffer[] = [];
  private readonly keep: number;

  /** `keep`: how many free buffers are held at most (the rest go to the garbage collector). */
  constructor(keep = 4) {
    this.keep = keep;
  }

  /** A buffer of exactly `size` bytes: a view of a free one large enough, or a new one. */
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.byteLength >= size);
    // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool of small buffers.
    const base = i >= 0 ? this.free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(size);
    return base.subarray(0, size);
  }

  /** `buf` (from take) is no longer read by anyone. */
  give(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(Buffer.from(buf.buffer, 0, buf.buffer.byteLength));
  }
}

/**
 * A frame message's bytes around its payloads: `head` (the message's tag and length, the frame's
 * header fields, the key's tag and length) + key + `mid` (the value's tag and length) + value are,
 * byte for byte, what encodeKvMessage writes. `head` starts after `headroom` bytes left free (a
 * K/V socket's length prefix), so that a writer sends the payloads as they are, without copying them.
 */
export function frameMessageParts(
  frame: KvFrame,
  headroom = 0,
): { readonly head: Buffer; readonly mid: Buffer; readonly size: number } {
  const header = KvFrame.encode({ ...frame, key: EMPTY, value: EMPTY }).finish();
  const keyLen = frame.key.byteLength;
  const valueLen = frame.value.byteLength;
  const frameLen = header.byteLength + fieldSize(keyLen) + fieldSize(valueLen);
  const size = 1 + varintSize(frameLen) + frameLen;
  const keyTag = keyLen === 0 ? 0 : 1 + varintSize(keyLen);
  const head = Buffer.allocUnsafe(headroom + 1 + varintSize(frameLen) + header.byteLength + keyTag);
  head[headroom] = TAG_FRAME;
  let pos = writeVarint(head, headroom + 1, frameLen);
  head.set(header, pos);
  pos += header.byteLength;
  if (keyLen > 0) {
    head[pos++] = TAG_KEY;
    writeVarint(head, pos, keyLen);
  }
  const mid = Buffer.allocUnsafe(valueLen === 0 ? 0 : 1 + varintSize(valueLen));
  if (valueLen > 0) {
    mid[0] = TAG_VALUE;
    writeVarint(mid, 1, valueLen);
  }
  return { head, mid, size };
}

/**
 * A KvMessage as protobuf bytes: a frame's payloads copied once, into a buffer from `buffers` when
 * given; a hello through the generated code.
 */
export function encodeKvMessage(message: KvMessage, buffers?: EncodeBuffers): Buffer {
  if (message.body?.$case !== 'frame') {
    const bytes = KvMessage.encode(message).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  const frame = message.body.value;
  const { head, mid, size } = frameMessageParts(frame);
  const out = buffers ? buffers.take(size) : Buffer.allocUnsafe(size);
  let pos = 0;
  for (const part of [head, frame.key, mid, frame.value]) {
    out.set(part, pos);
    pos += part.byteLength;
  }
  if (pos !== out.byteLength) throw new Error(`KV frame encoding wrote ${pos} of ${out.byteLength} bytes`);
  return out;
}
