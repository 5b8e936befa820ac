// The raw TCP path of `runahead bench link`: the same frames as the chain's (a layer's K and V for a
// token range) behind a 16-byte header instead of protobuf and HTTP/2, written as views of the K/V
// arrays (writev, no copy) and copied once on arrival into the receiver's per-layer buffers. No
// checksums: this is what the socket and the event loops give, the ceiling of the gRPC path.

/** Header: layer, first token, tokens, bytes of K (as many of V follow), little-endian u32 each. */
export const TCP_HEADER_BYTES = 16;

export function tcpHeader(layer: number, tokenStart: number, tokens: number, payloadBytes: number): Buffer {
  const h = Buffer.allocUnsafe(TCP_HEADER_BYTES);
  h.writeUInt32LE(layer, 0);
  h.writeUInt32LE(tokenStart, 4);
  h.writeUInt32LE(tokens, 8);
  h.writeUInt32LE(payloadBytes, 12);
  return h;
}

/** Where a layer's K and V land on the receiver: token-major, `rowBytes` per token. */
export interface TcpDestination {
  readonly rowBytes: number;
  readonly numLayers: number;
  key(layer: number): Uint8Array;
  value(layer: number): Uint8Array;
}

export class TcpFrameError extends Error {
  override readonly name = 'TcpFrameError';
}

/**
 * Reads frames from socket chunks, however the chunks cut them, and copies each payload into place.
 * Headers are checked against the destination; `frames` and `bytes` count what arrived.
 */
export class TcpFrameReader {
  private readonly dest: TcpDestination;
  private readonly header = Buffer.alloc(TCP_HEADER_BYTES);
  private headerFill = 0;
  /** The payload being read: K, then V, of the current frame. */
  private target: { key: Uint8Array; value: Uint8Array; offset: number; length: number } | null = null;
  /** Bytes of the current frame's payload (K then V) already placed. */
  private placed = 0;
  frames = 0;
  bytes = 0;

  constructor(dest: TcpDestination) {
    this.dest = dest;
  }

  push(chunk: Uint8Array): void {
    let pos = 0;
    while (pos < chunk.byteLength) {
      if (!this.target) {
        const n = Math.min(TCP_HEADER_BYTES - this.headerFill, chunk.byteLength - pos);
        this.header.set(chunk.subarray(pos, pos + n), this.headerFill);
        this.headerFill += n;
        pos += n;
        if (this.headerFill === TCP_HEADER_BYTES) this.startFrame();
        continue;
      }
      const t = this.target;
      const inKey = this.placed < t.length;
      const into = inKey ? t.key : t.value;
      const at = inKey ? this.placed : this.placed - t.length;
      const n = Math.min(t.length - at, chunk.byteLength - pos);
      into.set(chunk.subarray(pos, pos + n), t.offset + at);
      pos += n;
      this.placed += n;
      this.bytes += n;
      if (this.placed === 2 * t.length) {
        this.target = null;
        this.headerFill = 0;
        this.frames++;
      }
    }
  }

  private startFrame(): void {
    const layer = this.header.readUInt32LE(0);
    const tokenStart = this.header.readUInt32LE(4);
    const tokens = this.header.readUInt32LE(8);
    const length = this.header.readUInt32LE(12);
    const { rowBytes, numLayers } = this.dest;
    if (layer >= numLayers) throw new TcpFrameError(`frame for layer ${layer} of ${numLayers}`);
    const key = this.dest.key(layer);
    const value = this.dest.value(layer);
    const offset = tokenStart * rowBytes;
    if (length !== tokens * rowBytes || tokens === 0 || offset + length > key.byteLength) {
      throw new TcpFrameError(
        `frame of layer ${layer}, tokens ${tokenStart}+${tokens}, ${length} B does not fit ${key.byteLength / rowBytes} tokens of ${rowBytes} B`,
      );
    }
    this.target = { key, value, offset, length };
    this.placed = 0;
  }
}
