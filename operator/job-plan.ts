// The heart of the operator, as one pure function: given a job, what was observed of its children
// and the time, decide the job's next status, the child objects to create or delete, the Events to
// record and when to look again. No I/O here (operator/reconciler.ts applies the plan), so every
// transition is a table-driven unit test (job-plan.test.ts).
//
// Level-triggered: the plan depends only on the current state of the world, never on which watch
// event arrived, so a restarted operator (or a missed event) converges to the same decisions.
import type { V1ConfigMap, V1Pod, V1Service } from '@kubernetes/client-node';
import type { RankStatus, RunaheadJobStatus } from '../core/api/v1alpha1/runahead-job.ts';
import { ConditionType, Reason, type Phase, type ReasonName } from '../core/api/v1alpha1/names.ts';
import type { RunOutcome } from '../core/api/termination-message.ts';
import { findCondition, isTrue, setCondition, timestamp } from './conditions.ts';
import {
  desiredConfigMap,
  desiredPod,
  desiredService,
  plannedBoundaries,
  type JobRef,
  type OperatorDefaults,
} from './desired-children.ts';
import { describeFailure, type ObservedPod, type RankFailure } from './observed-pods.ts';
import { checkActiveDeadline, deadlineMessage } from './policies/active-deadline.ts';
import { checkTtlAfterFinished } from './policies/ttl-after-finished.ts';
import { decideOnFailure } from './policies/failure-policy.ts';
import { successMessage, successfulOutcome } from './policies/success-policy.ts';

export type ChildAction =
  | { readonly kind: 'createService'; readonly object: V1Service }
  | { readonly kind: 'createConfigMap'; readonly object: V1ConfigMap }
  | { readonly kind: 'createPod'; readonly object: V1Pod }
  | { readonly kind: 'deletePod'; readonly name: string; readonly uid: string }
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
            bytesSent: timing.bytesSent,
            bytesReceived: timing.bytesReceived,
            peakRssBytes: timing.peakRssBytes,
            startMs: timing.startMs,
            endMs: timing.endMs,
            timeline: timing.timeline,
          }
        : {}),
      ...(failure ? { message: failure.message } : {}),
    };
  });
}

