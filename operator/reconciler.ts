// One reconcile of one RunaheadJob: read the world (from the informers' caches), let the pure
// planner decide (job-plan.ts), then apply — status first, then the children, then the Events.
//
// Status goes first because it carries the decisions that must survive a crash between two
// writes: the restart count before the old group is deleted (else a lost write could restart the
// group forever), the terminal phase before the pods are cleaned up. It is written with the
// resourceVersion the plan was made from, so a plan made from a stale cache is refused (409) and
// made again from fresh data instead of overwriting someone else's write.
import { ApiException, type CoreV1Api, type CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import {
  API_VERSION,
  FIELD_MANAGER,
  GROUP,
  KIND,
  LABEL_JOB,
  PLURAL,
  Reason,
  VERSION,
  childNames,
} from '../core/api/v1alpha1/names.ts';
import { parseRunaheadJob, type RunaheadJobStatus } from '../core/api/v1alpha1/runahead-job.ts';
import type { Logger } from '../core/log.ts';
import { jobRef, type OperatorDefaults } from './desired-children.ts';
import {
  groupStarted,
  planInvalidJob,
  planJob,
  planRefusedJob,
  type ChildAction,
  type JobPlan,
  type PlannedEvent,
} from './job-plan.ts';
import { clipMessage as clip } from './conditions.ts';
import { observePod, type ObservedPod } from './observed-pods.ts';
import { jobPolicyProblem } from './policies/job-policies.ts';
import { createPodGroup, isPodGroupUnavailable, podGroupUnavailableHint } from './pod-groups.ts';
import { recordEvent } from './platform/events.ts';
import { deleteSeenPod, goalReached, liftGangGate } from './pod-writes.ts';
import { namespaceProblem } from './policies/namespace-policy.ts';
import type { ClusterCapacity } from './policies/capacity-policy.ts';

/** What the reconciler reads: the informers' caches. */
export interface ClusterView {
  job(namespace: string, name: string): unknown;
  /** Pods labelled with the job's name (ownership is checked here). */
  podsOfJob(namespace: string, job: string): readonly V1Pod[];
  serviceExists(namespace: string, name: string): boolean;
  configMapExists(namespace: string, name: string): boolean;
  /** The namespace's labels; undefined when unknown (in `--namespaces labelled`: not opted in). */
  namespaceLabels(namespace: string): Readonly<Record<string, string>> | undefined;
  /** Nodes' GPUs and what rank pods hold of them; absent without --gang-capacity-check. */
  capacity?(): ClusterCapacity;
}

/** What the reconciler reports, for metrics. */
export interface ReconcileObserver {
  /** A job in a terminal phase, on every reconcile of it (the observer counts each job once). */
  terminal(
    job: { namespace: string; name: string; uid: string },
    status: RunaheadJobStatus,
    spec: { mode: string; ranks: number },
  ): void;
  /** The rank group of a job was restarted. */
  restarted(): void;
  jobGone(namespace: string, name: string): void;
}

export interface ReconcileResult {
  readonly requeueAfterMs: number | null;
}

/** A write lost to a concurrent one (409): the key is reconciled again from fresh data. */
export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

const isCode = (err: unknown, code: number) => err instanceof ApiException && err.code === code;

/** The API server refused an object as invalid (400, 413 too large, 422): retrying cannot help. */
const isRefusal = (err: unknown) => [400, 413, 422].some((code) => isCode(err, code));

type CreateAction = Extract<
  ChildAction,
  { kind: 'createPod' | 'createConfigMap' | 'createService' | 'createPodGroup' }
>;
const isCreate = (a: ChildAction): a is CreateAction =>
  a.kind === 'createPod' ||
  a.kind === 'createConfigMap' ||
  a.kind === 'createService' ||
  a.kind === 'createPodGroup';

/** A PodGroup create that no retry helps (pod-groups.ts): the job fails. */
const isPodGroupRefused = (a: ChildAction, err: unknown) =>
  a.kind === 'createPodGroup' && isPodGroupUnavailable(err);

export interface ReconcilerDeps {
  readonly view: ClusterView;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly defaults: OperatorDefaults;
  readonly log: Logger;
  readonly observer: ReconcileObserver;
  /** The time (tests move it). */
  readonly clock?: () => Date;
}

type RawJob = {
  metadata?: { uid?: string; generation?: number; deletionTimestamp?: unknown; resourceVersion?: string };
  status?: RunaheadJobStatus;
};

export class Reconciler {
  private readonly view: ClusterView;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly defaults: OperatorDefaults;
  private readonly log: Logger;
  private readonly observer: ReconcileObserver;
  private readonly clock: () => Date;
  /** Jobs already told that their namespace is not served (namespace/name → uid): one event each. */
  private readonly toldNotServed = new Map<string, string>();

  constructor(deps: ReconcilerDeps) {
    this.view = deps.view;
    this.core = deps.core;
    this.custom = deps.custom;
    this.defaults = deps.defaults;
    this.log = deps.log;
    this.observer = deps.observer;
    this.clock = deps.clock ?? (() => new Date());
  }

  async reconcile(namespace: string, name: string): Promise<ReconcileResult> {
    const raw = this.view.job(namespace, name) as RawJob | undefined;
    if (!raw) {
      this.toldNotServed.delete(`${namespace}/${name}`);
      this.observer.jobGone(namespace, name);
      return { requeueAfterMs: null };
    }
    // Children go with the job through owner references (garbage collection).
    if (raw.metadata?.deletionTimestamp) return { requeueAfterMs: null };
    const uid = raw.metadata?.uid ?? '';
    const notServed = namespaceProblem(
      namespace,
      this.view.namespaceLabels(namespace),
      this.defaults.namespacePolicy,
    );
    if (notServed) {
      // Left alone (no status, no children): a job another operator — or a later label — may serve.
      await this.tellNotServed(raw, namespace, name, notServed);
      return { requeueAfterMs: null };
    }
    this.toldNotServed.delete(`${namespace}/${name}`);
    const generation = raw.metadata?.generation ?? 0;
    let pods = this.ownedPods(namespace, name, uid);
    const parsed = parseRunaheadJob(raw);
    const now = this.clock();
    if (!parsed.ok) {
      const plan = planInvalidJob(raw.status, generation, parsed.message, pods, now);
      await this.apply(raw, namespace, name, plan);
      return { requeueAfterMs: null };
    }
    const refused = jobPolicyProblem(parsed.job.spec, this.defaults);
    if (refused) {
      const plan = planRefusedJob(raw.status, generation, Reason.PolicyViolation, refused, pods, now);
      await this.apply(raw, namespace, name, plan);
      return { requeueAfterMs: null };
    }
    const job = jobRef(parsed.job);
    const attempt = parsed.job.status?.restarts ?? 0;
    let deletedRanks: number[] = [];
    const present = new Set(pods.filter((p) => p.attempt === attempt).map((p) => p.rank));
    if (groupStarted(pods, attempt) && present.size < job.spec.ranks) {
      // The cache may lag behind our own creates; ask the API server before calling a pod deleted.
      pods = await this.livePods(namespace, name, uid);
      const live = new Set(pods.filter((p) => p.attempt === attempt).map((p) => p.rank));
      deletedRanks = Array.from({ length: job.spec.ranks }, (_, r) => r).filter((r) => !live.has(r));
    }
    const plan = planJob({
      job,
      generation,
      status: parsed.job.status,
      pods,
      serviceExists: this.view.serviceExists(namespace, childNames.service(name)),
      configMapExists: this.view.configMapExists(namespace, childNames.configMap(name)),
      deletedRanks,
      now,
      defaults: this.defaults,
      capacity: this.view.capacity?.() ?? null,
    });
    await this.apply(raw, namespace, name, plan);
    if (plan.status.phase === 'Succeeded' || plan.status.phase === 'Failed')
      this.observer.terminal({ namespace, name, uid }, plan.status, {
        mode: job.spec.mode,
        ranks: job.spec.ranks,
      });
    if ((plan.status.restarts ?? 0) > attempt) this.observer.restarted();
    return { requeueAfterMs: plan.requeueAfterMs };
  }

  private ownedPods(namespace: string, job: string, uid: string): ObservedPod[] {
    return this.view
      .podsOfJob(namespace, job)
      .filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === uid && o.controller === true))
      .map(observePod)
      .filter((p): p is ObservedPod => p !== null);
  }

  private async livePods(namespace: string, job: string, uid: string): Promise<ObservedPod[]> {
    const list = await this.core.listNamespacedPod({ namespace, labelSelector: `${LABEL_JOB}=${job}` });
    return list.items
      .filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === uid && o.controller === true))
      .map(observePod)
      .filter((p): p is ObservedPod => p !== null);
  }

  private async apply(raw: RawJob, namespace: string, name: string, plan: JobPlan): Promise<void> {
    const statusChanged = !isDeepStrictEqual(
      withoutUndefined(raw.status ?? {}),
      withoutUndefined(plan.status),
    );
    const current = statusChanged ? await this.writeStatus(raw, namespace, name, plan.status) : raw;
    for (const action of plan.actions) {
      try {
        await this.applyAction(namespace, name, action);
      } catch (err) {
        if (isCreate(action) && (isRefusal(err) || isPodGroupRefused(action, err))) {
          // Invalid as written (a 422 echoing the field, a ConfigMap over 1 MiB): no retry can
          // help, so the job fails now, once, instead of a new event on every retry.
          await this.refuse(current ?? raw, namespace, name, action, err);
          return;
        }
        // What the Job controller calls FailedCreate: say so on the job (a quota or an admission
        // webhook refused the pod for now); the work queue retries with backoff.
        if (action.kind === 'createPod')
          await this.recordEvent(raw, namespace, name, {
            type: 'Warning',
            reason: Reason.PodCreationFailed,
            message: clip(
              `could not create pod ${action.object.metadata?.name ?? ''}: ${apiErrorMessage(err)}`,
            ),
          });
        throw err;
      }
    }
    // Events only for what was recorded (jobset does the same): a refused status write repeats the plan.
    if (statusChanged) for (const e of plan.events) await this.recordEvent(raw, namespace, name, e);
  }

  /** The job failed as ChildRejected: the API server refused `action`'s object as invalid. */
  private async refuse(
    raw: RawJob,
    namespace: string,
    name: string,
    action: CreateAction,
    err: unknown,
  ): Promise<void> {
    const kind = {
      createPod: 'rank pod',
      createConfigMap: 'ConfigMap',
      createService: 'Service',
      createPodGroup: 'PodGroup',
    }[action.kind];
    const hint =
      action.kind === 'createPodGroup' && isPodGroupUnavailable(err)
        ? podGroupUnavailableHint(action.scheduler, action.object.apiVersion)
        : '';
    const message = `the API server refused ${kind} ${action.object.metadata?.name ?? ''}: ${apiErrorMessage(err)}${hint}`;
    this.log.warn({ namespace, job: name, refused: clip(message) }, 'job failed: a child was refused');
    const uid = raw.metadata?.uid ?? '';
    const plan = planRefusedJob(
      raw.status,
      raw.metadata?.generation ?? 0,
      Reason.ChildRejected,
      message,
      this.ownedPods(namespace, name, uid),
      this.clock(),
    );
    // The next reconcile sees the job Failed and counts it (observer.terminal).
    await this.apply(raw, namespace, name, plan);
  }

  /** Writes the status; returns the job as written (null: it was deleted meanwhile). */
  private async writeStatus(
    raw: RawJob,
    namespace: string,
    name: string,
    status: RunaheadJobStatus,
  ): Promise<RawJob | null> {
    try {
      return (await this.custom.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: PLURAL,
        name,
        body: { ...raw, status },
        fieldManager: FIELD_MANAGER,
      })) as RawJob;
    } catch (err) {
      if (isCode(err, 409))
        throw new ConflictError(`status of ${namespace}/${name} changed meanwhile; reconciling again`);
      if (isCode(err, 404)) return null; // deleted meanwhile
      throw err;
    }
  }

  private async applyAction(namespace: string, job: string, action: ChildAction): Promise<void> {
    try {
      switch (action.kind) {
        case 'createService':
          await this.core.createNamespacedService({
            namespace,
            body: action.object,
            fieldManager: FIELD_MANAGER,
          });
          return;
        case 'createConfigMap':
          await this.core.createNamespacedConfigMap({
            namespace,
            body: action.object,
            fieldManager: FIELD_MANAGER,
          });
          return;
        case 'createPodGroup':
          await createPodGroup(this.custom, namespace, action.scheduler, action.object);
          return;
        case 'createPod':
          await this.core.createNamespacedPod({
            namespace,
            body: action.object,
            fieldManager: FIELD_MANAGER,
          });
          this.log.info({ namespace, job, pod: action.object.metadata?.name }, 'created rank pod');
          return;
        case 'deletePod':
          await deleteSeenPod(this.core, namespace, action.name, action.uid);
          this.log.info({ namespace, job, pod: action.name }, 'deleted rank pod');
          return;
        case 'ungatePod':
          await liftGangGate(this.core, namespace, action.name, action.uid);
          this.log.info({ namespace, job, pod: action.name }, 'lifted the gang gate of rank pod');
          return;
        case 'deleteJob':
          await this.custom.deleteNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace,
            plural: PLURAL,
            name: job,
            propagationPolicy: 'Background',
          });
          this.log.info({ namespace, job }, 'deleted finished job (ttlSecondsAfterFinished)');
          return;
      }
    } catch (err) {
      if (goalReached(action.kind, err)) return;
      throw err;
    }
  }

  /**
   * One Warning event per job: remembered here, and named after the job's uid so that a restarted
   * operator's create is refused as a duplicate (409) instead of adding another.
   */
  private async tellNotServed(raw: RawJob, namespace: string, name: string, message: string): Promise<void> {
    const uid = raw.metadata?.uid ?? '';
    if (this.toldNotServed.get(`${namespace}/${name}`) === uid) return;
    this.log.info({ namespace, job: name }, 'job not served: its namespace has not opted in');
    const recorded = await this.recordEvent(
      raw,
      namespace,
      name,
      { type: 'Warning', reason: Reason.NamespaceNotEnabled, message },
      `${name}.${uid.slice(0, 8)}.not-served`,
    );
    if (recorded) this.toldNotServed.set(`${namespace}/${name}`, uid);
  }

  /** True when recorded (or, with a fixed `eventName`, recorded before). */
  private recordEvent(
    raw: RawJob,
    namespace: string,
    name: string,
    e: PlannedEvent,
    eventName?: string,
  ): Promise<boolean> {
    return recordEvent({ apiVersion: API_VERSION, kind: KIND, namespace, name, uid: raw.metadata?.uid }, e, {
      core: this.core,
      log: this.log,
      logContext: { namespace, job: name },
      now: this.clock(),
      eventName,
    });
  }
}

/** The API server's own message when it has one (ApiException's body is its Status object). */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = typeof err.body === 'string' ? safeJson(err.body) : err.body;
    if (body && typeof body === 'object' && 'message' in body && typeof body.message === 'string')
      return body.message;
    return `HTTP ${err.code}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Status as compared: JSON-equal (undefined fields do not count). */
function withoutUndefined(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x)) as unknown;
}
