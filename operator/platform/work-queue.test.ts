import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { WorkQueue, type HandlerResult } from './work-queue.ts';

/** A handler whose calls the test finishes by hand, one promise per call. */
class ManualHandler {
  readonly calls: string[] = [];
  readonly #pending: { key: string; resolve: (r: HandlerResult) => void; reject: (e: Error) => void }[] = [];
  active = 0;
  maxActive = 0;
  readonly activePerKey = new Map<string, number>();
  overlap = false;

  readonly handle = (key: string): Promise<HandlerResult> => {
    this.calls.push(key);
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    const n = (this.activePerKey.get(key) ?? 0) + 1;
    if (n > 1) this.overlap = true;
    this.activePerKey.set(key, n);
    return new Promise<HandlerResult>((resolve, reject) => {
      this.#pending.push({ key, resolve, reject });
    }).finally(() => {
      this.active--;
      this.activePerKey.set(key, (this.activePerKey.get(key) ?? 1) - 1);
    });
  };

  get pendingKeys(): string[] {
    return this.#pending.map((p) => p.key);
  }

  finish(key: string, result: HandlerResult = {}): void {
    const i = this.#pending.findIndex((p) => p.key === key);
    if (i < 0) throw new Error(`no pending call for ${key}`);
    this.#pending.splice(i, 1)[0]!.resolve(result);
  }

  fail(key: string): void {
    const i = this.#pending.findIndex((p) => p.key === key);
    if (i < 0) throw new Error(`no pending call for ${key}`);
    this.#pending.splice(i, 1)[0]!.reject(new Error(`reconcile of ${key} failed`));
  }
}

