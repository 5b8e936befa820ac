// Host-side tensors in the engine's compute dtype, and the conversions between storage dtypes.
// float16 data is kept as its bit pattern in a Uint16Array: that is what onnxruntime-node accepts.

export type ComputeDType = 'float32' | 'float16';
export type HostArray = Float32Array | Uint16Array;

export interface HostTensor {
  readonly dtype: ComputeDType;
  readonly dims: readonly number[];
  readonly data: HostArray;
}

/** Storage dtypes of safetensors files that the loader reads. */
export type StorageDType = 'F32' | 'F16' | 'BF16';

export const STORAGE_BYTES: Record<StorageDType, number> = { F32: 4, F16: 2, BF16: 2 };

export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

export function hostTensor(dtype: ComputeDType, dims: readonly number[], data: HostArray): HostTensor {
  if (data.length !== elementCount(dims)) {
    throw new Error(
      `tensor data has ${data.length} elements, shape [${dims.join(', ')}] needs ${elementCount(dims)}`,
    );
  }
  if ((dtype === 'float32') !== data instanceof Float32Array) {
    throw new Error(
      `tensor data is a ${data.constructor.name}, dtype ${dtype} needs ${dtype === 'float32' ? 'Float32Array' : 'Uint16Array'}`,
    );
  }
  return { dtype, dims: [...dims], data };
}

export function allocate(dtype: ComputeDType, elements: number): HostArray {
  return dtype === 'float32' ? new Float32Array(elements) : new Uint16Array(elements);
}

export function bytesPerElement(dtype: ComputeDType): number {
  return dtype === 'float32' ? 4 : 2;
}

function bf16ToF32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = (bits[i] as number) << 16;
  return new Float32Array(out.buffer);
}

function f16ToF32(bits: Uint16Array): Float32Array {
  return new Float32Array(new Float16Array(bits.buffer, bits.byteOffset, bits.length));
}

export function f32ToF16(values: Float32Array): Uint16Array {
  const half = new Float16Array(values);
  return new Uint16Array(half.buffer, half.byteOffset, half.length);
}

export function toFloat32(data: HostArray): Float32Array {
  return data instanceof Float32Array ? data : f16ToF32(data);
}

/** Convert raw little-endian bytes of a stored tensor to the compute dtype (one copy at most). */
export function convertStored(raw: Uint8Array, from: StorageDType, to: ComputeDType): HostArray {
  // A copy realigns (Buffer#slice would return a view at the same offset).
  if (raw.byteOffset % STORAGE_BYTES[from] !== 0) raw = new Uint8Array(raw);
  const count = raw.byteLength / STORAGE_BYTES[from];
  if (from === 'F32') {
    const f32 = new Float32Array(raw.buffer, raw.byteOffset, count);
    return to === 'float32' ? f32 : f32ToF16(f32);
  }
  const bits = new Uint16Array(raw.buffer, raw.byteOffset, count);
  if (from === 'F16') return to === 'float16' ? bits : f16ToF32(bits);
  const f32 = bf16ToF32(bits);
  return to === 'float32' ? f32 : f32ToF16(f32);
}