export function planJob(input: PlanInput): JobPlan {
  const { job, now } = input;
  const spec = job.spec;
  const old = input.status ?? {};
  const conditions = [...(old.conditions ?? [])];
  const status: RunaheadJobStatus = { ...old, observedGeneration: input.generation };
  const actions: ChildAction[] = [];
  const events: PlannedEvent[] = [];
  const attempt = old.restarts ?? 0;
  const gen = input.generation;
  const current = input.pods.filter((p) => p.attempt === attempt);
  const set = (
    type: (typeof ConditionType)[keyof typeof ConditionType],
    s: 'True' | 'False',
    reason: ReasonName,
    message: string,
  ) => setCondition(conditions, type, s, reason, message, now, gen);
  const finish = (phase: Phase, conds: Partial<RunaheadJobStatus>): void => {
    Object.assign(status, conds);
    status.phase = phase;
    status.conditions = conditions;
  };
  const planned = plannedBoundaries(spec);

  // ---- finished: nothing more to run; clean up and honour the TTL.
  if (isTrue(conditions, ConditionType.Complete) || isTrue(conditions, ConditionType.Failed)) {
    actions.push(...deleteActive(input.pods));
    const ttl = checkTtlAfterFinished(old.completionTime, spec.ttlSecondsAfterFinished, now);
    if (ttl.expired) actions.push({ kind: 'deleteJob' });
    status.ranks = (old.ranks ?? []).map((r) => {
      const pod = input.pods.find((p) => p.name === r.pod && p.attempt === attempt);
      return {
        ...r,
        phase: pod ? (pod.deleting ? 'Terminating' : pod.phase) : r.phase,
        ready: pod?.ready ?? false,
      };
    });
    status.conditions = conditions;
    return { status, actions, events, requeueAfterMs: ttl.expired ? null : ttl.remainingMs, finished: null };
  }

  const failJob = (reason: ReasonName, message: string, failures: readonly RankFailure[]): JobPlan => {
    set(ConditionType.Failed, 'True', reason, message);
    set(ConditionType.RanksReady, 'False', reason, 'the job failed');
    events.push({ type: 'Warning', reason, message });
    actions.push(...deleteActive(input.pods));
    status.ranks = rankStatuses(job, input.pods, attempt, null, failures, planned);
    finish('Failed', { completionTime: timestamp(now) });
    const ttl = checkTtlAfterFinished(status.completionTime, spec.ttlSecondsAfterFinished, now);
    return {
      status,
      actions,
      events,
      requeueAfterMs: ttl.remainingMs,
      finished: { result: 'failed', reason, outcome: null },
    };
  };

  // ---- suspended: no pods; the deadline clock stops (startTime is cleared, as batch/v1 does).
  if (spec.suspend) {
    actions.push(...deleteActive(input.pods));
    if (
      set(
        ConditionType.Suspended,
        'True',
        Reason.JobSuspended,
        'spec.suspend is true: the rank pods were deleted',
      )
    )
      events.push({
        type: 'Normal',
        reason: Reason.JobSuspended,
        message: 'job suspended; rank pods deleted',
      });
    set(ConditionType.RanksReady, 'False', Reason.JobSuspended, 'the job is suspended');
    delete status.startTime;
    status.ranks = rankStatuses(job, input.pods, attempt, null, [], planned);
    finish('Suspended', {});
    return { status, actions, events, requeueAfterMs: null, finished: null };
  }
  if (isTrue(conditions, ConditionType.Suspended)) {
    set(ConditionType.Suspended, 'False', Reason.JobResumed, 'spec.suspend is false: the job resumed');
    events.push({ type: 'Normal', reason: Reason.JobResumed, message: 'job resumed; creating rank pods' });
  }

  // ---- shared children.
  if (!input.serviceExists) actions.push({ kind: 'createService', object: desiredService(job) });
  if (!input.configMapExists)
    actions.push({ kind: 'createConfigMap', object: desiredConfigMap(job, input.defaults) });
  status.startTime ??= timestamp(now);
  if (planned && !status.boundaries) status.boundaries = planned;
  status.partition ??= spec.partition.strategy;
  status.restarts = attempt;

  // ---- deadline.
  const deadline = checkActiveDeadline(status.startTime, spec.activeDeadlineSeconds, now);
  if (deadline.exceeded)
    return failJob(Reason.DeadlineExceeded, deadlineMessage(spec.activeDeadlineSeconds ?? 0), []);

  // ---- pods of an earlier attempt go first; the new group waits until they are gone, so two
  // groups never hold the same stable hostnames.
  const stale = input.pods.filter((p) => p.attempt !== attempt);
  if (stale.length > 0) {
    actions.push(
      ...stale
        .filter((p) => !p.deleting)
        .map((p) => ({ kind: 'deletePod', name: p.name, uid: p.uid }) as const),
    );
    set(
      ConditionType.RanksReady,
      'False',
      Reason.GroupRestarting,
      `waiting for ${stale.length} pod(s) of the previous attempt to go`,
    );
    status.ranks = rankStatuses(job, input.pods, attempt, null, [], planned);
    finish('Pending', {});
    return { status, actions, events, requeueAfterMs: 1000, finished: null };
  }

  // ---- success: rank 0 ended with the result.
  const outcome = successfulOutcome(current.find((p) => p.rank === 0));
  if (outcome) {
    const message = successMessage(outcome);
    set(ConditionType.Complete, 'True', Reason.FirstTokenProduced, message);
    set(ConditionType.RanksReady, 'False', Reason.FirstTokenProduced, 'the run is over');
    events.push({ type: 'Normal', reason: Reason.FirstTokenProduced, message });
    actions.push(...deleteActive(input.pods));
    status.ranks = rankStatuses(job, input.pods, attempt, outcome, [], outcome.boundaries);
    finish('Succeeded', {
      completionTime: timestamp(now),
      ttftMs: outcome.ttftMs,
      contextLength: outcome.contextLength,
      boundaries: [...outcome.boundaries],
      partition: outcome.partition,
      firstToken: outcome.firstToken,
      firstTokenText: outcome.firstTokenText,
      tokens: [...outcome.tokens],
      text: outcome.text,
    });
    const ttl = checkTtlAfterFinished(status.completionTime, spec.ttlSecondsAfterFinished, now);
    return {
      status,
      actions,
      events,
      requeueAfterMs: ttl.remainingMs,
      finished: { result: 'succeeded', reason: Reason.FirstTokenProduced, outcome },
    };
  }

  // ---- failures: a failed pod, one being deleted, one gone after the group started, or a rank 0
  // that ended without a result.
  const failures: RankFailure[] = current
    .filter((p) => p.phase === 'Failed' || (p.phase === 'Succeeded' && p.rank === 0))
    .map((p) =>
      p.phase === 'Failed'
        ? describeFailure(p)
        : {
            rank: 0,
            pod: p.name,
            retriable: true,
            message: `rank 0 (pod ${p.name}) exited without a result`,
            at: p.terminated?.finishedAt ?? 0,
          },
    );
  for (const p of current.filter((q) => q.deleting && q.phase !== 'Failed' && q.phase !== 'Succeeded'))
    failures.push({
      rank: p.rank,
      pod: p.name,
      retriable: true,
      message: `rank ${p.rank} (pod ${p.name}) was deleted`,
      at: now.getTime(),
    });
  for (const rank of input.deletedRanks)
    if (!current.some((p) => p.rank === rank))
      failures.push({
        rank,
        pod: '',
        retriable: true,
        message: `the pod of rank ${rank} was deleted`,
        at: now.getTime(),
      });
  if (failures.length > 0) {
    const decision = decideOnFailure(failures, attempt, spec.backoffLimit);
    if (decision?.action === 'fail') return failJob(decision.reason, decision.message, failures);
    if (decision?.action === 'restart') {
      actions.push(
        ...current
          .filter((p) => !p.deleting)
          .map((p) => ({ kind: 'deletePod', name: p.name, uid: p.uid }) as const),
      );
      status.restarts = decision.nextAttempt;
      status.startTime = timestamp(now);
      set(ConditionType.RanksReady, 'False', Reason.GroupRestarting, decision.message);
      events.push({ type: 'Warning', reason: Reason.RankFailed, message: decision.cause.message });
      events.push({ type: 'Warning', reason: Reason.GroupRestarting, message: decision.message });
      status.ranks = rankStatuses(job, input.pods, attempt, null, failures, planned);
      finish('Pending', {});
      return { status, actions, events, requeueAfterMs: 1000, finished: null };
    }
  }

  // ---- create what is missing, in rank order.
  const missing = Array.from({ length: spec.ranks }, (_, r) => r).filter(
    (r) => !current.some((p) => p.rank === r),
  );
  for (const rank of missing)
    actions.push({ kind: 'createPod', object: desiredPod(job, rank, attempt, input.defaults) });
  if (missing.length === spec.ranks)
    events.push({
      type: 'Normal',
      reason: Reason.PodsCreated,
      message: `creating ${spec.ranks} rank pod(s)${attempt > 0 ? ` (restart ${attempt})` : ''}`,
    });

  const ready = current.filter((p) => p.ready && !p.deleting).length;
  if (ready === spec.ranks && missing.length === 0) {
    if (
      set(
        ConditionType.RanksReady,
        'True',
        Reason.AllRanksReady,
        `all ${spec.ranks} rank(s) loaded the model and serve`,
      )
    )
      events.push({
        type: 'Normal',
        reason: Reason.AllRanksReady,
        message: `all ${spec.ranks} rank(s) are ready; the chain starts`,
      });
  } else {
    set(ConditionType.RanksReady, 'False', Reason.WaitingForRanks, `${ready} of ${spec.ranks} rank(s) ready`);
  }
  const running = missing.length === 0 && current.every((p) => p.phase === 'Running' && !p.deleting);
  status.ranks = rankStatuses(job, input.pods, attempt, null, [], planned);
  finish(running ? 'Running' : 'Pending', {});
  return { status, actions, events, requeueAfterMs: deadline.remainingMs, finished: null };
}

