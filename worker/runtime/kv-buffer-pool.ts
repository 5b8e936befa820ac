// Host buffers for K/V that leave the GPU, reused run after run. A fresh host buffer per output costs
// its first-touch page faults (≈ 1.2 GB/s on the device's host) and a pageable one the driver's staging
// copy; a reused, page-locked one is written at ≈ 50 GB/s (bench/results/h200-native-egress.md).
//
// A slot is a SharedArrayBuffer: the engine's thread writes it and the rank's main thread frames and
// sends it without a copy or a transfer. A slot is held by whoever still reads it (the engine until it
// has attended the layer, the caller until the layer is sent) and returns to the pool when the last
// holder lets go. The first bytes of a slot carry its id, so a slot that crossed threads (and arrives
// as a different SharedArrayBuffer object over the same memory) is still recognised.
//
// Bounded: past `maxBytes` of slots, take() answers null and the caller falls back to ordinary memory.

/** Bytes before a slot's data: its id, padded so the data keeps 64-byte alignment. */
export const SLOT_HEADER_BYTES = 64;

/** Page-locks (true) or unlocks (false) a slot's memory; returns whether it is pinned. */
export type PinFunction = (view: Uint8Array, pin: boolean) => boolean;

interface Slot {
  readonly id: number;
  readonly buffer: SharedArrayBuffer;
  readonly pinned: boolean;
  holders: number;
}

export interface PoolStats {
  readonly slots: number;
  readonly bytes: number;
  readonly free: number;
  readonly pinnedBytes: number;
  /** take() answered from a free slot / with a new slot / with null (over the bound). */
  readonly reused: number;
  readonly created: number;
  readonly refused: number;
}

export class KvBufferPool {
  private readonly slots = new Map<number, Slot>();
  private readonly free = new Map<number, Slot[]>();
  private bytes = 0;
  private nextId = 1;
  private counts = { reused: 0, created: 0, refused: 0 };
  private readonly maxBytes: number;
  private readonly pin: PinFunction;

  constructor(maxBytes: number, pin: PinFunction = () => false) {
    if (!(maxBytes >= 0)) throw new RangeError(`a pool bound must be ≥ 0 bytes, got ${maxBytes}`);
    this.maxBytes = maxBytes;
    this.pin = pin;
  }

  /** A slot of at least `dataBytes` (held once, by the caller), or null when the pool is full. */
  take(dataBytes: number): SharedArrayBuffer | null {
    const size = SLOT_HEADER_BYTES + dataBytes;
    const reusable = this.free.get(size)?.pop();
    if (reusable) {
      reusable.holders = 1;
      this.counts.reused++;
      return reusable.buffer;
    }
    // Free slots of other sizes (an earlier prompt length) make room before the bound refuses.
    for (const [freeSize, list] of this.free) {
      while (this.bytes + size > this.maxBytes && list.length > 0) this.drop(list.pop()!);
      if (list.length === 0) this.free.delete(freeSize);
      if (this.bytes + size <= this.maxBytes) break;
    }
    if (this.bytes + size > this.maxBytes) {
      this.counts.refused++;
      return null;
    }
    const buffer = new SharedArrayBuffer(size);
    const id = this.nextId++;
    new Int32Array(buffer, 0, 1)[0] = id;
    const slot: Slot = { id, buffer, pinned: this.pin(new Uint8Array(buffer), true), holders: 1 };
    this.slots.set(id, slot);
    this.bytes += size;
    this.counts.created++;
    return buffer;
  }

  /** Whether memory (any view of a SharedArrayBuffer) is a slot of this pool. */
  owns(buffer: ArrayBufferLike): boolean {
    return this.slotOf(buffer) !== null;
  }

  /** One more holder of the slot under `buffer` (no-op for memory that is not the pool's). */
  hold(buffer: ArrayBufferLike): void {
    const slot = this.slotOf(buffer);
    if (slot) slot.holders++;
  }

  /** One holder fewer; the slot is free again when none is left. No-op for memory not the pool's. */
  release(buffer: ArrayBufferLike): void {
    const slot = this.slotOf(buffer);
    if (!slot || slot.holders === 0) return;
    if (--slot.holders > 0) return;
    const size = slot.buffer.byteLength;
    const list = this.free.get(size) ?? [];
    list.push(slot);
    this.free.set(size, list);
  }

  stats(): PoolStats {
    let free = 0;
    let pinnedBytes = 0;
    for (const list of this.free.values()) free += list.length;
    for (const slot of this.slots.values()) if (slot.pinned) pinnedBytes += slot.buffer.byteLength;
    return { slots: this.slots.size, bytes: this.bytes, free, pinnedBytes, ...this.counts };
  }

  /** Unpins and forgets every slot (holders still reading keep their memory; it is no longer pinned). */
  clear(): void {
    for (const slot of this.slots.values()) if (slot.pinned) this.pin(new Uint8Array(slot.buffer), false);
    this.slots.clear();
    this.free.clear();
    this.bytes = 0;
  }

  private drop(slot: Slot): void {
    if (slot.pinned) this.pin(new Uint8Array(slot.buffer), false);
    this.slots.delete(slot.id);
    this.bytes -= slot.buffer.byteLength;
  }

  private slotOf(buffer: ArrayBufferLike): Slot | null {
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < SLOT_HEADER_BYTES) return null;
    const slot = this.slots.get(new Int32Array(buffer, 0, 1)[0]!);
    // Same id and same size: the header could have been overwritten only by a caller writing out of bounds.
    return slot && slot.buffer.byteLength === buffer.byteLength ? slot : null;
  }
}
