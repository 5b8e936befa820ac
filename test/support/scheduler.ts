// A scheduler for a test control plane that has none: binds unscheduled pods to the registered Nodes
// one at a time, in creation order, as kube-scheduler's default profile decides for what placement
// uses — the nodeSelector, resource fit against allocatable, inter-pod affinity (pod-affinity.ts);
// among the nodes left, the highest preferred-affinity score, then the least allocated (the default
// NodeResourcesFit scoring, which spreads), then the name. Pods with scheduling gates are skipped, as
// kube-scheduler skips them; a pod that fits nowhere gets PodScheduled=False, Unschedulable, with
// "0/N nodes are available: …" the way kube-scheduler writes it. Its one decision at a time is what
// lets a group's first rank pick the domain the others follow.
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { interPodAffinity, type NodeView, type Placed } from './pod-affinity.ts';
import { insufficient, podRequests, quantity } from './pod-sandbox.ts';

export interface SchedulerNode extends NodeView {
  readonly allocatable: ReadonlyMap<string, number>;
}

export type Decision = { readonly node: string } | { readonly unschedulable: string };

const TERMINAL = new Set(['Succeeded', 'Failed']);

/**
 * Whether kube-scheduler would take the pod: not bound, not going, Pending, its scheduler, and no
 * scheduling gate (the API server refuses a gated pod's binding).
 */
export function awaitsDefaultScheduler(pod: V1Pod): boolean {
  return (
    !pod.spec?.nodeName &&
    !pod.metadata?.deletionTimestamp &&
    (pod.status?.phase ?? 'Pending') === 'Pending' &&
    (pod.spec?.schedulingGates ?? []).length === 0 &&
    (pod.spec?.schedulerName ?? 'default-scheduler') === 'default-scheduler'
  );
}

/** Where kube-scheduler would bind `pod` now, or why it cannot (pure). */
export function decide(
  pod: V1Pod,
  nodes: readonly SchedulerNode[],
  bound: readonly V1Pod[],
  namespaceLabels: (ns: string) => Readonly<Record<string, string>>,
): Decision {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const placed: Placed[] = bound.flatMap((p) => {
    const node = byName.get(p.spec?.nodeName ?? '');
    return node ? [{ pod: p, node }] : [];
  });
  const requests = podRequests(pod);
  const reasons = new Map<string, number>();
  const refuse = (why: string) => reasons.set(why, (reasons.get(why) ?? 0) + 1);
  const fits: { node: SchedulerNode; score: number; load: number }[] = [];
  for (const node of [...nodes].sort((a, b) => a.name.localeCompare(b.name))) {
    if (Object.entries(pod.spec?.nodeSelector ?? {}).some(([k, v]) => node.labels[k] !== v)) {
      refuse("didn't match Pod's node affinity/selector");
      continue;
    }
    const used = new Map<string, number>();
    for (const p of placed)
      if (p.node.name === node.name)
        for (const [k, v] of podRequests(p.pod)) used.set(k, (used.get(k) ?? 0) + v);
    const short = insufficient(requests, node.allocatable, used);
    if (short) {
      refuse(`Insufficient ${short}`);
      continue;
    }
    const verdict = interPodAffinity(pod, node, placed, namespaceLabels);
    if (verdict.refused) {
      refuse(verdict.refused);
      continue;
    }
    const gpus = node.allocatable.get('nvidia.com/gpu') ?? 0;
    fits.push({ node, score: verdict.score, load: gpus > 0 ? (used.get('nvidia.com/gpu') ?? 0) / gpus : 0 });
  }
  fits.sort((a, b) => b.score - a.score || a.load - b.load);
  if (fits[0]) return { node: fits[0].node.name };
  const summary = [...reasons].map(([why, n]) =>
    why.startsWith('Insufficient') ? `${n} ${why}` : `${n} node(s) ${why}`,
  );
  return { unschedulable: `0/${nodes.length} nodes are available: ${summary.sort().join(', ')}.` };
}

