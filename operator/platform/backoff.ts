// Exponential backoff, shared by the work queue (per-key retries) and the informers (restarts of a
// failed list/watch). Pure: the callers own their timers.

/** Delay before retry number `failures + 1`: base·2^failures, capped at max. */
export function backoffDelayMs(failures: number, baseDelayMs: number, maxDelayMs: number): number {
  // 2^failures overflows to Infinity for large counts, which the cap absorbs.
  return Math.min(baseDelayMs * 2 ** failures, maxDelayMs);
}

/**
 * `delayMs` stretched by up to `fraction` (random in [0, fraction)): replicas that failed together
 * (an API server restart) do not all retry in the same instant, as client-go's wait.Jitter.
 */
export function jittered(delayMs: number, fraction: number, random: () => number = Math.random): number {
  return delayMs * (1 + fraction * random());
}
