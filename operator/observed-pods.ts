// A rank pod as the planner sees it: which rank and attempt, how far it got, and — once its
// container ended — what it said (the termination message) or what the kubelet said about it.
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { LABEL_ATTEMPT, LABEL_RANK } from '../core/api/v1alpha1/names.ts';
import { clipMessage as clip } from './conditions.ts';
import {
  WorkerExit,
  parseTerminationMessage,
  type TerminationMessage,
} from '../core/api/termination-message.ts';

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export interface ObservedPod {
  readonly name: string;
  readonly uid: string;
  readonly rank: number;
  readonly attempt: number;
  readonly phase: PodPhase;
  readonly ready: boolean;
  readonly node: string | undefined;
  /** Being deleted (deletionTimestamp set): a rank that is going away. */
  readonly deleting: boolean;
  /** Its scheduling gates (ours, spec.placement.gang's, or another controller's such as Kueue's). */
  readonly schedulingGates: readonly string[];
  /** The worker container's end, once it ended. */
  readonly terminated:
    | {
        readonly exitCode: number;
        readonly reason: string;
        readonly message: string;
        readonly finishedAt: number;
      }
    | undefined;
  /** The termination message, when the worker wrote one of ours. */
  readonly report: TerminationMessage | null;
  /**
   * Why a pod that should be running is not yet, as the kubelet or scheduler says it
   * (ImagePullBackOff, a volume that cannot be mounted, no node with a free GPU); '' when nothing is wrong.
   */
  readonly waiting: string;
  /** Why the pod failed without its container ending (eviction, for instance). */
  readonly podReason: string;
  readonly podMessage: string;
}

const PHASES: readonly PodPhase[] = ['Pending', 'Running', 'Succeeded', 'Failed'];

function intLabel(pod: V1Pod, label: string): number | null {
  const v = pod.metadata?.labels?.[label];
  if (v === undefined || !/^\d+$/.test(v)) return null;
  return Number(v);
}

const time = (t: Date | string | undefined): number => (t ? new Date(t).getTime() : 0);

function podPhase(status: V1PodStatus | undefined): PodPhase {
  return PHASES.find((p) => p === status?.phase) ?? (status?.phase ? 'Unknown' : 'Pending');
}

/** Waiting reasons that only mean "starting": not worth reporting. */
const ROUTINE_WAITING = new Set(['ContainerCreating', 'PodInitializing']);

function waitingReason(status: V1PodStatus | undefined, gated: boolean): string {
  const waiting = status?.containerStatuses?.find((c) => c.state?.waiting)?.state?.waiting;
  if (waiting?.reason && !ROUTINE_WAITING.has(waiting.reason))
    return [waiting.reason, waiting.message].filter(Boolean).join(': ');
  const unscheduled = status?.conditions?.find(
    (c) =>
      c.type === 'PodScheduled' &&
      c.status === 'False' &&
      // Written by the API server at creation; stale once the gates are gone, until a scheduler looks.
      (gated || c.reason !== 'SchedulingGated'),
  );
  if (unscheduled) return [unscheduled.reason, unscheduled.message].filter(Boolean).join(': ');
  const volumes = status?.conditions?.find(
    (c) => c.type === 'PodReadyToStartContainers' && c.status === 'False',
  );
  return volumes?.message ?? '';
}

function workerTermination(status: V1PodStatus | undefined): ObservedPod['terminated'] {
  const container =
    status?.containerStatuses?.find((c) => c.name === 'worker') ?? status?.containerStatuses?.[0];
  const t = container?.state?.terminated;
  if (!t) return undefined;
  return {
    exitCode: t.exitCode,
    reason: t.reason ?? '',
    message: t.message ?? '',
    finishedAt: time(t.finishedAt),
  };
}

/** null for a pod that is not a rank pod of ours (no rank or attempt label). */
export function observePod(pod: V1Pod): ObservedPod | null {
  const rank = intLabel(pod, LABEL_RANK);
  const attempt = intLabel(pod, LABEL_ATTEMPT);
  if (rank === null || attempt === null) return null;
  const status = pod.status;
  const terminated = workerTermination(status);
  return {
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
    rank,
    attempt,
    phase: podPhase(status),
    ready: status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    node: pod.spec?.nodeName,
    deleting: pod.metadata?.deletionTimestamp !== undefined,
    schedulingGates: (pod.spec?.schedulingGates ?? []).map((g) => g.name),
    terminated,
    report: parseTerminationMessage(terminated?.message),
    waiting:
      podPhase(status) === 'Pending'
        ? waitingReason(status, (pod.spec?.schedulingGates ?? []).length > 0)
        : '',
    podReason: status?.reason ?? '',
    podMessage: status?.message ?? '',
  };
}

export interface RankFailure {
  readonly rank: number;
  readonly pod: string;
  /** Whether running the group again could help. */
  readonly retriable: boolean;
  /** One line: what happened to the rank and why. */
  readonly message: string;
  /** When it happened (ms since epoch; 0 when unknown), to find the first failure of a group. */
  readonly at: number;
  /**
   * It ended without reporting a failure of its own (killed, crashed, evicted, deleted): more
   * likely the cause than ranks that reported losing a peer, which termination times (whole
   * seconds) often cannot tell apart.
   */
  readonly crashed?: boolean;
}

/** Why a failed pod failed, from the best source available. */
export function describeFailure(p: ObservedPod): RankFailure {
  const base = { rank: p.rank, pod: p.name, at: p.terminated?.finishedAt ?? 0, crashed: !p.report };
  if (p.report && !p.report.ok)
    return { ...base, retriable: p.report.retriable, message: clip(p.report.error) };
  if (p.terminated) {
    const { exitCode, reason, message } = p.terminated;
    const detail = message && !p.report ? `: ${message.trim().split('\n').slice(-3).join(' | ')}` : '';
    return {
      ...base,
      retriable: exitCode !== WorkerExit.ConfigError,
      message: clip(
        `rank ${p.rank} (pod ${p.name}) exited with code ${exitCode}${reason ? ` (${reason})` : ''}${detail}`,
      ),
    };
  }
  const why = [p.podReason, p.podMessage].filter(Boolean).join(': ');
  return {
    ...base,
    retriable: true,
    message: clip(`rank ${p.rank} (pod ${p.name}) failed${why ? `: ${why}` : ''}`),
  };
}
