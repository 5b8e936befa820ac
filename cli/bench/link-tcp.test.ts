import { describe, expect, it } from '@jest/globals';
import { TcpFrameError, TcpFrameReader, tcpHeader, type TcpDestination } from './link-tcp.ts';

const ROW = 8;
const TOKENS = 10;

function destination(layers: number): { dest: TcpDestination; keys: Uint8Array[]; values: Uint8Array[] } {
  const keys = Array.from({ length: layers }, () => new Uint8Array(TOKENS * ROW));
  const values = Array.from({ length: layers }, () => new Uint8Array(TOKENS * ROW));
  return {
    keys,
    values,
    dest: { rowBytes: ROW, numLayers: layers, key: (l) => keys[l]!, value: (l) => values[l]! },
  };
}

/** The byte stream a sender writes: per layer, frames of `step` tokens, K bytes = layer*100+i, V = K+50. */
function stream(layers: number, step: number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let l = 0; l < layers; l++) {
    for (let t = 0; t < TOKENS; t += step) {
      const n = Math.min(step, TOKENS - t);
      const k = Uint8Array.from({ length: n * ROW }, (_, i) => (l * 100 + t * ROW + i) & 0xff);
      parts.push(
        tcpHeader(l, t, n, n * ROW),
        k,
        k.map((x) => (x + 50) & 0xff),
      );
    }
  }
  return Buffer.concat(parts);
}

describe('TcpFrameReader', () => {
  it('places every frame, however the socket cuts the stream', () => {
    const bytes = stream(2, 3);
    for (const cut of [1, 5, 16, 17, 29, bytes.byteLength]) {
      const { dest, keys, values } = destination(2);
      const reader = new TcpFrameReader(dest);
      for (let i = 0; i < bytes.byteLength; i += cut) reader.push(bytes.subarray(i, i + cut));
      expect(reader.frames).toBe(2 * 4);
      expect(reader.bytes).toBe(2 * 2 * TOKENS * ROW);
      for (let l = 0; l < 2; l++) {
        expect([...keys[l]!]).toEqual(Array.from({ length: TOKENS * ROW }, (_, i) => (l * 100 + i) & 0xff));
        expect([...values[l]!]).toEqual([...keys[l]!].map((x) => (x + 50) & 0xff));
      }
    }
  });

  it('refuses a frame for a layer or tokens the destination does not have', () => {
    expect(() => {
      new TcpFrameReader(destination(1).dest).push(tcpHeader(1, 0, 1, ROW));
    }).toThrow(TcpFrameError);
    expect(() => {
      new TcpFrameReader(destination(1).dest).push(tcpHeader(0, 8, 4, 4 * ROW));
    }).toThrow(/does not fit 10 tokens of 8 B/);
    expect(() => {
      new TcpFrameReader(destination(1).dest).push(tcpHeader(0, 0, 2, ROW));
    }).toThrow(TcpFrameError);
  });
});
