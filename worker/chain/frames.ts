// KV frames: a layer's keys and values for a token range, cut to at most maxFrameBytes of payload,
// each with a CRC-32. Pure functions; the links (kv-link.ts, kv-inbox.ts) do the I/O.
import { crc32 } from './checksum.ts';
import type { DType, KvFrame } from '../../core/gen/runahead/v1/rank.ts';
import type { HostArray } from '../model/tensor.ts';

export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/** Geometry every frame of a link must agree with. */
export interface KvGeometry {
  readonly dtype: DType;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly bytesPerElement: number;
}

/** Bytes of K (or of V) for one token. */
export function rowBytes(g: KvGeometry): number {
  return g.kvHeads * g.headDim * g.bytesPerElement;
}

export function tokensPerFrame(g: KvGeometry, maxFrameBytes: number): number {
  const perToken = 2 * rowBytes(g);
  const tokens = Math.floor(maxFrameBytes / perToken);
  if (tokens < 1) {
    throw new FrameError(
      `maxFrameBytes ${maxFrameBytes} is smaller than one token's K and V (${perToken} bytes)`,
    );
  }
  return tokens;
}

export function frameChecksum(key: Uint8Array, value: Uint8Array): number {
  return crc32(value, crc32(key));
}

function bytesOf(a: HostArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Frames for tokens [tokenStart, tokenStart + tokens) of `layer`, from token-major K/V arrays. The
 * payloads are views of `key`/`value`, not copies.
 */
export function framesOf(
  layer: number,
  tokenStart: number,
  key: HostArray,
  value: HostArray,
  g: KvGeometry,
  maxFrameBytes: number,
): KvFrame[] {
  const row = rowBytes(g);
  const k = bytesOf(key);
  const v = bytesOf(value);
  if (k.byteLength !== v.byteLength || k.byteLength % row !== 0) {
    throw new FrameError(
      `layer ${layer}: K (${k.byteLength} B) and V (${v.byteLength} B) must hold whole tokens of ${row} B`,
    );
  }
  const tokens = k.byteLength / row;
  const step = tokensPerFrame(g, maxFrameBytes);
  const frames: KvFrame[] = [];
  for (let t = 0; t < tokens; t += step) {
    const n = Math.min(step, tokens - t);
    const fk = k.subarray(t * row, (t + n) * row);
    const fv = v.subarray(t * row, (t + n) * row);
    frames.push({
      layer,
      tokenStart: tokenStart + t,
      tokenEnd: tokenStart + t + n,
      dtype: g.dtype,
      shape: [n, g.kvHeads, g.headDim],
      crc32: frameChecksum(fk, fv),
      key: fk,
      value: fv,
    });
  }
  return frames;
}

/** What a receiver expects next from one sender for one layer. */
export interface FrameExpectation {
  readonly numLayers: number;
  /** Tokens [next, end) of this layer are still due from this sender. */
  readonly next: number;
  readonly end: number;
}

/** Why a frame must not be used, or null when it is sound. Checks are cheapest first. */
export function frameProblem(
  f: KvFrame,
  g: KvGeometry,
  want: FrameExpectation | null,
  maxFrameBytes: number,
): string | null {
  if (!want) return `layer ${f.layer} does not exist or expects nothing from this sender`;
  if (f.dtype !== g.dtype) return `dtype ${f.dtype} where ${g.dtype} was agreed`;
  const tokens = f.tokenEnd - f.tokenStart;
  if (tokens <= 0) return `empty token range [${f.tokenStart}, ${f.tokenEnd})`;
  if (f.tokenStart !== want.next) {
    return `tokens [${f.tokenStart}, ${f.tokenEnd}) out of order: expected the range to start at ${want.next}`;
  }
  if (f.tokenEnd > want.end)
    return `tokens [${f.tokenStart}, ${f.tokenEnd}) run past the expected end ${want.end}`;
  const [st, sh, sd] = f.shape;
  if (f.shape.length !== 3 || st !== tokens || sh !== g.kvHeads || sd !== g.headDim) {
    return `shape [${f.shape.join(', ')}] where [${tokens}, ${g.kvHeads}, ${g.headDim}] was expected`;
  }
  const payload = tokens * rowBytes(g);
  if (2 * payload > maxFrameBytes)
    return `payload of ${2 * payload} bytes exceeds the frame limit ${maxFrameBytes}`;
  if (f.key.byteLength !== payload || f.value.byteLength !== payload) {
    return `payload sizes K ${f.key.byteLength} B / V ${f.value.byteLength} B where ${payload} B each was expected`;
  }
  if (frameChecksum(f.key, f.value) !== f.crc32) return 'checksum mismatch: the frame is corrupted';
  return null;
}
