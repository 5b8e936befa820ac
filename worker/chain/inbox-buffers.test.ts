import { describe, expect, it } from '@jest/globals';
import { InboxBuffers } from './inbox-buffers.ts';

describe('InboxBuffers', () => {
  it('hands back what it was given, by size and dtype, over shared memory', () => {
    const pool = new InboxBuffers(1024);
    const a = pool.take('float16', 100);
    expect(a).toBeInstanceOf(Uint16Array);
    expect(a.buffer).toBeInstanceOf(SharedArrayBuffer);
    pool.giveBack([a]);
    expect(pool.take('float32', 10).buffer).not.toBe(a.buffer); // 40 bytes: another size
    const b = pool.take('float32', 50); // 200 bytes, as a was
    expect(b).toBeInstanceOf(Float32Array);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.stats()).toEqual({ keptBytes: 0, created: 2, reused: 1 });
  });

  it('keeps no more than its bound, and nothing that is not shared', () => {
    const pool = new InboxBuffers(300);
    pool.giveBack([pool.take('float32', 50), pool.take('float32', 50)]); // 200 + 200 > 300
    expect(pool.stats().keptBytes).toBe(200);
    pool.giveBack([new Float32Array(10)]);
    expect(pool.stats().keptBytes).toBe(200);
    expect(() => new InboxBuffers(-1)).toThrow(/≥ 0 bytes/);
  });
});
