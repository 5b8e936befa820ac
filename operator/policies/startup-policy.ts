// spec.startupTimeoutSeconds, enforced by the operator: every rank must be running that long after
// its group was released to the scheduler (status.groupReleaseTime: every rank pod existed with no
// scheduling gate left). A rank still Pending then — unschedulable, an image that will not pull, a
// volume that will not mount — fails the group with what the scheduler or the kubelet says about it,
// and the failure policy restarts the group (counted against backoffLimit) or fails the job. Rank 0
// waits as long again for the ranks to load the model (worker/chain), which covers Running ranks.
//
// Counted from the release, not from pod creation: time a group waits at a gate (Kueue's admission,
// our own gang gate while pods are still being created) is queueing, not a failure to start.
import { clipMessage } from '../conditions.ts';
import type { ObservedPod, RankFailure } from '../observed-pods.ts';

export interface StartupCheck {
  /** One failure per rank not running in time; empty while there is time left or nothing is pending. */
  readonly failures: readonly RankFailure[];
  /** When to look again (the timeout's end); null when no rank is pending or the clock is not running. */
  readonly remainingMs: number | null;
}

export function checkStartup(
  current: readonly ObservedPod[],
  groupReleaseTime: string | undefined,
  startupTimeoutSeconds: number,
  now: Date,
): StartupCheck {
  const pending = current.filter((p) => p.phase === 'Pending' && !p.deleting);
  if (groupReleaseTime === undefined || pending.length === 0) return { failures: [], remainingMs: null };
  const remainingMs = new Date(groupReleaseTime).getTime() + startupTimeoutSeconds * 1000 - now.getTime();
  if (remainingMs > 0) return { failures: [], remainingMs };
  return {
    failures: pending.map((p) => ({
      rank: p.rank,
      pod: p.name,
      retriable: true,
      // A rank the scheduler or kubelet says something about is the likelier cause than one bound
      // and quiet (failure-policy.ts picks the first failure by this).
      crashed: p.node === undefined || p.waiting !== '',
      at: now.getTime(),
      message: clipMessage(
        `rank ${p.rank} (pod ${p.name}) was not running ${startupTimeoutSeconds} s after its group was released to the scheduler (spec.startupTimeoutSeconds): ${p.waiting || 'Pending'}`,
      ),
    })),
    remainingMs: null,
  };
}
