// spec.placement compiled into what a rank pod carries, as pure functions of the job and the rank:
// core/v1 pod (anti-)affinity for the topology domain and the chain's packing, the gang's scheduling
// gate, and the labels a gang scheduler or Kueue groups the pods by. The scheduler does the placing;
// the operator only says what belongs together.
//
// The terms follow JobSet's exclusive placement: ranks require pod affinity to their own group on
// the topology key (the first rank of a group matches its own term, which kube-scheduler accepts when
// no pod matches yet, so it picks the domain and the others follow it), and exclusive groups require
// anti-affinity to every other group's ranks there. Anti-affinity is symmetric in kube-scheduler:
// an exclusive group's terms also keep later groups out of the domain it holds.
import type {
  V1Affinity,
  V1LabelSelector,
  V1PodAffinityTerm,
  V1PodSchedulingGate,
  V1WeightedPodAffinityTerm,
} from '@kubernetes/client-node';
import {
  ANNOTATION_VOLCANO_GROUP,
  GANG_SCHEDULING_GATE,
  LABEL_COSCHEDULING_POD_GROUP,
  LABEL_HOSTNAME,
  LABEL_JOB,
  LABEL_MANAGED_BY,
  LABEL_RANK,
  MANAGED_BY,
} from '../core/api/v1alpha1/names.ts';
import {
  DEFAULT_SCHEDULER_NAMES,
  type Placement,
  type PodGroupScheduler,
} from '../core/api/v1alpha1/placement.ts';
import type { RunaheadJobSpec } from '../core/api/v1alpha1/runahead-job.ts';

/** Kueue's pod-group integration (kueue.x-k8s.io, "plain pods" in groups). */
export const KUEUE = {
  queueName: 'kueue.x-k8s.io/queue-name',
  podGroupName: 'kueue.x-k8s.io/pod-group-name',
  podGroupTotalCount: 'kueue.x-k8s.io/pod-group-total-count',
  requiredTopology: 'kueue.x-k8s.io/podset-required-topology',
} as const;

/** The job as placement needs it. */
export interface PlacedJob {
  readonly name: string;
  readonly namespace: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly spec: RunaheadJobSpec;
}

export interface RankPlacement {
  /** The user's spec.affinity with the placement's terms added (undefined: none of either). */
  readonly affinity: V1Affinity | undefined;
  readonly schedulingGates: V1PodSchedulingGate[];
  readonly schedulerName: string | undefined;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

/** One name per group and attempt (a restarted group is a new gang): a label value of ≤ 57 characters. */
export function podGroupName(job: string, attempt: number): string {
  return `${job}-a${attempt}`;
}

/** The gang scheduler's PodGroup a pod names, read back from what rankPlacement put on it. */
export interface PodGroupRef {
  readonly name: string;
  readonly scheduler: PodGroupScheduler;
}

/** The PodGroup a pod was created in (rankPlacement's label or annotation); null: none. */
export function podGroupOf(
  labels: Readonly<Record<string, string>> | undefined,
  annotations: Readonly<Record<string, string>> | undefined,
): PodGroupRef | null {
  const cosched = labels?.[LABEL_COSCHEDULING_POD_GROUP];
  if (cosched !== undefined) return { name: cosched, scheduler: 'Coscheduling' };
  const volcano = annotations?.[ANNOTATION_VOLCANO_GROUP];
  if (volcano !== undefined) return { name: volcano, scheduler: 'Volcano' };
  return null;
}

const ours = { [LABEL_MANAGED_BY]: MANAGED_BY };

/** Required pod affinity: every rank in the domain of its group's first rank. */
function sameDomain(job: PlacedJob, topologyKey: string): V1PodAffinityTerm {
  return { labelSelector: { matchLabels: { [LABEL_JOB]: job.name, ...ours } }, topologyKey };
}

/**
 * Required anti-affinity: no rank of another RunaheadJob in the domain — one term for this
 * namespace (other job names), one for every other namespace (any job name).
 */
function exclusiveDomain(job: PlacedJob, topologyKey: string): V1PodAffinityTerm[] {
  const anyJob = { key: LABEL_JOB, operator: 'Exists' };
  const otherJobs: V1LabelSelector = {
    matchLabels: ours,
    matchExpressions: [anyJob, { key: LABEL_JOB, operator: 'NotIn', values: [job.name] }],
  };
  return [
    { labelSelector: otherJobs, topologyKey },
    {
      labelSelector: { matchLabels: ours, matchExpressions: [anyJob] },
      namespaceSelector: {
        matchExpressions: [
          { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [job.namespace] },
        ],
      },
      topologyKey,
    },
  ];
}

/** Preferred pod affinity: rank i on the node of rank i-1 and of rank i+1 (the chain's only links). */
function neighbours(job: PlacedJob, rank: number): V1WeightedPodAffinityTerm[] {
  return [rank - 1, rank + 1]
    .filter((r) => r >= 0 && r < job.spec.ranks)
    .map((r) => ({
      weight: 100,
      podAffinityTerm: {
        labelSelector: { matchLabels: { [LABEL_JOB]: job.name, [LABEL_RANK]: String(r), ...ours } },
        topologyKey: LABEL_HOSTNAME,
      },
    }));
}

/** The placement's own affinity terms for one rank. */
export function placementAffinity(job: PlacedJob, placement: Placement, rank: number): V1Affinity {
  const key = placement.topologyKey;
  const required = key !== undefined ? [sameDomain(job, key)] : [];
  const preferred = placement.packing === 'Consecutive' ? neighbours(job, rank) : [];
  const anti = key !== undefined && placement.exclusive ? exclusiveDomain(job, key) : [];
  return {
    ...(required.length > 0 || preferred.length > 0
      ? {
          podAffinity: {
            ...(required.length > 0 ? { requiredDuringSchedulingIgnoredDuringExecution: required } : {}),
            ...(preferred.length > 0 ? { preferredDuringSchedulingIgnoredDuringExecution: preferred } : {}),
          },
        }
      : {}),
    ...(anti.length > 0 ? { podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: anti } } : {}),
  };
}

