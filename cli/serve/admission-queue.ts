// Admission to the rank group: at most `concurrency` requests hold it at once, at most `capacity`
// wait behind them in arrival order, and a request that finds the queue full is refused at once
// (the front answers 429 with Retry-After) instead of growing memory and latency without bound. A
// waiter whose signal aborts (its client went away, its deadline passed) leaves the queue.
//
// One slot by default: a rank node runs one run at a time (worker/chain/run-lifecycle.ts), so a
// second prefill on the chain could only wait inside the ranks, where nothing bounds it.
import { abortError } from '../../core/abort-error.ts';

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  /** A hint for Retry-After: about when a place should be free, in whole seconds (≥ 1). */
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface AdmissionOptions {
  /** Requests holding the group at once. */
  readonly concurrency: number;
  /** Requests waiting at most; the next one is refused. */
  readonly capacity: number;
}

interface Waiter {
  readonly grant: (release: () => void) => void;
}

/** Mean service time over the recent requests (exponential, ~10 requests), for Retry-After. */
const SERVICE_EWMA = 0.2;

export class AdmissionQueue {
  private readonly options: AdmissionOptions;
  private readonly waiting: Waiter[] = [];
  private holding = 0;
  private serviceMs: number | null = null;

  constructor(options: AdmissionOptions) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new RangeError(`concurrency must be an integer ≥ 1, got ${options.concurrency}`);
    if (!Number.isInteger(options.capacity) || options.capacity < 0)
      throw new RangeError(`capacity must be an integer ≥ 0, got ${options.capacity}`);
    this.options = options;
  }

  /** Requests waiting now. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Requests holding the group now. */
  get inFlight(): number {
    return this.holding;
  }

  /**
   * Wait for a slot; resolves with the function that gives it back (call it exactly once). Rejects
   * at once with QueueFullError when `capacity` requests already wait, and with `signal`'s reason
   * when it aborts first.
   */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(abortError(signal));
    if (this.holding < this.options.concurrency && this.waiting.length === 0)
      return Promise.resolve(this.take());
    if (this.waiting.length >= this.options.capacity)
      return Promise.reject(
        new QueueFullError(
          `the queue is full (${this.waiting.length} waiting, ${this.holding} running; capacity ${this.options.capacity})`,
          this.retryAfterSeconds(),
        ),
      );
    return new Promise<() => void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(abortError(signal));
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      this.waiting.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Seconds until about one place is free: everything ahead served at the recent mean rate. */
  retryAfterSeconds(): number {
    const perRequestMs = this.serviceMs ?? 1000;
    const ahead = this.waiting.length + this.holding;
    return Math.max(1, Math.ceil((ahead * perRequestMs) / this.options.concurrency / 1000));
  }

  /** How long the last request held its slot: Retry-After follows the recent service times. */
  private recordService(ms: number): void {
    this.serviceMs = this.serviceMs === null ? ms : this.serviceMs + SERVICE_EWMA * (ms - this.serviceMs);
  }

  private take(): () => void {
    this.holding++;
    const since = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holding--;
      this.recordService(performance.now() - since);
      const next = this.waiting.shift();
      if (next) next.grant(this.take());
    };
  }
}