export class TestScheduler {
  readonly #core: CoreV1Api;
  readonly #written = new Map<string, string>();
  readonly errors: string[] = [];
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  private constructor(kubeconfigPath: string) {
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfigPath);
    this.#core = kc.makeApiClient(CoreV1Api);
  }

  /** Schedules every `intervalMs` until stopped. */
  static start(kubeconfigPath: string, intervalMs = 200): TestScheduler {
    const s = new TestScheduler(kubeconfigPath);
    s.#timer = setInterval(() => {
      s.#running ??= s
        .#cycle()
        .catch((err: unknown) => {
          s.errors.push(err instanceof Error ? err.message : String(err));
        })
        .finally(() => {
          s.#running = null;
        });
    }, intervalMs);
    return s;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }

  /** A Node with these labels and this capacity (= allocatable), Ready. */
  static async addNode(
    core: CoreV1Api,
    name: string,
    labels: Record<string, string>,
    capacity: Record<string, string>,
  ): Promise<void> {
    await core.createNode({
      body: { metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } } },
    });
    await core.patchNodeStatus(
      {
        name,
        body: {
          status: {
            capacity,
            allocatable: capacity,
            conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'test node' }],
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  async #cycle(): Promise<void> {
    const [nodeList, podList, nsList] = await Promise.all([
      this.#core.listNode(),
      this.#core.listPodForAllNamespaces(),
      this.#core.listNamespace(),
    ]);
    const nodes: SchedulerNode[] = nodeList.items.map((n) => ({
      name: n.metadata!.name!,
      labels: n.metadata?.labels ?? {},
      allocatable: new Map(Object.entries(n.status?.allocatable ?? {}).map(([k, v]) => [k, quantity(v)])),
    }));
    const nsLabels = new Map(nsList.items.map((n) => [n.metadata!.name!, n.metadata?.labels ?? {}]));
    const namespaceLabels = (ns: string) => nsLabels.get(ns) ?? {};
    const bound = podList.items.filter(
      (p) => p.spec?.nodeName && !TERMINAL.has(p.status?.phase ?? '') && !p.metadata?.deletionTimestamp,
    );
    const queue = podList.items
      .filter(awaitsDefaultScheduler)
      .sort(
        (a, b) =>
          new Date(a.metadata!.creationTimestamp!).getTime() -
            new Date(b.metadata!.creationTimestamp!).getTime() ||
          a.metadata!.name!.localeCompare(b.metadata!.name!),
      );
    for (const pod of queue) {
      if (this.#stopped) return;
      const decision = decide(pod, nodes, bound, namespaceLabels);
      const namespace = pod.metadata!.namespace!;
      const name = pod.metadata!.name!;
      if ('node' in decision) {
        try {
          await this.#core.createNamespacedPodBinding({
            namespace,
            name,
            body: {
              metadata: { name, namespace, uid: pod.metadata!.uid! },
              target: { apiVersion: 'v1', kind: 'Node', name: decision.node },
            },
          });
        } catch (err) {
          // Deleted or bound meanwhile: the next cycle sees what happened.
          if (err instanceof ApiException && (err.code === 404 || err.code === 409)) continue;
          throw err;
        }
        const nowBound = structuredClone(pod);
        nowBound.spec!.nodeName = decision.node;
        bound.push(nowBound);
        continue;
      }
      if (this.#written.get(pod.metadata!.uid!) === decision.unschedulable) continue;
      this.#written.set(pod.metadata!.uid!, decision.unschedulable);
      await this.#core.patchNamespacedPodStatus(
        {
          namespace,
          name,
          body: {
            status: {
              conditions: [
                {
                  type: 'PodScheduled',
                  status: 'False',
                  reason: 'Unschedulable',
                  message: decision.unschedulable,
                  lastTransitionTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
                },
              ],
            },
          },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    }
  }
}
