// The runs a rank node knows by id, so that K/V streams and Aborts find theirs. A stream may reach a
// rank before the Start of its run does (rank i−1 starts sending as soon as its own Start came), so a
// lookup can wait for the run to be registered, up to a deadline.
export class RunRegistry<R> {
  private readonly runs = new Map<string, R>();
  private readonly waiters = new Map<string, Set<() => void>>();

  add(runId: string, run: R): void {
    this.runs.set(runId, run);
    const waiting = this.waiters.get(runId);
    this.waiters.delete(runId);
    for (const wake of waiting ?? []) wake();
  }

  delete(runId: string): void {
    this.runs.delete(runId);
  }

  get(runId: string): R | undefined {
    return this.runs.get(runId);
  }

  values(): IterableIterator<R> {
    return this.runs.values();
  }

  /** The run `runId` once it is registered; rejects with `timeout()` if it is not within `timeoutMs`. */
  async waitFor(runId: string, timeoutMs: number, timeout: () => Error): Promise<R> {
    const found = this.runs.get(runId);
    if (found) return found;
    await new Promise<void>((resolve, reject) => {
      const waiting = this.waiters.get(runId) ?? new Set<() => void>();
      this.waiters.set(runId, waiting);
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        waiting.delete(wake);
        if (waiting.size === 0 && this.waiters.get(runId) === waiting) this.waiters.delete(runId);
        reject(timeout());
      }, timeoutMs);
      waiting.add(wake);
    });
    // Woken by add(): the run is there unless it was deleted in between.
    const run = this.runs.get(runId);
    if (run === undefined) throw timeout();
    return run;
  }
}
