// Where a rank's inbox keeps the K/V it receives, run after run. Each run needs the same buffers again
// (per layer, the past of its chunk); fresh ones cost their first-touch page faults — about three
// quarters of each receiving copy on the device's host (bench/results/link-h200-sweep.md) — so a rank
// keeps them between runs. SharedArrayBuffers: the compute thread reads them without a copy.
// Bounded: beyond `maxBytes` kept, buffers are left to the garbage collector.
import { bytesPerElement, type ComputeDType, type HostArray } from '../model/tensor.ts';

export class InboxBuffers {
  private readonly free = new Map<number, SharedArrayBuffer[]>();
  private kept = 0;
  private readonly maxBytes: number;
  private counts = { reused: 0, created: 0 };

  constructor(maxBytes: number) {
    if (!(maxBytes >= 0)) throw new RangeError(`an inbox buffer bound must be ≥ 0 bytes, got ${maxBytes}`);
    this.maxBytes = maxBytes;
  }

  /** An array of `elements` of the dtype over shared memory: one given back earlier, or a new one. */
  take(dtype: ComputeDType, elements: number): HostArray {
    const bytes = elements * bytesPerElement(dtype);
    let buffer = this.free.get(bytes)?.pop();
    if (buffer) {
      this.kept -= bytes;
      this.counts.reused++;
    } else {
      buffer = new SharedArrayBuffer(bytes);
      this.counts.created++;
    }
    return dtype === 'float32' ? new Float32Array(buffer) : new Uint16Array(buffer);
  }

  /** Arrays from take() that nobody reads any more (the run is over). */
  giveBack(arrays: readonly HostArray[]): void {
    for (const a of arrays) {
      const buffer = a.buffer;
      if (!(buffer instanceof SharedArrayBuffer) || this.kept + buffer.byteLength > this.maxBytes) continue;
      const list = this.free.get(buffer.byteLength) ?? [];
      list.push(buffer);
      this.free.set(buffer.byteLength, list);
      this.kept += buffer.byteLength;
    }
  }

  stats() {
    return { keptBytes: this.kept, ...this.counts };
  }
}
