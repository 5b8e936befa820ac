// The decisions of leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection
// makes them, without I/O (leader-election.ts does the reads and writes).
//
// Expiry is judged on the candidate's own monotonic clock, never by comparing the lease's renewTime
// with local wall time: clocks of two nodes can disagree by more than a lease duration. A candidate
// remembers when it last saw the record change; the lease is expired once leaseDurationSeconds have
// passed on its own clock without a change. The holder steps down after renewDeadline < leaseDuration
// without a successful renewal, so it stops acting before anyone else may start.
import { V1MicroTime, type V1LeaseSpec } from '@kubernetes/client-node';

/** The fields of a Lease's spec that leader election reads and writes. */
export interface LeaseRecord {
  /** '' when nobody holds the lease (never acquired, or released). */
  readonly holderIdentity: string;
  readonly leaseDurationSeconds: number;
  readonly leaseTransitions: number;
  /** As the API server returned them (RFC 3339 with microseconds); compared, never parsed. */
  readonly acquireTime: string;
  readonly renewTime: string;
}

/** What a candidate knows about the lease: the record it saw last and when (its monotonic clock, ms). */
export interface Observation {
  readonly record: LeaseRecord;
  readonly observedAtMs: number;
}

export function recordOf(spec: V1LeaseSpec | undefined): LeaseRecord {
  return {
    holderIdentity: spec?.holderIdentity ?? '',
    leaseDurationSeconds: spec?.leaseDurationSeconds ?? 0,
    leaseTransitions: spec?.leaseTransitions ?? 0,
    acquireTime: timeString(spec?.acquireTime),
    renewTime: timeString(spec?.renewTime),
  };
}

/** client-node types MicroTime as a Date but hands over the string it read: accept both. */
function timeString(t: Date | string | undefined): string {
  if (t === undefined) return '';
  return typeof t === 'string' ? t : t.toISOString();
}

export function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return (
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.leaseTransitions === b.leaseTransitions &&
    a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime
  );
}

/**
 * The observation after reading `record` at `nowMs`: the clock restarts only when the record changed
 * (a holder that keeps renewing changes renewTime every time; a dead one changes nothing).
 */
export function observe(previous: Observation | null, record: LeaseRecord, nowMs: number): Observation {
  if (previous && sameRecord(previous.record, record)) return previous;
  return { record, observedAtMs: nowMs };
}

/** Whether the holder seen in `obs` may still be acting, judged on this candidate's clock. */
export function leaseValid(obs: Observation, nowMs: number): boolean {
  return obs.observedAtMs + obs.record.leaseDurationSeconds * 1000 > nowMs;
}

/** Whether `identity` may write itself into the lease now: unheld, expired, or already its own. */
export function mayAcquire(obs: Observation, identity: string, nowMs: number): boolean {
  const holder = obs.record.holderIdentity;
  return holder === '' || holder === identity || !leaseValid(obs, nowMs);
}

/**
 * The spec `identity` writes to acquire or renew: a renewal keeps acquireTime and the transition
 * count; taking the lease from someone else (or from nobody) counts one more transition.
 */
export function acquiredSpec(
  previous: LeaseRecord | null,
  identity: string,
  leaseDurationSeconds: number,
  now: Date,
): V1LeaseSpec {
  const renewing = previous !== null && previous.holderIdentity === identity;
  const time = new V1MicroTime(now.getTime());
  return {
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTime: renewing && previous.acquireTime !== '' ? new V1MicroTime(previous.acquireTime) : time,
    renewTime: time,
    leaseTransitions:
      previous === null ? 0 : renewing ? previous.leaseTransitions : previous.leaseTransitions + 1,
  };
}

/**
 * The spec a leader writes when it steps down gracefully: no holder and a 1 s duration, so another
 * candidate takes over at its next try instead of waiting for the lease to expire (client-go's
 * ReleaseOnCancel).
 */
export function releasedSpec(previous: LeaseRecord, now: Date): V1LeaseSpec {
  const time = new V1MicroTime(now.getTime());
  return {
    holderIdentity: '',
    leaseDurationSeconds: 1,
    acquireTime: time,
    renewTime: time,
    leaseTransitions: previous.leaseTransitions,
  };
}
