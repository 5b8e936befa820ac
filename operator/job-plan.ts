// The heart of the operator, as one pure function: given a job, what was observed of its children
// and the time, decide the job's next status, the child objects to create or delete, the Events to
// record and when to look again. No I/O here (operator/reconciler.ts applies the plan), so every
// transition is a table-driven unit test (job-plan.test.ts).
//
// Level-triggered: the plan depends only on the current state of the world, never on which watch
// event arrived, so a restarted operator (or a missed event) converges to the same decisions.
import type { V1ConfigMap, V1Pod, V1Service } from '@kubernetes/client-node';
import type { Condition, RankStatus, RunaheadJobStatus } from '../core/api/v1alpha1/runahead-job.ts';
import { ConditionType, Reason, type Phase, type ReasonName } from '../core/api/v1alpha1/names.ts';
import type { RunOutcome } from '../core/api/termination-message.ts';
import { clipMessage, findCondition, isTrue, setCondition, timestamp } from './conditions.ts';
import type { PodGroupScheduler } from '../core/api/v1alpha1/placement.ts';
import {
  desiredConfigMap,
  desiredPod,
  desiredPodGroup,
  rankResources,
  type PodGroupObject,
  desiredService,
  plannedBoundaries,
  type JobRef,
  type OperatorDefaults,
} from './desired-children.ts';
import { describeFailure, type ObservedPod, type RankFailure } from './observed-pods.ts';
import { checkActiveDeadline, deadlineMessage } from './policies/active-deadline.ts';
import { checkTtlAfterFinished } from './policies/ttl-after-finished.ts';
import { decideOnFailure, type FailureDecision } from './policies/failure-policy.ts';
import { successMessage, successfulOutcome } from './policies/success-policy.ts';
import { gatedMessage, groupReleased, podsToUngate } from './policies/gang-policy.ts';
import { checkStartup } from './policies/startup-policy.ts';
import { capacityProblem, rankGpus, type ClusterCapacity } from './policies/capacity-policy.ts';

export type ChildAction =
  | { readonly kind: 'createService'; readonly object: V1Service }
  | { readonly kind: 'createConfigMap'; readonly object: V1ConfigMap }
  | {
      readonly kind: 'createPodGroup';
      readonly object: PodGroupObject;
      readonly scheduler: PodGroupScheduler;
    }
  | { readonly kind: 'createPod'; readonly object: V1Pod }
  | { readonly kind: 'deletePod'; readonly name: string; readonly uid: string }
  /** Lift the gang's scheduling gate (policies/gang-policy.ts). */
  | { readonly kind: 'ungatePod'; readonly name: string; readonly uid: string }
  | { readonly kind: 'deleteJob' };

export interface PlannedEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: ReasonName;
  readonly message: string;
}

export interface FinishedJob {
  readonly result: 'succeeded' | 'failed';
  readonly reason: ReasonName;
  readonly outcome: RunOutcome | null;
}

export interface JobPlan {
  readonly status: RunaheadJobStatus;
  readonly actions: readonly ChildAction[];
  readonly events: readonly PlannedEvent[];
  /** Look again after this long even if nothing changes (a deadline, a TTL); null: on change only. */
  readonly requeueAfterMs: number | null;
  /** Set when this plan moves the job to a terminal phase (metrics count it once). */
  readonly finished: FinishedJob | null;
}

export interface PlanInput {
  readonly job: JobRef;
  readonly generation: number;
  readonly status: RunaheadJobStatus | undefined;
  /** The job's rank pods (all attempts). */
  readonly pods: readonly ObservedPod[];
  readonly serviceExists: boolean;
  readonly configMapExists: boolean;
  /**
   * Ranks of the current attempt whose pods are gone although the group had started — confirmed
   * by a live read, not the cache (a cache that lags behind a create must not look like a delete).
   */
  readonly deletedRanks: readonly number[];
  readonly now: Date;
  readonly defaults: OperatorDefaults;
  /** GPUs free per node (--gang-capacity-check); absent: the gang's gate does not wait for room. */
  readonly capacity?: ClusterCapacity | null;
}

/** Pods still holding resources: neither finished nor on their way out. */
const isActive = (p: ObservedPod) => !p.deleting && (p.phase === 'Pending' || p.phase === 'Running');
const hasStarted = (p: ObservedPod) => p.phase !== 'Pending';

function deleteActive(pods: readonly ObservedPod[]): ChildAction[] {
  return pods.filter(isActive).map((p) => ({ kind: 'deletePod', name: p.name, uid: p.uid }) as const);
}

