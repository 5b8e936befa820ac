/** Why `signal` aborted, as an Error (its reason when that is one; AbortSignal's reason is any value). */
export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new Error(String(reason));
}
