import { describe, expect, it } from '@jest/globals';
import { KvBufferPool, SLOT_HEADER_BYTES } from './kv-buffer-pool.ts';

const MiB = 2 ** 20;

describe('KvBufferPool', () => {
  it('hands a slot out again only when its last holder lets go', () => {
    const pool = new KvBufferPool(16 * MiB);
    const a = pool.take(MiB)!;
    expect(a.byteLength).toBe(MiB + SLOT_HEADER_BYTES);
    pool.hold(a); // the caller's hold beside the engine's
    pool.release(a);
    const b = pool.take(MiB)!;
    expect(b).not.toBe(a);
    pool.release(a);
    expect(pool.take(MiB)).toBe(a);
    expect(pool.stats()).toMatchObject({ slots: 2, created: 2, reused: 1, refused: 0 });
  });

  it('recognises its memory when it comes back as another SharedArrayBuffer object (another thread)', () => {
    const pool = new KvBufferPool(16 * MiB);
    const a = pool.take(MiB)!;
    const clone = structuredClone(a);
    expect(clone).not.toBe(a);
    expect(pool.owns(clone)).toBe(true);
    pool.release(clone);
    expect(pool.take(MiB)).toBe(a);
    expect(pool.owns(new SharedArrayBuffer(MiB + SLOT_HEADER_BYTES))).toBe(false);
    expect(pool.owns(new ArrayBuffer(MiB))).toBe(false);
    pool.release(new ArrayBuffer(8)); // not the pool's: ignored
  });

  it('stays within its bound: frees slots of other sizes first, then refuses', () => {
    const pinned: number[] = [];
    const pin = (view: Uint8Array, on: boolean) => {
      pinned.push(on ? view.byteLength : -view.byteLength);
      return true;
    };
    const pool = new KvBufferPool(3 * MiB, pin);
    const small = pool.take(MiB - SLOT_HEADER_BYTES)!;
    pool.release(small); // free, 1 MiB
    const big = pool.take(2 * MiB - SLOT_HEADER_BYTES)!; // fits beside it
    expect(pool.stats()).toMatchObject({ bytes: 3 * MiB, free: 1, pinnedBytes: 3 * MiB });
    const other = pool.take(MiB - SLOT_HEADER_BYTES - 1); // a size not free: evicts the free slot
    expect(other).not.toBeNull();
    expect(pinned).toEqual([MiB, 2 * MiB, -MiB, MiB - 1]);
    expect(pool.take(MiB)).toBeNull(); // nothing free to evict: refused
    expect(pool.stats()).toMatchObject({ slots: 2, refused: 1 });
    pool.release(big);
    pool.clear();
    expect(pinned.slice(-2).sort()).toEqual([-2 * MiB, -(MiB - 1)].sort());
    expect(pool.stats()).toMatchObject({ slots: 0, bytes: 0 });
  });

  it('refuses a negative bound', () => {
    expect(() => new KvBufferPool(-1)).toThrow(/≥ 0 bytes/);
  });
});
