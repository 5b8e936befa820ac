// The byte stream of a K/V socket (kv-socket.ts): messages, each a 4-byte big-endian length and then
// that many bytes of protobuf — the KvMessages of StreamKv from the sender (a hello, frames, then a
// length of 0 for the end), one KvSocketEnd from the receiver. Pure: no sockets here.
import { KvSocketEnd, type KvFrame, type KvMessage } from '../../core/gen/runahead/v1/rank.ts';
import { encodeKvMessage, frameMessageParts } from './kv-codec.ts';

export const LENGTH_BYTES = 4;

export class WireError extends Error {
  override readonly name = 'WireError';
}

function prefixed(body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_BYTES + body.byteLength);
  out.writeUInt32BE(body.byteLength, 0);
  out.set(body, LENGTH_BYTES);
  return out;
}

/** A hello (or any non-frame KvMessage) as one buffer. */
export function helloBytes(message: KvMessage): Buffer {
  return prefixed(encodeKvMessage(message));
}

/**
 * A frame as the buffers to write one after the other: its payloads are the frame's own arrays
 * (views of the sender's K/V, not copies); the two small buffers around them hold the length and
 * the protobuf fields.
 */
export function frameWireParts(frame: KvFrame): Uint8Array[] {
  const { head, mid, size } = frameMessageParts(frame, LENGTH_BYTES);
  head.writeUInt32BE(size, 0);
  return [head, frame.key, mid, frame.value].filter((p) => p.byteLength > 0);
}

/** The sender's last message: no more frames. */
export const END_OF_STREAM: Buffer = Buffer.alloc(LENGTH_BYTES);

export function socketEndBytes(end: KvSocketEnd): Buffer {
  return prefixed(KvSocketEnd.encode(end).finish());
}

/**
 * Cuts a byte stream into messages. A message that arrives whole inside one chunk is returned as a
 * view of it; one spread over chunks is assembled in a buffer this reader keeps and reuses, so a
 * message is valid only until the next one is taken: consume each before pulling the next
 * (`for … of` over `push(chunk)`, awaiting inside the loop). A length over `maxMessageBytes` is
 * refused before anything is buffered.
 */
export class MessageReader {
  private readonly maxMessageBytes: number;
  private readonly lengthBytes = Buffer.alloc(LENGTH_BYTES);
  private lengthHave = 0;
  /** Length of the message being assembled (-1: reading a length). */
  private want = -1;
  private staging: Buffer = Buffer.alloc(0);
  private have = 0;

  constructor(maxMessageBytes: number) {
    this.maxMessageBytes = maxMessageBytes;
  }

  /** Whether the stream stopped between messages (else it was cut inside one). */
  get atBoundary(): boolean {
    return this.want === -1 && this.lengthHave === 0;
  }

  /** The complete messages `chunk` ends (an empty one for a length of 0), in order. */
  *push(chunk: Uint8Array): Generator<Uint8Array, void, undefined> {
    let pos = 0;
    while (pos < chunk.byteLength) {
      if (this.want === -1) {
        if (this.lengthHave === 0 && chunk.byteLength - pos >= LENGTH_BYTES) {
          this.want = Buffer.from(chunk.buffer, chunk.byteOffset + pos, LENGTH_BYTES).readUInt32BE(0);
          pos += LENGTH_BYTES;
        } else {
          const n = Math.min(LENGTH_BYTES - this.lengthHave, chunk.byteLength - pos);
          this.lengthBytes.set(chunk.subarray(pos, pos + n), this.lengthHave);
          this.lengthHave += n;
          pos += n;
          if (this.lengthHave < LENGTH_BYTES) return;
          this.want = this.lengthBytes.readUInt32BE(0);
          this.lengthHave = 0;
        }
        if (this.want > this.maxMessageBytes)
          throw new WireError(
            `a K/V socket message of ${this.want} bytes is over the limit of ${this.maxMessageBytes} (--max-frame-bytes plus headers)`,
          );
        this.have = 0;
      }
      const want = this.want;
      if (this.have === 0 && chunk.byteLength - pos >= want) {
        this.want = -1;
        const message = chunk.subarray(pos, pos + want);
        pos += want;
        yield message;
        continue;
      }
      if (this.staging.byteLength < want) this.staging = Buffer.allocUnsafeSlow(want);
      const n = Math.min(want - this.have, chunk.byteLength - pos);
      this.staging.set(chunk.subarray(pos, pos + n), this.have);
      this.have += n;
      pos += n;
      if (this.have === want) {
        this.want = -1;
        this.have = 0;
        yield this.staging.subarray(0, want);
      }
    }
  }
}
