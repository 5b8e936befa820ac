// The RunaheadServer's reconcile decisions as a pure function of the server and its observed pods:
// which pods to create or delete, which gang gates to lift, and the status. Every group is kept
// whole — a rank pod (or the front) that failed or went away once the group had started restarts the
// whole group, since the chain's state lives in all its ranks (as a job's group restarts); a spec
// change rolls the groups to the new revision at most `maxUnavailable` unready groups at a time.
//
// With placement.podGroup each group has the gang scheduler's PodGroup of its attempt, created just
// before its rank pods. Unlike a job's (a new one per attempt, all left to the garbage collector with
// the job), a server's lives as long as its group's pods: a server runs for months and restarts
// without bound, and a roll keeps the attempt — so the same name — while the new revision may change
// minMember (ranks) or the timeout. Every pod deletion of a group deletes the PodGroups its pods name
// first, and the next pods get a fresh one.
import type { V1Pod, V1PodStatus, V1Service } from '@kubernetes/client-node';
import type { PodGroupScheduler } from '../core/api/v1alpha1/placement.ts';
import { GANG_SCHEDULING_GATE, ConditionType, Reason } from '../core/api/v1alpha1/names.ts';
import type { Condition } from '../core/api/v1alpha1/runahead-job.ts';
import type { GroupStatus, RunaheadServerStatus } from '../core/api/v1alpha1/runahead-server.ts';
import {
  LABEL_SERVER_GROUP,
  LABEL_SERVER_RANKS,
  LABEL_SERVER_REVISION,
  LABEL_SERVER_ROLE,
  SERVER_ROLES,
  serverChildNames,
  type ServerRole,
} from '../core/api/v1alpha1/server-names.ts';
import { LABEL_RANK } from '../core/api/v1alpha1/names.ts';
import { clipMessage, setCondition } from './conditions.ts';
import type { OperatorDefaults, PodGroupObject } from './desired-children.ts';
import type { PlannedEvent } from './job-plan.ts';
import { jobPolicyProblem } from './policies/job-policies.ts';
import { podGroupOf, type PodGroupRef } from './rank-placement.ts';
import {
  desiredClientService,
  desiredGroupPods,
  desiredGroupService,
  desiredServerPodGroup,
  groupJob,
  serverRevision,
  type ServerRef,
} from './server-children.ts';

/** One pod of a server as the planner sees it. */
export interface ServerPod {
  readonly name: string;
  readonly uid: string;
  readonly group: number;
  readonly role: ServerRole;
  /** The rank, for a rank pod. */
  readonly rank: number | null;
  readonly revision: string;
  /** The ranks of that revision (null: a pod made before the label existed). */
  readonly ranks: number | null;
  readonly phase: string;
  readonly ready: boolean;
  readonly deleting: boolean;
  readonly schedulingGates: readonly string[];
  /** Its IP, once it has one (a front's /metrics is read there). */
  readonly ip: string | undefined;
  /** Why it is not running, when the kubelet or scheduler says ('' otherwise). */
  readonly message: string;
  /** The gang scheduler's PodGroup it was created in (placement.podGroup), null: none. */
  readonly podGroup: PodGroupRef | null;
}

const intLabel = (pod: V1Pod, label: string): number | null => {
  const v = pod.metadata?.labels?.[label];
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : null;
};

/** What the kubelet says of a pod that is not running well: how it ended, or why it waits. */
function podMessage(status: V1PodStatus | undefined): string {
  const containers = status?.containerStatuses ?? [];
  const terminated = containers.find((c) => c.state?.terminated)?.state?.terminated;
  if (terminated)
    return clipMessage(`exited ${terminated.exitCode}${terminated.message ? `: ${terminated.message}` : ''}`);
  const waiting = containers.find((c) => c.state?.waiting?.message)?.state?.waiting;
  if (waiting) return clipMessage(`${waiting.reason ?? ''}: ${waiting.message ?? ''}`);
  return clipMessage(status?.message ?? '');
}

