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

export function interPodAffinity(
  pod: V1Pod,
  node: NodeView,
  placed: readonly Placed[],
  namespaceLabels: (ns: string) => Readonly<Record<string, string>>,
): AffinityVerdict {
  const ns = pod.metadata?.namespace ?? 'default';
  const affinity = pod.spec?.affinity;
  const matching = (term: V1PodAffinityTerm) =>
    placed.filter((p) => termMatches(term, ns, p.pod, namespaceLabels));

  for (const other of placed)
    for (const term of other.pod.spec?.affinity?.podAntiAffinity
      ?.requiredDuringSchedulingIgnoredDuringExecution ?? [])
      if (
        sameDomain(other.node, node, term.topologyKey) &&
        termMatches(term, other.pod.metadata?.namespace ?? 'default', pod, namespaceLabels)
      )
        return { refused: "didn't satisfy existing pods anti-affinity rules", score: 0 };

  for (const term of affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [])
    if (matching(term).some((p) => sameDomain(p.node, node, term.topologyKey)))
      return { refused: "didn't match pod anti-affinity rules", score: 0 };

  const required = affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [];
  if (required.some((t) => node.labels[t.topologyKey] === undefined))
    return { refused: "didn't match pod affinity rules", score: 0 };
  const satisfied = required.every((t) => matching(t).some((p) => sameDomain(p.node, node, t.topologyKey)));
  // The first pod of a group that selects itself: nothing matches anywhere yet, so any node will do.
  const first =
    required.every((t) => matching(t).length === 0) &&
    required.every((t) => termMatches(t, ns, pod, namespaceLabels));
  if (!satisfied && !first) return { refused: "didn't match pod affinity rules", score: 0 };

  let score = 0;
  for (const { weight, podAffinityTerm: t } of affinity?.podAffinity
    ?.preferredDuringSchedulingIgnoredDuringExecution ?? [])
    if (matching(t).some((p) => sameDomain(p.node, node, t.topologyKey))) score += weight;
  return { refused: '', score };
}
