import { describe, expect, it } from '@jest/globals';
import { AdmissionQueue, QueueFullError } from './admission-queue.ts';

const never = () => new AbortController().signal;

describe('AdmissionQueue', () => {
  it('admits up to its concurrency, queues in arrival order, and hands a slot on when released', async () => {
    const q = new AdmissionQueue({ concurrency: 1, capacity: 2 });
    const first = await q.acquire(never());
    const order: string[] = [];
    const b = q.acquire(never()).then((release) => {
      order.push('b');
      return release;
    });
    const c = q.acquire(never()).then((release) => {
      order.push('c');
      return release;
    });
    expect([q.inFlight, q.depth]).toEqual([1, 2]);
    first();
    first(); // a second release changes nothing
    (await b)();
    (await c)();
    expect(order).toEqual(['b', 'c']);
    expect([q.inFlight, q.depth]).toEqual([0, 0]);
  });

  it('refuses at once when capacity requests already wait, with a Retry-After hint', async () => {
    const q = new AdmissionQueue({ concurrency: 1, capacity: 1 });
    const release = await q.acquire(never());
    const waiting = q.acquire(never());
    const refused = q.acquire(never());
    await expect(refused).rejects.toThrow(QueueFullError);
    await expect(refused).rejects.toMatchObject({
      message: 'the queue is full (1 waiting, 1 running; capacity 1)',
      retryAfterSeconds: 2,
    });
    release();
    (await waiting)();
  });

  it('drops a waiter whose signal aborts, and refuses one that comes already aborted', async () => {
    const q = new AdmissionQueue({ concurrency: 1, capacity: 4 });
    const release = await q.acquire(never());
    const gone = new AbortController();
    const waiting = q.acquire(gone.signal);
    expect(q.depth).toBe(1);
    gone.abort(new Error('client went away'));
    await expect(waiting).rejects.toThrow('client went away');
    expect(q.depth).toBe(0);
    await expect(q.acquire(gone.signal)).rejects.toThrow('client went away');
    release();
    expect(q.inFlight).toBe(0);
  });

  it('estimates Retry-After from the recent service times', async () => {
    const q = new AdmissionQueue({ concurrency: 1, capacity: 8 });
    const release = await q.acquire(never());
    await new Promise((r) => setTimeout(r, 1100));
    release();
    const holding = await q.acquire(never());
    const queued = [q.acquire(never()), q.acquire(never())];
    // Three ahead (one running, two waiting) at ~1.1 s each.
    expect(q.retryAfterSeconds()).toBe(4);
    holding();
    for (const p of queued) (await p)();
  });
});
