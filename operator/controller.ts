// Wires the RunaheadJob controller together: informers on jobs and on the children the operator
// labels, one work queue keyed by job, the reconciler as its handler, and the metrics. A change to
// any child enqueues its job; the reconciler then looks at the whole current state (level-
// triggered), so it does not matter which event arrived or whether some were missed.
import {
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
  type V1Namespace,
  type V1Node,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import {
  GROUP,
  LABEL_JOB,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  PHASES,
  PLURAL,
  VERSION,
  type Phase,
} from '../core/api/v1alpha1/names.ts';
import type { RunaheadJobStatus } from '../core/api/v1alpha1/runahead-job.ts';
import { logger, type Logger } from '../core/log.ts';
import type { OperatorDefaults } from './desired-children.ts';
import { ConflictError, Reconciler, type ClusterView, type ReconcileObserver } from './reconciler.ts';
import { coreResource, InformerFactory, type Informer } from './platform/informer.ts';
import { WorkQueue } from './platform/work-queue.ts';
import { ENABLED_NAMESPACE_SELECTOR } from './policies/namespace-policy.ts';
import type { OperatorMetrics } from './platform/metrics.ts';
import { nodeGpus, rankUsage } from './policies/capacity-policy.ts';

export interface ControllerOptions {
  readonly kubeConfig: KubeConfig;
  /** Watch one namespace; all namespaces when undefined. */
  readonly namespace?: string | undefined;
  readonly defaults: OperatorDefaults;
  readonly metrics: OperatorMetrics;
  /** Jobs reconciled at once (one job is never reconciled twice at the same time). */
  readonly concurrency?: number;
  readonly clock?: () => Date;
}

type Job = KubernetesObject & { status?: RunaheadJobStatus; spec?: { mode?: string; ranks?: number } };

const CHILD_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY},${LABEL_JOB}`;

export class Controller {
  readonly jobs: Informer<Job>;
  readonly #pods: Informer<V1Pod>;
  readonly #services: Informer<V1Service>;
  readonly #configMaps: Informer<V1ConfigMap>;
  /** With --namespaces labelled: the namespaces that opted in (null: every namespace is served). */
  readonly #namespaces: Informer<V1Namespace> | null;
  /** With --gang-capacity-check: the nodes, for their allocatable GPUs. */
  readonly #nodes: Informer<V1Node> | null;
  readonly #queue: WorkQueue;
  readonly #reconciler: Reconciler;
  readonly #metrics: OperatorMetrics;
  readonly #log: Logger;
  readonly #concurrency: number;
  #running: Promise<void> | null = null;

  constructor(options: ControllerOptions) {
    const { kubeConfig, namespace, metrics } = options;
    this.#log = logger('controller');
    this.#metrics = metrics;
    this.#concurrency = options.concurrency ?? 4;
    const informers = new InformerFactory({ kubeConfig, namespace, metrics });
    this.jobs = informers.namespaced<Job>({ group: GROUP, version: VERSION, plural: PLURAL });
    this.#pods = informers.namespaced<V1Pod>(coreResource('pods'), CHILD_SELECTOR);
    this.#services = informers.namespaced<V1Service>(coreResource('services'), CHILD_SELECTOR);
    this.#configMaps = informers.namespaced<V1ConfigMap>(coreResource('configmaps'), CHILD_SELECTOR);
    // Cluster-scoped, and only the labelled ones: a namespace losing its label leaves the cache.
    this.#namespaces =
      options.defaults.namespacePolicy.namespaces === 'labelled'
        ? informers.cluster<V1Namespace>(coreResource('namespaces'), ENABLED_NAMESPACE_SELECTOR)
        : null;
    this.#nodes = options.defaults.gangCapacityCheck
      ? informers.cluster<V1Node>(coreResource('nodes'))
      : null;
    this.#queue = new WorkQueue({ name: 'runaheadjobs' });
    metrics.trackWorkQueueDepth(() => this.#queue.depth);

    const view: ClusterView = {
      job: (ns, name) => this.jobs.get(ns, name),
      podsOfJob: (ns, job) => this.#pods.list(ns).filter((p) => p.metadata?.labels?.[LABEL_JOB] === job),
      serviceExists: (ns, name) => this.#services.get(ns, name) !== undefined,
      configMapExists: (ns, name) => this.#configMaps.get(ns, name) !== undefined,
      namespaceLabels: (ns) => this.#namespaces?.get('', ns)?.metadata?.labels,
      ...(this.#nodes
        ? {
            capacity: () => ({
              nodes: this.#nodes!.list().map(nodeGpus),
              usage: this.#pods.list().flatMap((p) => rankUsage(p) ?? []),
            }),
          }
        : {}),
    };
    const observer: ReconcileObserver = {
      terminal: (job, status, spec) => {
        metrics.recordFinishedJob(finishedJob(job, status, spec));
      },
      restarted: () => {
        metrics.jobRestarted();
      },
      jobGone: (ns, name) => {
        metrics.forgetJob(ns, name);
      },
    };
    this.#reconciler = new Reconciler({
      view,
      core: kubeConfig.makeApiClient(CoreV1Api),
      custom: kubeConfig.makeApiClient(CustomObjectsApi),
      defaults: options.defaults,
      log: this.#log,
      observer,
      ...(options.clock ? { clock: options.clock } : {}),
    });

    this.jobs.onChange((job) => {
      this.#enqueue(job.metadata?.namespace, job.metadata?.name);
    });
    for (const children of [this.#pods, this.#services, this.#configMaps] as Informer<KubernetesObject>[])
      children.onChange((child) => {
        this.#enqueue(child.metadata?.namespace, child.metadata?.labels?.[LABEL_JOB]);
      });
    // A namespace labelled (or unlabelled): its jobs are served (or left alone) from now on.
    this.#namespaces?.onChange((namespace) => {
      for (const job of this.jobs.list(namespace.metadata?.name))
        this.#enqueue(job.metadata?.namespace, job.metadata?.name);
    });
  }

  get #informers(): Informer<KubernetesObject>[] {
    return [
      this.jobs,
      this.#pods,
      this.#services,
      this.#configMaps,
      ...(this.#namespaces ? [this.#namespaces] : []),
      ...(this.#nodes ? [this.#nodes] : []),
    ] as Informer<KubernetesObject>[];
  }

  /** Informers synced: the caches hold the world, reconciles may begin. */
  get synced(): boolean {
    return this.#informers.every((i) => i.hasSynced);
  }

  /** Informers have not given up (for /healthz). */
  get healthy(): boolean {
    return this.#informers.every((i) => i.healthy);
  }

  /** Start watching and reconciling; resolves once the caches are synced. */
  async start(): Promise<void> {
    const informers = this.#informers;
    await Promise.all(informers.map((i) => i.start()));
    await Promise.all(informers.map((i) => i.waitForSync()));
    // Adopt what exists: every known job is reconciled once (a restarted operator picks up here).
    for (const job of this.jobs.list()) this.#enqueue(job.metadata?.namespace, job.metadata?.name);
    this.#running = this.#queue.run(this.#concurrency, (key) => this.#handle(key));
    this.#log.info({ concurrency: this.#concurrency }, 'controller started');
  }

  /** Graceful: no new reconciles, wait for the ones in flight, stop watching. */
  async stop(): Promise<void> {
    await this.#queue.shutDown();
    await this.#running;
    await Promise.all(this.#informers.map((i) => i.stop()));
    this.#log.info('controller stopped');
  }

  #enqueue(namespace: string | undefined, name: string | undefined): void {
    if (namespace && name) this.#queue.add(`${namespace}/${name}`);
  }

  async #handle(key: string): Promise<{ requeueAfterMs?: number }> {
    const [namespace = '', name = ''] = key.split('/');
    const t0 = performance.now();
    try {
      const { requeueAfterMs } = await this.#reconciler.reconcile(namespace, name);
      this.#metrics.observeReconcile(
        requeueAfterMs === null ? 'success' : 'requeue',
        (performance.now() - t0) / 1000,
      );
      return requeueAfterMs === null ? {} : { requeueAfterMs };
    } catch (err) {
      this.#metrics.observeReconcile('error', (performance.now() - t0) / 1000);
      this.#metrics.reconcileError(errorReason(err));
      throw err;
    } finally {
      this.#metrics.setJobPhases(countPhases(this.jobs.list()));
    }
  }
}

function errorReason(err: unknown): string {
  if (err instanceof ConflictError) return 'Conflict';
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'number')
    return `Http${err.code}`;
  return 'Error';
}

function countPhases(jobs: readonly Job[]): Record<Phase, number> {
  const counts = Object.fromEntries(PHASES.map((p) => [p, 0])) as Record<Phase, number>;
  for (const j of jobs) {
    const phase = j.status?.phase;
    if (phase) counts[phase]++;
    else counts.Pending++;
  }
  return counts;
}

function finishedJob(
  job: { namespace: string; name: string; uid: string },
  status: RunaheadJobStatus,
  spec: { mode: string; ranks: number },
): Parameters<OperatorMetrics['recordFinishedJob']>[0] {
  const terminal = status.conditions?.find(
    (c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True',
  );
  return {
    uid: job.uid,
    namespace: job.namespace,
    job: job.name,
    mode: spec.mode,
    rankCount: spec.ranks,
    ttftMs: status.ttftMs,
    ranks: (status.ranks ?? []).map((r) => ({
      rank: r.rank,
      computeMs: r.computeMs,
      waitMs: r.waitMs,
      sendMs: r.sendMs,
      criticalSendMs: r.criticalSendMs,
      bytesSent: r.bytesSent,
    })),
    result: status.phase === 'Succeeded' ? 'succeeded' : 'failed',
    reason: terminal?.reason ?? 'Unknown',
    finishedAt: status.completionTime ? new Date(status.completionTime) : undefined,
  };
}
