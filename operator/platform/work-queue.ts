// A keyed work queue with client-go's guarantees (k8s.io/client-go/util/workqueue), which
// @kubernetes/client-node lacks:
//  - a key waits at most once: ten events about one object while it waits cost one reconcile;
//  - a key is never handled by two workers at once: a key added while it is handled is handled again
//    right after, so the change that came in meanwhile is not lost and the two runs do not race;
//  - failures back off per key (exponential), so one broken object does not starve the others or
//    hammer the API server, and a success resets its backoff.
// The reconciler reads the current state of the object named by the key; the key carries no event.
import { logger } from '../../core/log.ts';
import { backoffDelayMs } from './backoff.ts';

/** What a handler asks for after handling a key. */
export interface HandlerResult {
  /** Handle the key again after this many milliseconds (e.g. to check a deadline), even with no event. */
  readonly requeueAfterMs?: number;
}

/** Handles one key; throwing retries the key with the key's exponential backoff. */
export type Handler = (key: string) => Promise<HandlerResult>;

export interface WorkQueueOptions {
  /** Name in logs (e.g. the resource). Default 'work'. */
  readonly name?: string;
  /** Delay of the first retry of a failing key. Default 200 ms (controller-runtime uses 5 ms; a reconcile here makes several API calls, so the first retries are spaced more). */
  readonly baseDelayMs?: number;
  /** Cap of the per-key backoff. Default 60 s: a broken object is retried at least once a minute. */
  readonly maxDelayMs?: number;
  /**
   * Most distinct keys waiting (now or later). Default 10 000. Further new keys are refused with an
   * error log rather than growing memory without bound; a resync or the next event adds them again.
   */
  readonly maxLength?: number;
}

export const WORK_QUEUE_DEFAULTS = {
  name: 'work',
  baseDelayMs: 200,
  maxDelayMs: 60_000,
  maxLength: 10_000,
} as const;

/** A full queue logs at most once per this interval. */
const FULL_LOG_INTERVAL_MS = 10_000;