/** null for a pod that is not one of a server's (no group or role label). */
export function observeServerPod(pod: V1Pod): ServerPod | null {
  const labels = pod.metadata?.labels ?? {};
  const group = intLabel(pod, LABEL_SERVER_GROUP);
  const role = SERVER_ROLES.find((r) => r === labels[LABEL_SERVER_ROLE]);
  if (group === null || !role) return null;
  const status = pod.status;
  return {
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    group,
    role,
    rank: role === 'rank' ? intLabel(pod, LABEL_RANK) : null,
    revision: labels[LABEL_SERVER_REVISION] ?? '',
    ranks: intLabel(pod, LABEL_SERVER_RANKS),
    phase: status?.phase ?? 'Pending',
    ready: status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    deleting: pod.metadata?.deletionTimestamp !== undefined,
    schedulingGates: (pod.spec?.schedulingGates ?? []).map((g) => g.name),
    ip: status?.podIP,
    message: podMessage(status),
    podGroup: podGroupOf(labels, pod.metadata?.annotations),
  };
}

export type ServerAction =
  | { readonly kind: 'createService'; readonly object: V1Service }
  | {
      readonly kind: 'createPodGroup';
      readonly object: PodGroupObject;
      readonly scheduler: PodGroupScheduler;
    }
  | { readonly kind: 'deletePodGroup'; readonly name: string; readonly scheduler: PodGroupScheduler }
  | { readonly kind: 'createPod'; readonly object: V1Pod }
  | { readonly kind: 'deletePod'; readonly name: string; readonly uid: string }
  | { readonly kind: 'ungatePod'; readonly name: string; readonly uid: string };

export interface ServerPlanInput {
  readonly server: ServerRef;
  readonly generation: number;
  readonly status: RunaheadServerStatus | undefined;
  readonly pods: readonly ServerPod[];
  /** Names of the server's Services that exist. */
  readonly services: ReadonlySet<string>;
  /** TTFT percentiles scraped from the fronts; null: none this time (the last ones are kept). */
  readonly ttftMs: RunaheadServerStatus['ttftMs'] | null;
  readonly now: Date;
  readonly defaults: OperatorDefaults;
}

/** Why a group was restarted: the reason of its Warning event. */
export type GroupRestartReason = typeof Reason.RankFailed | typeof Reason.RankPodDeleted;

export interface ServerPlan {
  readonly status: RunaheadServerStatus;
  readonly actions: readonly ServerAction[];
  readonly events: readonly PlannedEvent[];
  /** Groups this plan restarts (each one's status.groups[].restarts goes up by one), for metrics. */
  readonly restarted: readonly { readonly group: number; readonly reason: GroupRestartReason }[];
}

const finished = (p: ServerPod) => p.phase === 'Failed' || p.phase === 'Succeeded';

/**
 * Deletes `pods` (those not going already) and, first, the PodGroups they name: a crash in between
 * leaves pods that still name them, so the next reconcile deletes them again (404 is done).
 */
function deleteAll(pods: readonly ServerPod[]): ServerAction[] {
  const going = pods.filter((p) => !p.deleting);
  const podGroups = new Map(going.flatMap((p) => (p.podGroup ? [[p.podGroup.name, p.podGroup]] : [])));
  return [
    ...[...podGroups.values()].map((g) => ({ kind: 'deletePodGroup', ...g }) as const),
    ...going.map((p) => ({ kind: 'deletePod', name: p.name, uid: p.uid }) as const),
  ];
}

/**
 * `pods` to create for group `group`, after the group's PodGroup when one of them is a rank pod (the
 * gang scheduler waits for it; an existing one, 409, is the goal reached).
 */
function createGroup(
  server: ServerRef,
  group: number,
  attempt: number,
  pods: readonly V1Pod[],
): ServerAction[] {
  const podGroup = pods.some((p) => p.metadata?.labels?.[LABEL_SERVER_ROLE] === 'rank')
    ? desiredServerPodGroup(server, group, attempt)
    : null;
  const scheduler = server.spec.placement?.podGroup?.scheduler;
  return [
    ...(podGroup && scheduler ? [{ kind: 'createPodGroup', object: podGroup, scheduler } as const] : []),
    ...pods.map((object) => ({ kind: 'createPod', object }) as const),
  ];
}

interface GroupView {
  readonly group: number;
  /** Every expected pod exists, none deleting. */
  readonly whole: boolean;
  readonly ready: boolean;
  readonly revision: string | null;
  readonly live: readonly ServerPod[];
}

/** Names of every pod group `group` must have: its ranks, then its front. */
function expectedNames(server: ServerRef, group: number, ranks: number): string[] {
  const job = serverChildNames.group(server.name, group);
  return [
    ...Array.from({ length: ranks }, (_, r) => `${job}-${r}`),
    serverChildNames.frontPod(server.name, group),
  ];
}

