import { describe, expect, it } from '@jest/globals';
import { convertStored, f32ToF16, toFloat32 } from './tensor.ts';

const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('dtype conversion', () => {
  const values = Float32Array.of(0, 1, -2.5, 0.1, 65504, -1e-3);

  it('keeps float32 bit for bit', () => {
    expect(Array.from(convertStored(bytes(values), 'F32', 'float32'))).toEqual(Array.from(values));
  });

  it('widens bfloat16 exactly (upper 16 bits of float32)', () => {
    const bf16 = Uint16Array.of(0x3f80, 0xc020, 0x0000, 0x4049); // 1, -2.5, 0, 3.140625
    expect(Array.from(convertStored(bytes(bf16), 'BF16', 'float32'))).toEqual([1, -2.5, 0, 3.140625]);
  });

  it('widens float16 exactly and narrows to the nearest half', () => {
    const half = f32ToF16(values);
    expect(Array.from(half.slice(0, 3))).toEqual([0x0000, 0x3c00, 0xc100]);
    const back = toFloat32(convertStored(bytes(half), 'F16', 'float16'));
    back.forEach((v, i) => {
      expect(Math.abs(v - values[i]!)).toBeLessThanOrEqual(Math.abs(values[i]!) * 2 ** -11);
    });
  });

  it('reads unaligned data', () => {
    const raw = new Uint8Array(9);
    raw.set(bytes(Float32Array.of(1.5, -3)), 1);
    expect(Array.from(convertStored(raw.subarray(1), 'F32', 'float32'))).toEqual([1.5, -3]);
  });
});