function rankStatuses(
  job: JobRef,
  pods: readonly ObservedPod[],
  attempt: number,
  outcome: RunOutcome | null,
  failures: readonly RankFailure[],
  boundaries: readonly number[] | null,
): RankStatus[] {
  return Array.from({ length: job.spec.ranks }, (_, rank) => {
    const pod = pods.find((p) => p.rank === rank && p.attempt === attempt);
    const timing = outcome?.ranks.find((r) => r.rank === rank);
    const failure = failures.find((f) => f.rank === rank);
    const chunk = timing?.chunk ?? (boundaries ? [boundaries[rank]!, boundaries[rank + 1]!] : undefined);
    return {
      rank,
      pod: pod?.name ?? '',
      ...(pod?.node ? { node: pod.node } : {}),
      phase: pod ? (pod.deleting ? 'Terminating' : pod.phase) : 'Missing',
      ready: pod?.ready ?? false,
      ...(chunk ? { chunk: [...chunk] } : {}),
      ...(timing
        ? {
            computeMs: timing.computeMs,
            waitMs: timing.waitMs,
            sendMs: timing.sendMs,
            criticalSendMs: timing.criticalSendMs,
            bytesSent: timing.bytesSent,
            bytesReceived: timing.bytesReceived,
            peakRssBytes: timing.peakRssBytes,
            startMs: timing.startMs,
            endMs: timing.endMs,
            timeline: timing.timeline,
          }
        : {}),
      ...(failure ? { message: failure.message } : pod?.waiting ? { message: pod.waiting } : {}),
    };
  });
}

/** How often a gang held for room looks again (nodes and other groups change without telling it). */
export const CAPACITY_RECHECK_MS = 5000;

/** How long the other ranks of a succeeded job get to exit on their own before they are deleted. */
export const SUCCESS_GRACE_MS = 30_000;