interface GroupPlan {
  readonly actions: ServerAction[];
  readonly events: PlannedEvent[];
  readonly restarts: number;
  /** Set when this plan restarts the group. */
  readonly restartReason: GroupRestartReason | null;
  readonly message: string | null;
  readonly view: GroupView;
}

/**
 * One group kept whole: created when it has no pod, restarted (every pod deleted) when a pod failed
 * or went away after it started, completed when a pod is missing before it started (a create the
 * cache has not seen yet comes back as a conflict the reconciler ignores), its gang gate lifted.
 */
function planGroup(input: ServerPlanInput, g: number, revision: string, restarts: number): GroupPlan {
  const { server, defaults } = input;
  const spec = server.spec;
  const actions: ServerAction[] = [];
  const all = input.pods.filter((p) => p.group === g);
  const live = all.filter((p) => !p.deleting);
  // A group is whole by the revision it was made from: after `ranks` changed, an outdated group
  // misses no pod of the new size — the roll replaces it, within maxUnavailable.
  const groupRevision = live[0]?.revision ?? revision;
  const outdated = groupRevision !== revision;
  const groupRanks = (outdated ? live.find((p) => p.ranks !== null)?.ranks : null) ?? spec.ranks;
  const expected = expectedNames(server, g, groupRanks);
  const missing = expected.filter((n) => !live.some((p) => p.name === n));
  const started = live.some((p) => p.phase !== 'Pending');
  const failed = live.find(finished);
  if (all.length === 0)
    return {
      actions: createGroup(server, g, restarts, desiredGroupPods(server, g, restarts, revision, defaults)),
      events: [
        {
          type: 'Normal',
          reason: Reason.GroupStarted,
          message: `group ${g}: ${spec.ranks} rank pod(s) and a front created (revision ${revision})`,
        },
      ],
      restarts,
      restartReason: null,
      message: null,
      view: { group: g, whole: false, ready: false, revision, live: [] },
    };
  if (failed || (started && missing.length > 0)) {
    const why = failed
      ? `pod ${failed.name} ${failed.phase.toLowerCase()}${failed.message ? ` (${failed.message})` : ''}`
      : `pod ${missing.join(', ')} went away`;
    const restarting = live.length > 0;
    const reason = failed ? Reason.RankFailed : Reason.RankPodDeleted;
    return {
      actions: deleteAll(live),
      events: restarting
        ? [{ type: 'Warning', reason, message: `group ${g}: ${why}; restarting the whole group` }]
        : [],
      restarts: restarting ? restarts + 1 : restarts,
      restartReason: restarting ? reason : null,
      message: `restarting: ${why}`,
      view: { group: g, whole: false, ready: false, revision: null, live: [] },
    };
  }
  const deletingNames = new Set(all.filter((p) => p.deleting).map((p) => p.name));
  // An outdated group short of a pod before it started is not completed: the roll replaces it.
  if (missing.length > 0 && !outdated) {
    const creatable = desiredGroupPods(server, g, restarts, revision, defaults).filter(
      (object) => missing.includes(object.metadata!.name!) && !deletingNames.has(object.metadata!.name!),
    );
    actions.push(...createGroup(server, g, restarts, creatable));
  }
  const rankPods = live.filter((p) => p.role === 'rank');
  if (rankPods.length === groupRanks)
    for (const p of rankPods)
      if (p.schedulingGates.includes(GANG_SCHEDULING_GATE))
        actions.push({ kind: 'ungatePod', name: p.name, uid: p.uid });
  const whole = missing.length === 0;
  const ready = whole && live.every((p) => p.ready);
  const waiting = live.find((p) => p.message !== '');
  return {
    actions,
    events: [],
    restarts,
    restartReason: null,
    message: ready
      ? null
      : waiting
        ? `${waiting.name}: ${waiting.message}`
        : `${live.filter((p) => p.ready).length} of ${expected.length} pods ready`,
    view: { group: g, whole, ready, revision: groupRevision, live },
  };
}

/** The client Service and every group's headless Service that do not exist yet. */
function missingServices(input: ServerPlanInput): ServerAction[] {
  const { server } = input;
  const wanted = [
    desiredClientService(server),
    ...Array.from({ length: server.spec.replicas }, (_, g) => desiredGroupService(server, g)),
  ];
  return wanted
    .filter((object) => !input.services.has(object.metadata!.name!))
    .map((object) => ({ kind: 'createService', object }) as const);
}