/** A job whose spec the operator refuses (it got past the API server's checks somehow). */
export function planInvalidJob(
  status: RunaheadJobStatus | undefined,
  generation: number,
  message: string,
  pods: readonly ObservedPod[],
  now: Date,
): JobPlan {
  const conditions = [...(status?.conditions ?? [])];
  const already = findCondition(conditions, ConditionType.Failed)?.status === 'True';
  const text = `invalid spec: ${message}`;
  const transitioned = setCondition(
    conditions,
    ConditionType.Failed,
    'True',
    Reason.InvalidSpec,
    text,
    now,
    generation,
  );
  return {
    status: {
      ...status,
      observedGeneration: generation,
      phase: 'Failed',
      conditions,
      completionTime: status?.completionTime ?? timestamp(now),
    },
    actions: deleteActive(pods),
    events: transitioned ? [{ type: 'Warning', reason: Reason.InvalidSpec, message: text }] : [],
    requeueAfterMs: null,
    finished: already ? null : { result: 'failed', reason: Reason.InvalidSpec, outcome: null },
  };
}

/** Whether the group of the current attempt has started: a missing pod then means it was deleted. */
export function groupStarted(pods: readonly ObservedPod[], attempt: number): boolean {
  return pods.some((p) => p.attempt === attempt && hasStarted(p));
}