function minDelay(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

type ConditionTypeValue = (typeof ConditionType)[keyof typeof ConditionType];

/** The plan under construction: the next status, actions and events, and the steps that fill them. */
class PlanBuilder {
  readonly status: RunaheadJobStatus;
  readonly conditions: Condition[];
  readonly actions: ChildAction[] = [];
  readonly events: PlannedEvent[] = [];
  readonly attempt: number;
  /** Pods of the current attempt. */
  readonly current: readonly ObservedPod[];
  readonly planned: number[] | null;
  readonly input: PlanInput;

  constructor(input: PlanInput) {
    this.input = input;
    const old = input.status ?? {};
    this.status = { ...old, observedGeneration: input.generation };
    this.conditions = [...(old.conditions ?? [])];
    this.attempt = old.restarts ?? 0;
    this.current = input.pods.filter((p) => p.attempt === this.attempt);
    this.planned = plannedBoundaries(input.job.spec);
  }

  get spec() {
    return this.input.job.spec;
  }

  /** Sets a condition; true when its status changed. */
  set(type: ConditionTypeValue, s: 'True' | 'False', reason: ReasonName, message: string): boolean {
    return setCondition(this.conditions, type, s, reason, message, this.input.now, this.input.generation);
  }

  event(type: PlannedEvent['type'], reason: ReasonName, message: string): void {
    this.events.push({ type, reason, message });
  }

  deleteActivePods(): void {
    this.actions.push(...deleteActive(this.input.pods));
  }

  ranks(
    outcome: RunOutcome | null,
    failures: readonly RankFailure[],
    boundaries: readonly number[] | null,
  ): void {
    this.status.ranks = rankStatuses(
      this.input.job,
      this.input.pods,
      this.attempt,
      outcome,
      failures,
      boundaries,
    );
  }

  done(phase: Phase, requeueAfterMs: number | null, finished: FinishedJob | null = null): JobPlan {
    this.status.phase = phase;
    this.status.conditions = this.conditions;
    return { status: this.status, actions: this.actions, events: this.events, requeueAfterMs, finished };
  }

  /** A terminal phase: completion time set, the TTL clock started. */
  terminal(phase: 'Succeeded' | 'Failed', finished: FinishedJob): JobPlan {
    this.status.completionTime = timestamp(this.input.now);
    const ttl = checkTtlAfterFinished(
      this.status.completionTime,
      this.spec.ttlSecondsAfterFinished,
      this.input.now,
    );
    const grace = phase === 'Succeeded' && this.input.pods.some(isActive) ? SUCCESS_GRACE_MS : null;
    return this.done(phase, minDelay(ttl.remainingMs, grace), finished);
  }

  fail(reason: ReasonName, message: string, failures: readonly RankFailure[]): JobPlan {
    this.set(ConditionType.Failed, 'True', reason, message);
    this.set(ConditionType.RanksReady, 'False', reason, 'the job failed');
    this.event('Warning', reason, message);
    this.deleteActivePods();
    this.ranks(null, failures, this.planned);
    return this.terminal('Failed', { result: 'failed', reason, outcome: null });
  }
}

/** Finished: nothing more to run; clean up what still runs and honour the TTL. */
function planFinished(b: PlanBuilder): JobPlan {
  const { input } = b;
  // After a success the other ranks exit on their own (rank 0 tells them the run is over); they keep
  // their exit status and logs that way. Only what is still running after a grace period is deleted.
  const graceLeft =
    b.status.phase === 'Succeeded' && b.status.completionTime
      ? new Date(b.status.completionTime).getTime() + SUCCESS_GRACE_MS - input.now.getTime()
      : 0;
  const stillRunning = input.pods.some(isActive);
  if (graceLeft <= 0) b.deleteActivePods();
  const ttl = checkTtlAfterFinished(b.status.completionTime, b.spec.ttlSecondsAfterFinished, input.now);
  if (ttl.expired) b.actions.push({ kind: 'deleteJob' });
  b.status.ranks = (b.status.ranks ?? []).map((r) => {
    const pod = input.pods.find((p) => p.name === r.pod && p.attempt === b.attempt);
    return {
      ...r,
      phase: pod ? (pod.deleting ? 'Terminating' : pod.phase) : r.phase,
      ready: pod?.ready ?? false,
    };
  });
  const graceRequeue = graceLeft > 0 && stillRunning ? graceLeft : null;
  return b.done(b.status.phase ?? 'Failed', ttl.expired ? null : minDelay(ttl.remainingMs, graceRequeue));
}

/** Suspended: no pods; the deadline clock stops (startTime is cleared, as batch/v1 does). */
function planSuspended(b: PlanBuilder): JobPlan {
  b.deleteActivePods();
  if (
    b.set(
      ConditionType.Suspended,
      'True',
      Reason.JobSuspended,
      'spec.suspend is true: the rank pods were deleted',
    )
  )
    b.event('Normal', Reason.JobSuspended, 'job suspended; rank pods deleted');
  b.set(ConditionType.RanksReady, 'False', Reason.JobSuspended, 'the job is suspended');
  delete b.status.startTime;
  delete b.status.groupReleaseTime;
  b.ranks(null, [], b.planned);
  return b.done('Suspended', null);
}

/** Pods of an earlier attempt go first, so two groups never hold the same stable hostnames. */
function planWaitForOldGroup(b: PlanBuilder, stale: readonly ObservedPod[]): JobPlan {
  b.actions.push(
    ...stale
      .filter((p) => !p.deleting)
      .map((p) => ({ kind: 'deletePod', name: p.name, uid: p.uid }) as const),
  );
  b.set(
    ConditionType.RanksReady,
    'False',
    Reason.GroupRestarting,
    `waiting for ${stale.length} pod(s) of the previous attempt to go`,
  );
  b.ranks(null, [], b.planned);
  return b.done('Pending', 1000);
}

function planSucceeded(b: PlanBuilder, outcome: RunOutcome): JobPlan {
  const message = successMessage(outcome);
  b.set(ConditionType.Complete, 'True', Reason.FirstTokenProduced, message);
  b.set(ConditionType.RanksReady, 'False', Reason.FirstTokenProduced, 'the run is over');
  b.event('Normal', Reason.FirstTokenProduced, message);
  b.ranks(outcome, [], outcome.boundaries);
  Object.assign(b.status, {
    ttftMs: outcome.ttftMs,
    contextLength: outcome.contextLength,
    boundaries: [...outcome.boundaries],
    partition: outcome.partition,
    firstToken: outcome.firstToken,
    firstTokenText: outcome.firstTokenText,
    tokens: [...outcome.tokens],
    text: outcome.text,
  });
  return b.terminal('Succeeded', { result: 'succeeded', reason: Reason.FirstTokenProduced, outcome });
}

/** A failed pod, one being deleted, one gone after the group started, or rank 0 ending without a result. */
function collectFailures(
  current: readonly ObservedPod[],
  deletedRanks: readonly number[],
  now: Date,
): RankFailure[] {
  const failures: RankFailure[] = [];
  for (const p of current) {
    if (p.phase === 'Failed') failures.push(describeFailure(p));
    else if (p.phase === 'Succeeded' && p.rank === 0)
      failures.push({
        rank: 0,
        pod: p.name,
        retriable: true,
        message: `rank 0 (pod ${p.name}) exited without a result`,
        at: p.terminated?.finishedAt ?? 0,
      });
    else if (p.deleting && p.phase !== 'Succeeded')
      failures.push({
        rank: p.rank,
        pod: p.name,
        retriable: true,
        message: `rank ${p.rank} (pod ${p.name}) was deleted`,
        at: now.getTime(),
      });
  }
  for (const rank of deletedRanks)
    if (!current.some((p) => p.rank === rank))
      failures.push({
        rank,
        pod: '',
        retriable: true,
        message: `the pod of rank ${rank} was deleted`,
        at: now.getTime(),
      });
  return failures;
}

/** One failed rank fails the group: all its pods go, and a fresh group follows (next attempt). */
function planRestart(
  b: PlanBuilder,
  decision: Extract<FailureDecision, { action: 'restart' }>,
  failures: readonly RankFailure[],
): JobPlan {
  b.actions.push(
    ...b.current
      .filter((p) => !p.deleting)
      .map((p) => ({ kind: 'deletePod', name: p.name, uid: p.uid }) as const),
  );
  b.status.restarts = decision.nextAttempt;
  b.status.startTime = timestamp(b.input.now);
  delete b.status.groupReleaseTime;
  b.set(ConditionType.RanksReady, 'False', Reason.GroupRestarting, decision.message);
  b.event('Warning', Reason.RankFailed, decision.cause.message);
  b.event('Warning', Reason.GroupRestarting, decision.message);
  b.ranks(null, failures, b.planned);
  return b.done('Pending', 1000);
}

/** The group as it should be: create what is missing, in rank order, and report readiness. */
function planGroup(b: PlanBuilder, deadlineMs: number | null): JobPlan {
  let requeueAfterMs = deadlineMs;
  const ranks = b.spec.ranks;
  const missing = Array.from({ length: ranks }, (_, r) => r).filter(
    (r) => !b.current.some((p) => p.rank === r),
  );
  // Not observed (no informer on a CRD that may not exist): created while the group is incomplete,
  // an existing one (409) is the goal reached.
  const podGroup = missing.length > 0 ? desiredPodGroup(b.input.job, b.attempt) : null;
  const scheduler = b.spec.placement?.podGroup?.scheduler;
  if (podGroup && scheduler) b.actions.push({ kind: 'createPodGroup', object: podGroup, scheduler });
  for (const rank of missing)
    b.actions.push({ kind: 'createPod', object: desiredPod(b.input.job, rank, b.attempt, b.input.defaults) });
  if (missing.length === ranks)
    b.event(
      'Normal',
      Reason.PodsCreated,
      `creating ${ranks} rank pod(s)${b.attempt > 0 ? ` (restart ${b.attempt})` : ''}`,
    );
  const ungate = podsToUngate(b.current, ranks);
  const { capacity } = b.input;
  const noRoom =
    ungate.length > 0 && capacity
      ? capacityProblem(b.input.job, rankGpus(rankResources(b.spec)), capacity)
      : null;
  if (noRoom) requeueAfterMs = minDelay(requeueAfterMs, CAPACITY_RECHECK_MS);
  else for (const p of ungate) b.actions.push({ kind: 'ungatePod', name: p.name, uid: p.uid });
  // The startup clock runs from here (policies/startup-policy.ts); set once per group.
  if (groupReleased(b.current, ranks) && b.status.groupReleaseTime === undefined) {
    b.status.groupReleaseTime = timestamp(b.input.now);
    b.event(
      'Normal',
      Reason.GroupReleased,
      `all ${ranks} rank pod(s) exist with no scheduling gate; each must be running within spec.startupTimeoutSeconds (${b.spec.startupTimeoutSeconds} s)`,
    );
  }
  const ready = b.current.filter((p) => p.ready && !p.deleting).length;
  if (ready === ranks && missing.length === 0) {
    if (
      b.set(
        ConditionType.RanksReady,
        'True',
        Reason.AllRanksReady,
        `all ${ranks} rank(s) loaded the model and serve`,
      )
    )
      b.event('Normal', Reason.AllRanksReady, `all ${ranks} rank(s) are ready; the chain starts`);
  } else {
    const gated = noRoom
      ? `the group is held at scheduling gate runahead.dev/gang until it fits: ${noRoom}`
      : gatedMessage(b.current, ranks);
    const stuck = b.current.find((p) => p.waiting);
    const why = gated
      ? `; ${gated}`
      : stuck
        ? `; rank ${stuck.rank} (pod ${stuck.name}) is waiting: ${stuck.waiting}`
        : '';
    b.set(
      ConditionType.RanksReady,
      'False',
      Reason.WaitingForRanks,
      `${ready} of ${ranks} rank(s) ready${why}`,
    );
  }
  const running = missing.length === 0 && b.current.every((p) => p.phase === 'Running' && !p.deleting);
  b.ranks(null, [], b.planned);
  return b.done(running ? 'Running' : 'Pending', requeueAfterMs);
}

export function planJob(input: PlanInput): JobPlan {
  const b = new PlanBuilder(input);
  const { now } = input;
  const spec = input.job.spec;
  if (isTrue(b.conditions, ConditionType.Complete) || isTrue(b.conditions, ConditionType.Failed))
    return planFinished(b);
  if (spec.suspend) return planSuspended(b);
  if (isTrue(b.conditions, ConditionType.Suspended)) {
    b.set(ConditionType.Suspended, 'False', Reason.JobResumed, 'spec.suspend is false: the job resumed');
    b.event('Normal', Reason.JobResumed, 'job resumed; creating rank pods');
  }

  if (!input.serviceExists) b.actions.push({ kind: 'createService', object: desiredService(input.job) });
  if (!input.configMapExists)
    b.actions.push({ kind: 'createConfigMap', object: desiredConfigMap(input.job, input.defaults) });
  b.status.startTime ??= timestamp(now);
  if (b.planned && !b.status.boundaries) b.status.boundaries = b.planned;
  b.status.partition ??= spec.partition.strategy;
  b.status.restarts = b.attempt;

  const deadline = checkActiveDeadline(b.status.startTime, spec.activeDeadlineSeconds, now);
  if (deadline.exceeded)
    return b.fail(Reason.DeadlineExceeded, deadlineMessage(spec.activeDeadlineSeconds ?? 0), []);

  const stale = input.pods.filter((p) => p.attempt !== b.attempt);
  if (stale.length > 0) return planWaitForOldGroup(b, stale);

  const outcome = successfulOutcome(b.current.find((p) => p.rank === 0));
  if (outcome) return planSucceeded(b, outcome);

  const startup = checkStartup(b.current, b.status.groupReleaseTime, spec.startupTimeoutSeconds, now);
  const failures = [...collectFailures(b.current, input.deletedRanks, now), ...startup.failures];
  const decision = decideOnFailure(failures, b.attempt, spec.backoffLimit);
  if (decision?.action === 'fail') return b.fail(decision.reason, decision.message, failures);
  if (decision?.action === 'restart') return planRestart(b, decision, failures);

  return planGroup(b, minDelay(deadline.remainingMs, startup.remainingMs));
}

/** A job whose spec the operator refuses (it got past the API server's checks somehow). */
export function planInvalidJob(
  status: RunaheadJobStatus | undefined,
  generation: number,
  message: string,
  pods: readonly ObservedPod[],
  now: Date,
): JobPlan {
  return planRefusedJob(status, generation, Reason.InvalidSpec, `invalid spec: ${message}`, pods, now);
}

/**
 * A job that can never run as written: its spec is refused (InvalidSpec), or the API server refused
 * one of its children as invalid (ChildRejected). Failed at once, with one event; its pods go.
 */
export function planRefusedJob(
  status: RunaheadJobStatus | undefined,
  generation: number,
  reason: typeof Reason.InvalidSpec | typeof Reason.ChildRejected | typeof Reason.PolicyViolation,
  message: string,
  pods: readonly ObservedPod[],
  now: Date,
): JobPlan {
  const conditions = [...(status?.conditions ?? [])];
  const already = findCondition(conditions, ConditionType.Failed)?.status === 'True';
  const text = clipMessage(message);
  const transitioned = setCondition(conditions, ConditionType.Failed, 'True', reason, text, now, generation);
  return {
    status: {
      ...status,
      observedGeneration: generation,
      phase: 'Failed',
      conditions,
      completionTime: status?.completionTime ?? timestamp(now),
    },
    actions: deleteActive(pods),
    events: transitioned ? [{ type: 'Warning', reason, message: text }] : [],
    requeueAfterMs: null,
    finished: already ? null : { result: 'failed', reason, outcome: null },
  };
}

/** Whether the group of the current attempt has started: a missing pod then means it was deleted. */
export function groupStarted(pods: readonly ObservedPod[], attempt: number): boolean {
  return pods.some((p) => p.attempt === attempt && hasStarted(p));
}