/** setTimeout fires at once for delays above 2^31-1 ms; longer waits are clamped to this (~24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Delayed {
  readonly at: number;
  readonly timer: NodeJS.Timeout;
}

type Waiter = (key: string | null) => void;

export class WorkQueue {
  readonly #name: string;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #maxLength: number;
  readonly #log;

  /** Keys ready for a worker, oldest first (a Set keeps insertion order and dedupes). */
  readonly #ready = new Set<string>();
  /** Keys added while being handled: they become ready when their handler finishes. */
  readonly #again = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #delayed = new Map<string, Delayed>();
  readonly #failures = new Map<string, number>();
  /** Idle workers waiting for a key (null: shut down). */
  readonly #waiters: Waiter[] = [];
  #shuttingDown = false;
  #dropped = 0;
  #lastFullLogAt: number | null = null;
  #running: Promise<void> | null = null;
  /** Resolves shutDown() callers once no handler is in flight. */
  #drained: (() => void)[] = [];

  constructor(options: WorkQueueOptions = {}) {
    this.#name = options.name ?? WORK_QUEUE_DEFAULTS.name;
    this.#baseDelayMs = options.baseDelayMs ?? WORK_QUEUE_DEFAULTS.baseDelayMs;
    this.#maxDelayMs = options.maxDelayMs ?? WORK_QUEUE_DEFAULTS.maxDelayMs;
    this.#maxLength = options.maxLength ?? WORK_QUEUE_DEFAULTS.maxLength;
    for (const [field, value] of [
      ['baseDelayMs', this.#baseDelayMs],
      ['maxDelayMs', this.#maxDelayMs],
    ] as const) {
      if (!(value > 0) || !Number.isFinite(value))
        throw new RangeError(`work queue ${this.#name}: ${field} must be a positive number, got ${value}`);
    }
    if (!Number.isInteger(this.#maxLength) || this.#maxLength < 1)
      throw new RangeError(
        `work queue ${this.#name}: maxLength must be a positive integer, got ${this.#maxLength}`,
      );
    this.#log = logger('work-queue', { queue: this.#name });
  }

  /** Keys waiting to be handled (ready, or added again while being handled); for metrics. */
  get depth(): number {
    return this.#ready.size + this.#again.size;
  }

  /** Keys whose handler is running now. */
  get inFlight(): number {
    return this.#processing.size;
  }

  get shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /** Queues `key` unless it already waits. Returns false when refused (full or shutting down). */
  add(key: string): boolean {
    if (this.#shuttingDown) return false;
    if (this.#ready.has(key) || this.#again.has(key)) return true;
    if (!this.#hasRoomFor(key)) return false;
    if (this.#processing.has(key)) {
      this.#again.add(key);
      return true;
    }
    this.#ready.add(key);
    this.#wakeOne();
    return true;
  }

  /**
   * Queues `key` after `delayMs`. If the key already waits for a later time, the earlier time wins;
   * a key that becomes ready sooner through `add` is still added again at its delayed time.
   */
  addAfter(key: string, delayMs: number): boolean {
    if (Number.isNaN(delayMs) || delayMs < 0)
      throw new RangeError(`work queue ${this.#name}: delay for ${key} must be ≥ 0 ms, got ${delayMs}`);
    if (this.#shuttingDown) return false;
    if (delayMs === 0) return this.add(key);
    const at = performance.now() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending) {
      if (pending.at <= at) return true;
      clearTimeout(pending.timer);
      this.#delayed.delete(key);
    } else if (!this.#hasRoomFor(key)) {
      return false;
    }
    const timer = setTimeout(
      () => {
        this.#delayed.delete(key);
        this.add(key);
      },
      Math.min(delayMs, MAX_TIMER_MS),
    );
    this.#delayed.set(key, { at, timer });
    return true;
  }

  /** Queues `key` after its backoff (base·2^failures, capped) and counts one more failure. */
  addRateLimited(key: string): boolean {
    const failures = this.#failures.get(key) ?? 0;
    const delay = backoffDelayMs(failures, this.#baseDelayMs, this.#maxDelayMs);
    const added = this.addAfter(key, delay);
    if (added) this.#failures.set(key, failures + 1);
    return added;
  }

  /** Resets the backoff of `key` (after a success); does not remove it from the queue. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Failures counted for `key` since its last `forget`. */
  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  /**
   * Starts `concurrency` workers that call `handler` for each key; resolves once shut down and every
   * worker has finished. A result with `requeueAfterMs` queues the key again after that delay; a
   * throw queues it with backoff; a success (without throw) resets its backoff.
   */
  run(concurrency: number, handler: Handler): Promise<void> {
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new RangeError(
        `work queue ${this.#name}: concurrency must be a positive integer, got ${concurrency}`,
      );
    if (this.#running) throw new Error(`work queue ${this.#name} is already running`);
    const workers = Array.from({ length: concurrency }, () => this.#work(handler));
    this.#running = Promise.all(workers).then(() => undefined);
    return this.#running;
  }

  /**
   * Stops handing out keys (keys still waiting are dropped, delayed keys cancelled, new keys refused)
   * and resolves once every handler in flight has finished: the graceful half of a shutdown. A new
   * leader or the next start lists every object again, so nothing dropped here is lost.
   */
  shutDown(): Promise<void> {
    if (!this.#shuttingDown) {
      this.#shuttingDown = true;
      for (const { timer } of this.#delayed.values()) clearTimeout(timer);
      this.#delayed.clear();
      const dropped = this.depth;
      this.#ready.clear();
      this.#again.clear();
      for (const wake of this.#waiters.splice(0)) wake(null);
      this.#log.info({ dropped, inFlight: this.#processing.size }, 'work queue shutting down');
    }
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  #hasRoomFor(key: string): boolean {
    // Delayed keys count too: they hold memory and will become ready.
    if (this.depth + this.#delayed.size < this.#maxLength) return true;
    this.#dropped++;
    // One line per interval, not one per key: a full queue under an event storm would flood the log.
    const now = performance.now();
    if (this.#lastFullLogAt === null || now - this.#lastFullLogAt >= FULL_LOG_INTERVAL_MS) {
      this.#lastFullLogAt = now;
      this.#log.error(
        { key, maxLength: this.#maxLength, droppedSoFar: this.#dropped },
        `work queue ${this.#name} is full (${this.#maxLength} keys): dropping ${key} ` +
          `(${this.#dropped} dropped so far); a dropped key is queued again on its next change. ` +
          'Raise maxLength if this is a normal load.',
      );
    }
    return false;
  }

  /** Keys refused because the queue was full, since it was made. */
  get dropped(): number {
    return this.#dropped;
  }

  #wakeOne(): void {
    const wake = this.#waiters.shift();
    if (!wake) return;
    const key = this.#take();
    if (key === null) {
      this.#waiters.unshift(wake);
      return;
    }
    wake(key);
  }

  /** Moves the oldest ready key to processing. */
  #take(): string | null {
    const next = this.#ready.values().next();
    if (next.done) return null;
    const key = next.value;
    this.#ready.delete(key);
    this.#processing.add(key);
    return key;
  }

  #get(): Promise<string | null> {
    if (this.#shuttingDown) return Promise.resolve(null);
    const key = this.#take();
    if (key !== null) return Promise.resolve(key);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async #work(handler: Handler): Promise<void> {
    for (;;) {
      const key = await this.#get();
      if (key === null) return;
      await this.#handle(key, handler);
    }
  }

  async #handle(key: string, handler: Handler): Promise<void> {
    let requeueAfterMs: number | undefined;
    let failed = false;
    try {
      ({ requeueAfterMs } = await handler(key));
    } catch (err) {
      failed = true;
      this.#log.error(
        { key, err, failures: this.numRequeues(key) + 1 },
        `handling ${key} failed; retrying with backoff`,
      );
    }
    this.#done(key);
    if (failed) {
      this.addRateLimited(key);
      return;
    }
    this.forget(key);
    if (requeueAfterMs === undefined) return;
    if (Number.isNaN(requeueAfterMs) || requeueAfterMs < 0) {
      this.#log.error(
        { key, requeueAfterMs },
        `handler asked to requeue ${key} after an invalid delay; retrying with backoff`,
      );
      this.addRateLimited(key);
      return;
    }
    this.addAfter(key, requeueAfterMs);
  }

  /** Ends the handling of `key`: it becomes ready again if it was added meanwhile. */
  #done(key: string): void {
    this.#processing.delete(key);
    if (this.#again.delete(key)) {
      this.#ready.add(key);
      this.#wakeOne();
    }
    if (this.#shuttingDown && this.#processing.size === 0) {
      for (const resolve of this.#drained.splice(0)) resolve();
    }
  }
}
