// What a failed rank means for the job. The chain's state (every rank's share of the KV-cache, the
// run in flight) lives in all ranks at once, so one failed rank fails the whole group: the group
// is restarted from scratch, up to spec.backoffLimit times, unless the failure is one a restart
// cannot fix (a configuration error: a model path that does not exist, a bad partition table).
import type { RankFailure } from '../observed-pods.ts';

export type FailureDecision =
  | {
      readonly action: 'restart';
      readonly cause: RankFailure;
      readonly nextAttempt: number;
      readonly message: string;
    }
  | {
      readonly action: 'fail';
      readonly cause: RankFailure;
      readonly reason: 'ConfigurationError' | 'BackoffLimitExceeded';
      readonly message: string;
    };

/**
 * The failure that started it: the earliest (others follow when their peer dies); among equal
 * times a rank that crashed before one that reported a lost peer; then the lowest rank.
 */
export function firstFailure(failures: readonly RankFailure[]): RankFailure | undefined {
  return [...failures].sort(
    (a, b) =>
      (a.at || Infinity) - (b.at || Infinity) ||
      Number(b.crashed ?? false) - Number(a.crashed ?? false) ||
      a.rank - b.rank,
  )[0];
}

export function decideOnFailure(
  failures: readonly RankFailure[],
  attempt: number,
  backoffLimit: number,
): FailureDecision | null {
  // A configuration error anywhere decides: restarting would only repeat it.
  const permanent = failures.find((f) => !f.retriable);
  if (permanent)
    return {
      action: 'fail',
      cause: permanent,
      reason: 'ConfigurationError',
      message: `${permanent.message} (not retried: a restart cannot fix a configuration error)`,
    };
  const cause = firstFailure(failures);
  if (!cause) return null;
  if (attempt < backoffLimit)
    return {
      action: 'restart',
      cause,
      nextAttempt: attempt + 1,
      message: `${cause.message}; restarting the rank group (restart ${attempt + 1} of at most ${backoffLimit})`,
    };
  return {
    action: 'fail',
    cause,
    reason: 'BackoffLimitExceeded',
    message: `${cause.message}; the rank group was restarted ${attempt} time(s), spec.backoffLimit is ${backoffLimit}`,
  };
}
