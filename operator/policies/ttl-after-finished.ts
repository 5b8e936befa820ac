// spec.ttlSecondsAfterFinished: a finished job (and, through owner references, its pods, Service
// and ConfigMap) is deleted this long after its completion time.

export interface TtlCheck {
  readonly expired: boolean;
  /** Milliseconds until expiry (to requeue then); null when no TTL applies. */
  readonly remainingMs: number | null;
}

export function checkTtlAfterFinished(
  completionTime: string | undefined,
  ttlSecondsAfterFinished: number | undefined,
  now: Date,
): TtlCheck {
  if (ttlSecondsAfterFinished === undefined || !completionTime) return { expired: false, remainingMs: null };
  const remainingMs = new Date(completionTime).getTime() + ttlSecondsAfterFinished * 1000 - now.getTime();
  return { expired: remainingMs <= 0, remainingMs: Math.max(0, remainingMs) };
}