/** A server the admin's policies refuse: no child, Available False with the policy's message. */
function refusedServer(input: ServerPlanInput, revision: string, problem: string): ServerPlan {
  const conditions: Condition[] = (input.status?.conditions ?? []).map((c) => ({ ...c }));
  const message = clipMessage(problem);
  const told = setCondition(
    conditions,
    ConditionType.Available,
    'False',
    Reason.PolicyViolation,
    message,
    input.now,
    input.generation,
  );
  return {
    status: {
      ...input.status,
      observedGeneration: input.generation,
      conditions,
      replicas: input.server.spec.replicas,
      readyReplicas: 0,
      revision,
    },
    actions: [],
    events: told ? [{ type: 'Warning', reason: Reason.PolicyViolation, message }] : [],
    restarted: [],
  };
}

export function planServer(input: ServerPlanInput): ServerPlan {
  const { server, defaults, now } = input;
  const spec = server.spec;
  const revision = serverRevision(spec);
  // The cluster admin's limits (host paths, images, tolerations, priority class) are the job's: the
  // server's pods are a job's rank pods. A server that breaks one gets no pod.
  const problem = jobPolicyProblem(groupJob(server, 0).spec, defaults);
  if (problem) return refusedServer(input, revision, problem);
  const actions: ServerAction[] = [];
  const events: PlannedEvent[] = [];
  const restarted: ServerPlan['restarted'][number][] = [];
  const restarts = new Map((input.status?.groups ?? []).map((g) => [g.group, g.restarts]));
  const messages = new Map<number, string>();

  actions.push(...missingServices(input));

  // Groups past spec.replicas go.
  actions.push(...deleteAll(input.pods.filter((p) => p.group >= spec.replicas)));

  const views: GroupView[] = [];
  for (let g = 0; g < spec.replicas; g++) {
    const r = planGroup(input, g, revision, restarts.get(g) ?? 0);
    actions.push(...r.actions);
    events.push(...r.events);
    restarts.set(g, r.restarts);
    if (r.restartReason) restarted.push({ group: g, reason: r.restartReason });
    if (r.message) messages.set(g, r.message);
    views.push(r.view);
  }

  // The roll: outdated groups that do not serve go at once (nothing is lost); serving ones while
  // fewer than maxUnavailable groups are down, lowest index first.
  let unavailable = views.filter((v) => !v.ready).length;
  for (const v of views) {
    if (v.revision === null || v.revision === revision || v.live.length === 0) continue;
    if (!v.ready || unavailable < spec.maxUnavailable) {
      actions.push(...deleteAll(v.live));
      if (v.ready) unavailable++;
      messages.set(v.group, `rolling to revision ${revision}`);
      events.push({
        type: 'Normal',
        reason: Reason.RollingUpdate,
        message: `group ${v.group}: revision ${v.revision} → ${revision}`,
      });
    }
  }

  const groups: GroupStatus[] = views.map((v) => ({
    group: v.group,
    revision: v.revision ?? revision,
    ready: v.ready,
    restarts: restarts.get(v.group) ?? 0,
    ...(messages.has(v.group) ? { message: clipMessage(messages.get(v.group)!) } : {}),
  }));
  const readyReplicas = views.filter((v) => v.ready).length;
  const updatedReplicas = views.filter((v) => v.ready && v.revision === revision).length;
  const conditions: Condition[] = (input.status?.conditions ?? []).map((c) => ({ ...c }));
  setCondition(
    conditions,
    ConditionType.Available,
    readyReplicas > 0 ? 'True' : 'False',
    readyReplicas > 0 ? Reason.GroupsReady : Reason.NoGroupReady,
    `${readyReplicas} of ${spec.replicas} group(s) ready`,
    now,
    input.generation,
  );
  const updated = updatedReplicas === spec.replicas;
  setCondition(
    conditions,
    ConditionType.Updated,
    updated ? 'True' : 'False',
    updated ? Reason.GroupsUpdated : Reason.RollingUpdate,
    `${updatedReplicas} of ${spec.replicas} group(s) ready at revision ${revision}`,
    now,
    input.generation,
  );
  const ttftMs = input.ttftMs ?? input.status?.ttftMs;
  const status: RunaheadServerStatus = {
    observedGeneration: input.generation,
    conditions,
    replicas: spec.replicas,
    readyReplicas,
    updatedReplicas,
    revision,
    endpoint: `http://${serverChildNames.service(server.name)}.${server.namespace}.svc.${defaults.clusterDomain}:${spec.service.port}/v1/completions`,
    groups,
    ...(ttftMs ? { ttftMs } : {}),
  };
  return { status, actions, events, restarted };
}
