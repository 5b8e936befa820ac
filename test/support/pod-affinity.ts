// kube-scheduler's inter-pod affinity, as its InterPodAffinity plugin decides it, for the test
// scheduler (scheduler.ts): required pod affinity (with the first-pod exception: a pod matching its
// own terms may start a group when no pod matches yet), required anti-affinity in both directions
// (an existing pod's terms keep the incoming one out too), and the preferred terms' score. Pure:
// nodes and pods in, a verdict out (pkg/scheduler/framework/plugins/interpodaffinity).
import type { V1LabelSelector, V1Pod, V1PodAffinityTerm } from '@kubernetes/client-node';

export interface NodeView {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** A label selector as metav1.LabelSelectorAsSelector reads it (an empty selector matches all). */
export function selects(
  selector: V1LabelSelector | undefined,
  labels: Readonly<Record<string, string>>,
): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    const ok =
      r.operator === 'In'
        ? has && (r.values ?? []).includes(value!)
        : r.operator === 'NotIn'
          ? !has || !(r.values ?? []).includes(value!)
          : r.operator === 'Exists'
            ? has
            : r.operator === 'DoesNotExist'
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}

/** Whether `term` (of a pod in `ownerNamespace`) selects `pod`: its namespaces, then its labels. */
export function termMatches(
  term: V1PodAffinityTerm,
  ownerNamespace: string,
  pod: V1Pod,
  namespaceLabels: (ns: string) => Readonly<Record<string, string>>,
): boolean {
  const ns = pod.metadata?.namespace ?? 'default';
  const listed = term.namespaces ?? [];
  const inNamespaces =
    listed.length === 0 && term.namespaceSelector === undefined
      ? ns === ownerNamespace
      : listed.includes(ns) || selects(term.namespaceSelector, namespaceLabels(ns));
  return inNamespaces && selects(term.labelSelector, pod.metadata?.labels ?? {});
}

export interface Placed {
  readonly pod: V1Pod;
  readonly node: NodeView;
}

export interface AffinityVerdict {
  /** Why the node is refused ('' when it is not), in kube-scheduler's words. */
  readonly refused:
    | ''
    | "didn't match pod affinity rules"
    | "didn't match pod anti-affinity rules"
    | "didn't satisfy existing pods anti-affinity rules";
  /** Sum of the weights of the preferred pod-affinity terms the node satisfies. */
  readonly score: number;
}

const sameDomain = (a: NodeView, b: NodeView, key: string) =>
  a.labels[key] !== undefined && a.labels[key] === b.labels[key];

type NamespaceLabels = (ns: string) => Readonly<Record<string, string>>;
const namespaceOf = (pod: V1Pod) => pod.metadata?.namespace ?? 'default';

/** An existing pod's required anti-affinity selects `pod` in the node's domain. */
function keptOutByExisting(pod: V1Pod, node: NodeView, placed: readonly Placed[], nsLabels: NamespaceLabels) {
  return placed.some((other) =>
    (other.pod.spec?.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []).some(
      (term) =>
        sameDomain(other.node, node, term.topologyKey) &&
        termMatches(term, namespaceOf(other.pod), pod, nsLabels),
    ),
  );
}

/** The pod's required affinity holds on the node (or the pod may start its group there). */
function affinitySatisfied(
  pod: V1Pod,
  node: NodeView,
  matching: (t: V1PodAffinityTerm) => Placed[],
  nsLabels: NamespaceLabels,
): boolean {
  const required = pod.spec?.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  if (required.some((t) => node.labels[t.topologyKey] === undefined)) return false;
  if (required.every((t) => matching(t).some((p) => sameDomain(p.node, node, t.topologyKey)))) return true;
  // The first pod of a group that selects itself: nothing matches anywhere yet, so any node will do.
  return (
    required.every((t) => matching(t).length === 0) &&
    required.every((t) => termMatches(t, namespaceOf(pod), pod, nsLabels))
  );
}

export function interPodAffinity(
  pod: V1Pod,
  node: NodeView,
  placed: readonly Placed[],
  namespaceLabels: NamespaceLabels,
): AffinityVerdict {
  const affinity = pod.spec?.affinity;
  const matching = (term: V1PodAffinityTerm) =>
    placed.filter((p) => termMatches(term, namespaceOf(pod), p.pod, namespaceLabels));
  const inDomain = (term: V1PodAffinityTerm) =>
    matching(term).some((p) => sameDomain(p.node, node, term.topologyKey));

  if (keptOutByExisting(pod, node, placed, namespaceLabels))
    return { refused: "didn't satisfy existing pods anti-affinity rules", score: 0 };
  if ((affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []).some(inDomain))
    return { refused: "didn't match pod anti-affinity rules", score: 0 };
  if (!affinitySatisfied(pod, node, matching, namespaceLabels))
    return { refused: "didn't match pod affinity rules", score: 0 };
  const score = (affinity?.podAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [])
    .filter((w) => inDomain(w.podAffinityTerm))
    .reduce((sum, w) => sum + w.weight, 0);
  return { refused: '', score };
}
