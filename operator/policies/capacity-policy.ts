// --gang-capacity-check: the gang's gate stays until the group fits. A scheduler places pods one at
// a time, so a group released into a cluster without room for all of it binds some ranks, which hold
// GPUs and wait (and fail after startupTimeoutSeconds). With this check the operator lifts the gate
// only when some domain of spec.placement.topologyKey (the whole cluster without one) has free GPUs
// for every rank, counting each node's allocatable GPUs less those RunaheadJob ranks hold, and
// leaving out domains an exclusive group holds (or, for an exclusive job, any other group holds).
//
// An estimate, on the safe side of waiting: it sees GPUs only (resources named …gpu, whole numbers by
// the CRD), the nodeSelector and cordoned nodes; not taints, node affinity nor other workloads' pods.
// So it may release a group that then does not fit (startupTimeoutSeconds catches that), but it does
// not hold one back that a scheduler could place on nodes the operator knows about.
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { LABEL_JOB } from '../../core/api/v1alpha1/names.ts';
import type { RunaheadJobSpec } from '../../core/api/v1alpha1/runahead-job.ts';

export interface NodeGpus {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Allocatable GPUs by resource name. */
  readonly gpus: Readonly<Record<string, number>>;
  readonly cordoned: boolean;
}

/** What one bound rank pod of a RunaheadJob holds. */
export interface RankUsage {
  readonly namespace: string;
  readonly job: string;
  readonly node: string;
  readonly gpus: Readonly<Record<string, number>>;
  /** The topology key its group holds exclusively (its anti-affinity to other jobs), if any. */
  readonly exclusiveKey: string | undefined;
}

export interface ClusterCapacity {
  readonly nodes: readonly NodeGpus[];
  readonly usage: readonly RankUsage[];
}

const isGpu = (resource: string) => resource.endsWith('gpu');
const wholeNumber = (q: string | number) => (typeof q === 'number' ? q : /^[0-9]+$/.test(q) ? Number(q) : 0);

function gpusOf(list: Readonly<Record<string, string | number>> | undefined): Record<string, number> {
  return Object.fromEntries(
    Object.entries(list ?? {})
      .filter(([k]) => isGpu(k))
      .map(([k, v]) => [k, wholeNumber(v)]),
  );
}

export function nodeGpus(node: V1Node): NodeGpus {
  return {
    name: node.metadata?.name ?? '',
    labels: node.metadata?.labels ?? {},
    gpus: gpusOf(node.status?.allocatable),
    cordoned: node.spec?.unschedulable === true,
  };
}

/** A bound, active rank pod's GPUs; null for one that holds nothing. */
export function rankUsage(pod: V1Pod): RankUsage | null {
  const node = pod.spec?.nodeName;
  const phase = pod.status?.phase;
  if (!node || phase === 'Succeeded' || phase === 'Failed') return null;
  const gpus: Record<string, number> = {};
  for (const c of pod.spec?.containers ?? [])
    for (const [k, v] of Object.entries(gpusOf(c.resources?.requests ?? c.resources?.limits)))
      gpus[k] = (gpus[k] ?? 0) + v;
  const exclusive = pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.find(
    (t) => t.labelSelector?.matchExpressions?.some((e) => e.key === LABEL_JOB && e.operator === 'Exists'),
  );
  return {
    namespace: pod.metadata?.namespace ?? '',
    job: pod.metadata?.labels?.[LABEL_JOB] ?? '',
    node,
    gpus,
    exclusiveKey: exclusive?.topologyKey,
  };
}

/** GPUs one rank asks for (a container's requests default to its limits). */
export function rankGpus(resources: {
  limits?: Record<string, string>;
  requests?: Record<string, string>;
}): Record<string, number> {
  return { ...gpusOf(resources.limits), ...gpusOf(resources.requests) };
}

/** null when the group fits somewhere; else why not, for the RanksReady condition. */
export function capacityProblem(
  job: { readonly namespace: string; readonly name: string; readonly spec: RunaheadJobSpec },
  perRank: Readonly<Record<string, number>>,
  capacity: ClusterCapacity,
): string | null {
  const wanted = Object.entries(perRank).filter(([, n]) => n > 0);
  if (wanted.length === 0) return null;
  const key = job.spec.placement?.topologyKey;
  const exclusive = job.spec.placement?.exclusive === true;
  const others = capacity.usage.filter((u) => u.namespace !== job.namespace || u.job !== job.name);
  const nodeByName = new Map(capacity.nodes.map((n) => [n.name, n]));
  const domainOf = (n: NodeGpus) => (key === undefined ? '' : n.labels[key]);
  const heldExclusively = (n: NodeGpus) =>
    others.some((u) => {
      const host = nodeByName.get(u.node);
      if (!host) return false;
      // Another group's exclusive domain, or (for an exclusive job) any domain another group is in.
      const k = u.exclusiveKey ?? (exclusive ? key : undefined);
      return k !== undefined && host.labels[k] !== undefined && host.labels[k] === n.labels[k];
    });
  const slots = new Map<string, number>();
  for (const n of capacity.nodes) {
    const domain = domainOf(n);
    if (domain === undefined || n.cordoned) continue;
    if (Object.entries(job.spec.nodeSelector ?? {}).some(([k, v]) => n.labels[k] !== v)) continue;
    if (heldExclusively(n)) continue;
    const used = (r: string) =>
      others.filter((u) => u.node === n.name).reduce((sum, u) => sum + (u.gpus[r] ?? 0), 0);
    const fit = Math.min(...wanted.map(([r, want]) => Math.floor(((n.gpus[r] ?? 0) - used(r)) / want)));
    slots.set(domain, (slots.get(domain) ?? 0) + Math.max(0, fit));
  }
  const best = Math.max(0, ...slots.values());
  if (best >= job.spec.ranks) return null;
  const what = wanted.map(([r, n]) => `${n} ${r}`).join(', ');
  const where = key === undefined ? 'the cluster has' : `no ${key} domain has`;
  return `${where} room for ${job.spec.ranks} rank(s) of ${what} each (at most ${best} fit${exclusive ? ', outside domains other groups hold' : ''})`;
}