/** Lets promise continuations (handler completion, worker loops) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

describe('WorkQueue', () => {
  let queue: WorkQueue;

  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'queueMicrotask'] });
  });

  afterEach(async () => {
    await queue.shutDown();
    jest.useRealTimers();
  });

  it('dedupes keys that wait and hands them out oldest first', async () => {
    queue = new WorkQueue();
    queue.add('a');
    queue.add('b');
    queue.add('a');
    queue.add('c');
    queue.add('b');
    expect(queue.depth).toBe(3);
    const h = new ManualHandler();
    void queue.run(1, h.handle);
    await settle();
    expect(h.calls).toEqual(['a']);
    h.finish('a');
    await settle();
    h.finish('b');
    await settle();
    h.finish('c');
    await settle();
    expect(h.calls).toEqual(['a', 'b', 'c']);
    expect(queue.depth).toBe(0);
  });

  it('never hands one key to two workers; a key added while handled is handled again after', async () => {
    queue = new WorkQueue();
    const h = new ManualHandler();
    void queue.run(4, h.handle);
    queue.add('a');
    await settle();
    expect(h.pendingKeys).toEqual(['a']);
    queue.add('a');
    queue.add('a');
    queue.add('b');
    await settle();
    expect(h.pendingKeys).toEqual(['a', 'b']);
    expect(queue.depth).toBe(1); // 'a' waits for its own handler to finish
    h.finish('a');
    await settle();
    expect(h.pendingKeys).toEqual(['b', 'a']);
    h.finish('a');
    h.finish('b');
    await settle();
    expect(h.calls).toEqual(['a', 'b', 'a']);
    expect(h.overlap).toBe(false);
    expect(h.maxActive).toBe(2);
  });

  it('runs different keys concurrently up to the worker count', async () => {
    queue = new WorkQueue();
    const h = new ManualHandler();
    for (const k of ['a', 'b', 'c', 'd', 'e']) queue.add(k);
    void queue.run(3, h.handle);
    await settle();
    expect(h.pendingKeys).toEqual(['a', 'b', 'c']);
    h.finish('b');
    await settle();
    expect(h.pendingKeys).toEqual(['a', 'c', 'd']);
    expect(h.maxActive).toBe(3);
    for (const k of ['a', 'c', 'd']) h.finish(k);
    await settle();
    h.finish('e');
    await settle();
  });

  it('addAfter keeps the earliest pending time per key', async () => {
    queue = new WorkQueue();
    const h = new ManualHandler();
    void queue.run(1, h.handle);
    queue.addAfter('a', 1000);
    queue.addAfter('a', 5000); // later: ignored
    queue.addAfter('b', 3000);
    queue.addAfter('b', 500); // earlier: wins
    await jest.advanceTimersByTimeAsync(499);
    expect(h.calls).toEqual([]);
    await jest.advanceTimersByTimeAsync(1);
    expect(h.calls).toEqual(['b']);
    h.finish('b');
    await jest.advanceTimersByTimeAsync(500);
    expect(h.calls).toEqual(['b', 'a']);
    h.finish('a');
    await jest.advanceTimersByTimeAsync(10_000);
    expect(h.calls).toEqual(['b', 'a']);
  });

  it('addAfter with 0 ms adds at once; a negative or NaN delay is a programming error', () => {
    queue = new WorkQueue();
    queue.addAfter('a', 0);
    expect(queue.depth).toBe(1);
    expect(() => queue.addAfter('a', -1)).toThrow(/≥ 0 ms, got -1/);
    expect(() => queue.addAfter('a', Number.NaN)).toThrow(RangeError);
  });

  it('backs off a failing key exponentially and resets on success', async () => {
    queue = new WorkQueue({ baseDelayMs: 200, maxDelayMs: 1000 });
    const h = new ManualHandler();
    void queue.run(1, h.handle);
    queue.add('a');
    await settle();
    const retryTimes: number[] = [];
    const start = Date.now();
    for (const expectedDelay of [200, 400, 800, 1000, 1000]) {
      h.fail('a');
      await settle();
      expect(queue.numRequeues('a')).toBe(retryTimes.length + 1);
      await jest.advanceTimersByTimeAsync(expectedDelay - 1);
      expect(h.pendingKeys).toEqual([]);
      await jest.advanceTimersByTimeAsync(1);
      expect(h.pendingKeys).toEqual(['a']);
      retryTimes.push(Date.now() - start);
    }
    expect(retryTimes).toEqual([200, 600, 1400, 2400, 3400]);
    h.finish('a');
    await settle();
    expect(queue.numRequeues('a')).toBe(0);
    // After the reset, the next failure waits the base delay again.
    queue.add('a');
    await settle();
    h.fail('a');
    await jest.advanceTimersByTimeAsync(200);
    expect(h.pendingKeys).toEqual(['a']);
    h.finish('a');
    await settle();
  });

  it('forget resets the backoff', () => {
    queue = new WorkQueue();
    queue.addRateLimited('a');
    queue.addRateLimited('a');
    expect(queue.numRequeues('a')).toBe(2);
    queue.forget('a');
    expect(queue.numRequeues('a')).toBe(0);
  });

  it('requeues after the delay the handler asks for', async () => {
    queue = new WorkQueue();
    const h = new ManualHandler();
    void queue.run(1, h.handle);
    queue.add('a');
    await settle();
    h.finish('a', { requeueAfterMs: 30_000 });
    await jest.advanceTimersByTimeAsync(29_999);
    expect(h.calls).toEqual(['a']);
    await jest.advanceTimersByTimeAsync(1);
    expect(h.calls).toEqual(['a', 'a']);
    h.finish('a');
    await settle();
  });

  it('retries with backoff when the handler asks for an invalid delay', async () => {
    queue = new WorkQueue({ baseDelayMs: 100 });
    const h = new ManualHandler();
    void queue.run(1, h.handle);
    queue.add('a');
    await settle();
    h.finish('a', { requeueAfterMs: Number.NaN });
    await settle();
    expect(queue.numRequeues('a')).toBe(1);
    await jest.advanceTimersByTimeAsync(100);
    expect(h.calls).toEqual(['a', 'a']);
    h.finish('a');
    await settle();
  });

  it('refuses new keys beyond maxLength, counting delayed ones, and accepts again once drained', async () => {
    queue = new WorkQueue({ maxLength: 3 });
    expect(queue.add('a')).toBe(true);
    expect(queue.add('b')).toBe(true);
    expect(queue.addAfter('c', 1000)).toBe(true);
    expect(queue.add('d')).toBe(false);
    expect(queue.addAfter('e', 10)).toBe(false);
    expect(queue.dropped).toBe(2);
    expect(queue.add('a')).toBe(true); // already waiting: no new room needed
    expect(queue.addAfter('c', 10)).toBe(true); // moves its time earlier
    expect(queue.depth).toBe(2);
    const h = new ManualHandler();
    void queue.run(1, h.handle);
    await settle();
    h.finish('a');
    await settle();
    expect(queue.add('d')).toBe(true);
    h.finish('b');
    await jest.advanceTimersByTimeAsync(10);
    h.finish('d');
    await settle();
    h.finish('c');
    await settle();
    expect(h.calls).toEqual(['a', 'b', 'd', 'c']);
  });

  it('shutDown stops handing out keys, waits for handlers in flight, and refuses new keys', async () => {
    queue = new WorkQueue();
    const h = new ManualHandler();
    const running = queue.run(2, h.handle);
    for (const k of ['a', 'b', 'c']) queue.add(k);
    queue.addAfter('d', 100);
    await settle();
    expect(h.pendingKeys).toEqual(['a', 'b']);

    let stopped = false;
    let workersDone = false;
    void queue.shutDown().then(() => (stopped = true));
    void running.then(() => (workersDone = true));
    expect(queue.add('e')).toBe(false);
    h.finish('a', { requeueAfterMs: 10 });
    await jest.advanceTimersByTimeAsync(200);
    expect(stopped).toBe(false);
    expect(h.pendingKeys).toEqual(['b']);
    h.fail('b');
    await settle();
    expect(stopped).toBe(true);
    expect(workersDone).toBe(true);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(h.calls).toEqual(['a', 'b']);
    expect(queue.depth).toBe(0);
  });

  it('shutDown with nothing in flight resolves at once and ends idle workers', async () => {
    queue = new WorkQueue();
    const h = new ManualHandler();
    const running = queue.run(3, h.handle);
    await queue.shutDown();
    await running;
    expect(h.calls).toEqual([]);
  });

  it('refuses a second run and bad options', () => {
    queue = new WorkQueue();
    void queue.run(1, () => Promise.resolve({}));
    expect(() => queue.run(1, () => Promise.resolve({}))).toThrow(/already running/);
    expect(() => new WorkQueue({ maxLength: 0 })).toThrow(/maxLength/);
    expect(() => new WorkQueue({ baseDelayMs: -5 })).toThrow(/baseDelayMs/);
    expect(() => new WorkQueue().run(0, () => Promise.resolve({}))).toThrow(/concurrency/);
  });
});

describe('WorkQueue with real timers', () => {
  it('handles a burst of events with no key handled twice at once, and the last change seen', async () => {
    const queue = new WorkQueue({ baseDelayMs: 1 });
    const active = new Set<string>();
    let overlap = false;
    const version = new Map<string, number>();
    const seen = new Map<string, number>();
    const running = queue.run(4, async (key) => {
      if (active.has(key)) overlap = true;
      active.add(key);
      const v = version.get(key) ?? 0;
      await new Promise((r) => setTimeout(r, Math.random() * 3));
      active.delete(key);
      if (Math.random() < 0.1) throw new Error('transient');
      seen.set(key, Math.max(seen.get(key) ?? 0, v));
      return {};
    });
    for (let i = 0; i < 400; i++) {
      const key = `k${i % 7}`;
      version.set(key, (version.get(key) ?? 0) + 1);
      queue.add(key);
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    const deadline = Date.now() + 5000;
    while ([...version].some(([k, v]) => seen.get(k) !== v) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await queue.shutDown();
    await running;
    expect(overlap).toBe(false);
    expect(seen).toEqual(version);
  });
});
