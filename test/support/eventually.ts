// Polls until what a test waits for has happened: for asynchronous effects (an event the operator
// writes after its status, a watch event, a lease changing hands) without fixed sleeps. On a busy
// machine such effects come late, not never, so a test that reads them once asserts on a race.
import { inspect } from 'node:util';

/**
 * Resolves with the first truthy value of `check` (a throw counts as "not yet"); after `timeoutMs`,
 * rejects with `what`, and the last error `check` threw as the cause.
 */
export async function eventually<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<NonNullable<T>> {
  return poll(what, check, (v) => v as NonNullable<T> | null, timeoutMs, intervalMs, false);
}

/**
 * Reads with `read` until `assert` (typically `expect` calls) passes on what it returned, and
 * resolves with that value; after `timeoutMs`, rejects with the last value read, and the last
 * assertion error as the cause. For a test that would otherwise read once and assert.
 */
export async function eventuallyExpect<T>(
  what: string,
  read: () => T | Promise<T>,
  assert: (value: T) => void | Promise<void>,
  timeoutMs = 10_000,
  intervalMs = 50,
): Promise<T> {
  const box = await poll(
    what,
    read,
    async (v) => {
      await assert(v);
      return { v };
    },
    timeoutMs,
    intervalMs,
    true,
  );
  return box.v;
}

async function poll<T, R>(
  what: string,
  read: () => T | Promise<T>,
  accept: (value: T) => R | null | Promise<R | null>,
  timeoutMs: number,
  intervalMs: number,
  showSeen: boolean,
): Promise<NonNullable<R>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let seen: { value: T } | undefined;
  for (;;) {
    try {
      const value = await read();
      seen = { value };
      lastError = undefined;
      const accepted = await accept(value);
      if (accepted) return accepted;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      // The last error goes as the cause, which Jest prints with its code frame.
      const lines = [`timed out after ${timeoutMs} ms waiting for ${what}`];
      if (lastError !== undefined && !(lastError instanceof Error))
        lines.push(`thrown: ${describe(lastError)}`);
      if (showSeen && seen) lines.push(`last seen: ${describe(seen.value)}`);
      throw new Error(lines.join('\n'), { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function describe(value: unknown): string {
  const text = inspect(value, { depth: 6, maxArrayLength: 50, maxStringLength: 2000, breakLength: 120 });
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}
