// Names of the RunaheadJob API that the operator, the worker and the chart agree on: the group and
// kind, the labels that find a job's children, the condition types and their reasons.

export const GROUP = 'runahead.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const KIND = 'RunaheadJob';
export const PLURAL = 'runaheadjobs';
export const SINGULAR = 'runaheadjob';
export const SHORT_NAMES = ['rj'] as const;
export const CRD_NAME = `${PLURAL}.${GROUP}`;

/** The operator's field manager (server-side apply and status writes). */
export const FIELD_MANAGER = 'runahead-operator';

/** Labels on every child of a job; the job's name is how its children are found. */
export const LABEL_JOB = `${GROUP}/job`;
export const LABEL_RANK = `${GROUP}/rank`;
/** Which restart of the rank group a pod belongs to (0 for the first). */
export const LABEL_ATTEMPT = `${GROUP}/attempt`;
/** On a namespace: `true` opts it in when the operator serves only labelled namespaces. */
export const LABEL_NAMESPACE_ENABLED = `${GROUP}/enabled`;
export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const MANAGED_BY = 'runahead-operator';

/**
 * The scheduling gate a rank pod is created with (spec.placement.gang): the operator lifts it once
 * every rank pod of the group exists, so the scheduler never sees part of a group.
 */
export const GANG_SCHEDULING_GATE = `${GROUP}/gang`;
/** The node label one node per value of (kube-scheduler's per-node topology). */
export const LABEL_HOSTNAME = 'kubernetes.io/hostname';
/** Pod groups of gang schedulers (kubernetes-sigs/scheduler-plugins coscheduling; Volcano). */
export const LABEL_COSCHEDULING_POD_GROUP = 'scheduling.x-k8s.io/pod-group';
export const ANNOTATION_VOLCANO_GROUP = 'scheduling.k8s.io/group-name';

/** The port every rank serves the rank protocol (and the gRPC health service) on. */
export const RANK_PORT = 50051;
export const RANK_PORT_NAME = 'rank';
/** The port every rank takes K/V on, beside the rank protocol (worker/chain/kv-socket.ts). */
export const RANK_KV_PORT = 50052;
export const RANK_KV_PORT_NAME = 'kv';

export const PHASES = ['Pending', 'Running', 'Succeeded', 'Failed', 'Suspended'] as const;
export type Phase = (typeof PHASES)[number];

/**
 * Condition types (Kubernetes conventions: positive polarity, CamelCase). `Complete` and `Failed`
 * are terminal and mirror batch/v1 Job, so `kubectl wait --for=condition=Complete` works the same.
 */
export const ConditionType = {
  /** Every rank's pod is running and passes its readiness probe (the model is loaded). */
  RanksReady: 'RanksReady',
  Complete: 'Complete',
  Failed: 'Failed',
  Suspended: 'Suspended',
  /** RunaheadServer: at least one group serves (its front ready: every rank SERVING). */
  Available: 'Available',
  /** RunaheadServer: every group runs the current spec and is ready. */
  Updated: 'Updated',
} as const;
export type ConditionTypeName = (typeof ConditionType)[keyof typeof ConditionType];

/** Reasons: one CamelCase word each, what a user greps for. */
export const Reason = {
  PodsCreated: 'PodsCreated',
  WaitingForRanks: 'WaitingForRanks',
  AllRanksReady: 'AllRanksReady',
  FirstTokenProduced: 'FirstTokenProduced',
  RankFailed: 'RankFailed',
  BackoffLimitExceeded: 'BackoffLimitExceeded',
  DeadlineExceeded: 'DeadlineExceeded',
  InvalidSpec: 'InvalidSpec',
  ConfigurationError: 'ConfigurationError',
  PodCreationFailed: 'PodCreationFailed',
  /** The API server refused a child (rank pod, ConfigMap, Service) as invalid: no retry can help. */
  ChildRejected: 'ChildRejected',
  /** The operator's admission policy (set by a cluster admin) refuses the job. */
  PolicyViolation: 'PolicyViolation',
  /** The job's namespace is not one the operator serves (--namespaces labelled, no opt-in label). */
  NamespaceNotEnabled: 'NamespaceNotEnabled',
  RankPodDeleted: 'RankPodDeleted',
  GroupRestarting: 'GroupRestarting',
  /** Every rank pod of the group exists with no scheduling gate: the startup clock starts. */
  GroupReleased: 'GroupReleased',
  JobSuspended: 'JobSuspended',
  JobResumed: 'JobResumed',
  TtlExpired: 'TtlExpired',
  /** RunaheadServer reasons. */
  GroupsReady: 'GroupsReady',
  NoGroupReady: 'NoGroupReady',
  RollingUpdate: 'RollingUpdate',
  GroupsUpdated: 'GroupsUpdated',
  GroupStarted: 'GroupStarted',
} as const;
export type ReasonName = (typeof Reason)[keyof typeof Reason];

/** Names of a job's children, derived from the job's name (validated to leave room for them). */
export const childNames = {
  /** Headless Service that gives rank i the stable name `<job>-<i>.<job>-ranks`. */
  service: (job: string): string => `${job}-ranks`,
  configMap: (job: string): string => `${job}-shared`,
  pod: (job: string, rank: number): string => `${job}-${rank}`,
  hostname: (job: string, rank: number): string => `${job}-${rank}`,
};

/** The longest job name for which every child name is a valid DNS-1035 label (63 characters). */
export const MAX_JOB_NAME_LENGTH = 52;
