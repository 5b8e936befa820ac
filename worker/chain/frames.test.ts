import { describe, expect, it } from '@jest/globals';
import { DType, type KvFrame } from '../../core/gen/runahead/v1/rank.ts';
import { frameProblem, framesOf, tokensPerFrame, type KvGeometry } from './frames.ts';

const g: KvGeometry = { dtype: DType.DTYPE_FLOAT32, kvHeads: 2, headDim: 4, bytesPerElement: 4 }; // 32 B per token K
const kv = (tokens: number, base: number) => Float32Array.from({ length: tokens * 8 }, (_, i) => base + i);

describe('KV frames', () => {
  it('cut a block into frames of at most maxFrameBytes (K+V), covering every token once', () => {
    const frames = framesOf(3, 100, kv(10, 0), kv(10, 1000), g, 4 * 64); // 4 tokens per frame
    expect(frames.map((f) => [f.tokenStart, f.tokenEnd])).toEqual([
      [100, 104],
      [104, 108],
      [108, 110],
    ]);
    expect(frames.every((f) => f.layer === 3 && f.key.byteLength + f.value.byteLength <= 256)).toBe(true);
    expect(new Float32Array(frames[2]!.key.slice().buffer)[0]).toBe(8 * 8);
  });

  it('refuse a frame limit below one token', () => {
    expect(() => tokensPerFrame(g, 63)).toThrow(/smaller than one token's K and V \(64 bytes\)/);
  });

  const sound = () => framesOf(0, 0, kv(4, 0), kv(4, 50), g, 1 << 20)[0]!;
  const want = { numLayers: 2, next: 0, end: 4 };

  it('accept a sound frame', () => {
    expect(frameProblem(sound(), g, want, 1 << 20)).toBeNull();
  });

  it.each<[string, (f: KvFrame) => KvFrame, RegExp]>([
    [
      'a flipped bit',
      (f) => ({ ...f, key: Uint8Array.from(f.key, (b, i) => (i === 5 ? b ^ 1 : b)) }),
      /checksum mismatch/,
    ],
    ['a wrong dtype', (f) => ({ ...f, dtype: DType.DTYPE_FLOAT16 }), /dtype 2 where 1 was agreed/],
    [
      'a wrong shape',
      (f) => ({ ...f, shape: [4, 4, 2] }),
      /shape \[4, 4, 2\] where \[4, 2, 4\] was expected/,
    ],
    [
      'a truncated payload',
      (f) => ({ ...f, value: f.value.subarray(0, 100) }),
      /payload sizes K 128 B \/ V 100 B/,
    ],
    [
      'a gap',
      (f) => ({ ...f, tokenStart: 1, tokenEnd: 5 }),
      /out of order: expected the range to start at 0/,
    ],
    ['tokens past the end', (f) => ({ ...f, tokenEnd: 6, shape: [6, 2, 4] }), /run past the expected end 4/],
  ])('refuse %s', (_, mutate, message) => {
    expect(frameProblem(mutate(sound()), g, want, 1 << 20)).toMatch(message);
  });

  it('refuse a frame for a layer that expects nothing, and one over the size limit', () => {
    expect(frameProblem(sound(), g, null, 1 << 20)).toMatch(/layer 0 does not exist or expects nothing/);
    expect(frameProblem(sound(), g, want, 128)).toMatch(/payload of 256 bytes exceeds the frame limit 128/);
  });
});