type PodAffinityLike = NonNullable<V1Affinity['podAffinity']>;

function mergeTerms(
  a: PodAffinityLike | undefined,
  b: PodAffinityLike | undefined,
): PodAffinityLike | undefined {
  if (!a) return b;
  if (!b) return a;
  const required = [
    ...(a.requiredDuringSchedulingIgnoredDuringExecution ?? []),
    ...(b.requiredDuringSchedulingIgnoredDuringExecution ?? []),
  ];
  const preferred = [
    ...(a.preferredDuringSchedulingIgnoredDuringExecution ?? []),
    ...(b.preferredDuringSchedulingIgnoredDuringExecution ?? []),
  ];
  return {
    ...(required.length > 0 ? { requiredDuringSchedulingIgnoredDuringExecution: required } : {}),
    ...(preferred.length > 0 ? { preferredDuringSchedulingIgnoredDuringExecution: preferred } : {}),
  };
}

/** The user's affinity with the placement's terms appended (terms of one list are ANDed or scored). */
export function mergeAffinity(user: V1Affinity | undefined, placed: V1Affinity): V1Affinity | undefined {
  const podAffinity = mergeTerms(user?.podAffinity, placed.podAffinity);
  const podAntiAffinity = mergeTerms(user?.podAntiAffinity, placed.podAntiAffinity);
  const merged: V1Affinity = {
    ...(user?.nodeAffinity ? { nodeAffinity: user.nodeAffinity } : {}),
    ...(podAffinity ? { podAffinity } : {}),
    ...(podAntiAffinity ? { podAntiAffinity } : {}),
  };
  return Object.keys(merged).length > 0 ? merged : undefined;
}

/** What rank `rank` of attempt `attempt` carries for its placement. */
export function rankPlacement(job: PlacedJob, rank: number, attempt: number): RankPlacement {
  const placement = job.spec.placement;
  const user = job.spec.affinity as V1Affinity | undefined;
  const labels: Record<string, string> = {};
  const annotations: Record<string, string> = {};
  const group = podGroupName(job.name, attempt);
  // Kueue admits a pod group once all its pods exist and fit the queue's quota (and, with
  // podset-required-topology, one domain), holding them at its own gate until then.
  const queue = job.labels?.[KUEUE.queueName];
  if (queue !== undefined) {
    labels[KUEUE.queueName] = queue;
    labels[KUEUE.podGroupName] = group;
    annotations[KUEUE.podGroupTotalCount] = String(job.spec.ranks);
    if (placement?.topologyKey !== undefined) annotations[KUEUE.requiredTopology] = placement.topologyKey;
  }
  if (!placement)
    return { affinity: user, schedulingGates: [], schedulerName: undefined, labels, annotations };
  const podGroup = placement.podGroup;
  if (podGroup?.scheduler === 'Coscheduling') labels[LABEL_COSCHEDULING_POD_GROUP] = group;
  if (podGroup?.scheduler === 'Volcano') annotations[ANNOTATION_VOLCANO_GROUP] = group;
  return {
    affinity: mergeAffinity(user, placementAffinity(job, placement, rank)),
    schedulingGates: placement.gang ? [{ name: GANG_SCHEDULING_GATE }] : [],
    schedulerName: podGroup
      ? (podGroup.schedulerName ?? DEFAULT_SCHEDULER_NAMES[podGroup.scheduler])
      : undefined,
    labels,
    annotations,
  };
}
