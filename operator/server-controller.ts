// Wires the RunaheadServer controller together, from the job controller's platform parts: informers
// on servers and on the pods and Services labelled with a server's name, one work queue keyed by
// server, the server reconciler as its handler. Any change to a child enqueues its server, which is
// then reconciled from the whole current state (level-triggered).
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesObject,
  type V1Namespace,
  type V1Pod,
  type V1Service,
} from '@kubernetes/client-node';
import { GROUP, LABEL_MANAGED_BY, MANAGED_BY, VERSION } from '../core/api/v1alpha1/names.ts';
import { LABEL_SERVER, SERVER_PLURAL } from '../core/api/v1alpha1/server-names.ts';
import { logger, type Logger } from '../core/log.ts';
import type { OperatorDefaults } from './desired-children.ts';
import { coreResource, InformerFactory, type Informer } from './platform/informer.ts';
import type { OperatorMetrics, ServerObservation } from './platform/metrics.ts';
import { WorkQueue } from './platform/work-queue.ts';
import { ENABLED_NAMESPACE_SELECTOR } from './policies/namespace-policy.ts';
import type { RunaheadServerStatus } from '../core/api/v1alpha1/runahead-server.ts';
import { ServerReconciler } from './server-reconciler.ts';

export interface ServerControllerOptions {
  readonly kubeConfig: KubeConfig;
  /** Watch one namespace; all namespaces when undefined. */
  readonly namespace?: string | undefined;
  readonly defaults: OperatorDefaults;
  readonly metrics: OperatorMetrics;
  /** Servers reconciled at once (one server is never reconciled twice at the same time). */
  readonly concurrency?: number;
}

const CHILD_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY},${LABEL_SERVER}`;

export class ServerController {
  readonly servers: Informer<KubernetesObject>;
  readonly #pods: Informer<V1Pod>;
  readonly #services: Informer<V1Service>;
  /** With --namespaces labelled: the namespaces that opted in (null: every namespace is served). */
  readonly #namespaces: Informer<V1Namespace> | null;
  readonly #queue = new WorkQueue({ name: 'runaheadservers' });
  readonly #reconciler: ServerReconciler;
  readonly #log: Logger = logger('server-controller');
  readonly #concurrency: number;
  #running: Promise<void> | null = null;
  readonly #custom: CustomObjectsApi;
  readonly #namespace: string | undefined;
  /**
   * False when the API serves no RunaheadServers: a chart upgraded in place keeps its old CRDs (Helm
   * installs crds/ only on install), and the job controller must not wait on a kind that is not there.
   */
  #enabled = true;

  constructor(options: ServerControllerOptions) {
    const { kubeConfig, namespace, metrics } = options;
    this.#concurrency = options.concurrency ?? 4;
    this.#custom = kubeConfig.makeApiClient(CustomObjectsApi);
    this.#namespace = namespace;
    const informers = new InformerFactory({ kubeConfig, namespace, metrics });
    this.servers = informers.namespaced({ group: GROUP, version: VERSION, plural: SERVER_PLURAL });
    this.#pods = informers.namespaced<V1Pod>(coreResource('pods'), CHILD_SELECTOR);
    this.#services = informers.namespaced<V1Service>(coreResource('services'), CHILD_SELECTOR);
    this.#namespaces =
      options.defaults.namespacePolicy.namespaces === 'labelled'
        ? informers.cluster<V1Namespace>(coreResource('namespaces'), ENABLED_NAMESPACE_SELECTOR)
        : null;
    const ofServer = <T extends KubernetesObject>(i: Informer<T>, ns: string, server: string) =>
      i.list(ns).filter((o) => o.metadata?.labels?.[LABEL_SERVER] === server);
    this.#reconciler = new ServerReconciler({
      view: {
        server: (ns, name) => this.servers.get(ns, name),
        podsOfServer: (ns, server) => ofServer(this.#pods, ns, server),
        servicesOfServer: (ns, server) =>
          new Set(ofServer(this.#services, ns, server).map((s) => s.metadata?.name ?? '')),
        namespaceLabels: (ns) => this.#namespaces?.get('', ns)?.metadata?.labels,
      },
      core: kubeConfig.makeApiClient(CoreV1Api),
      custom: this.#custom,
      defaults: options.defaults,
      log: this.#log,
      observer: {
        status: (ns, name, replicas, status) => {
          metrics.setServer(serverObservation(ns, name, replicas, status));
        },
        groupRestarted: (ns, name, _group, reason) => {
          metrics.serverGroupRestarted(ns, name, reason);
        },
        serverGone: (ns, name) => {
          metrics.forgetServer(ns, name);
        },
      },
    });
    this.servers.onChange((s) => {
      this.#enqueue(s.metadata?.namespace, s.metadata?.name);
    });
    for (const children of [this.#pods, this.#services] as Informer<KubernetesObject>[])
      children.onChange((child) => {
        this.#enqueue(child.metadata?.namespace, child.metadata?.labels?.[LABEL_SERVER]);
      });
    // A namespace labelled (or unlabelled): its servers are served (or left alone) from now on.
    this.#namespaces?.onChange((namespace) => {
      for (const s of this.servers.list(namespace.metadata?.name))
        this.#enqueue(s.metadata?.namespace, s.metadata?.name);
    });
  }

  get #informers(): Informer<KubernetesObject>[] {
    return [
      this.servers,
      this.#pods,
      this.#services,
      ...(this.#namespaces ? [this.#namespaces] : []),
    ] as Informer<KubernetesObject>[];
  }

  get synced(): boolean {
    return !this.#enabled || this.#informers.every((i) => i.hasSynced);
  }

  get healthy(): boolean {
    return !this.#enabled || this.#informers.every((i) => i.healthy);
  }

  async start(): Promise<void> {
    if (!(await this.#served())) {
      this.#enabled = false;
      this.#log.warn(
        'the API serves no runaheadservers (CRD not installed: kubectl apply -f the chart’s crds/); RunaheadServers are not reconciled',
      );
      return;
    }
    const informers = this.#informers;
    await Promise.all(informers.map((i) => i.start()));
    await Promise.all(informers.map((i) => i.waitForSync()));
    for (const s of this.servers.list()) this.#enqueue(s.metadata?.namespace, s.metadata?.name);
    this.#running = this.#queue.run(this.#concurrency, async (key) => {
      const [namespace = '', name = ''] = key.split('/');
      const requeueAfterMs = await this.#reconciler.reconcile(namespace, name);
      return requeueAfterMs === null ? {} : { requeueAfterMs };
    });
    this.#log.info({ concurrency: this.#concurrency }, 'server controller started');
  }

  /** Whether the API serves RunaheadServers (404: the CRD is not installed). */
  async #served(): Promise<boolean> {
    const list = { group: GROUP, version: VERSION, plural: SERVER_PLURAL, limit: 1 };
    try {
      if (this.#namespace)
        await this.#custom.listNamespacedCustomObject({ ...list, namespace: this.#namespace });
      else await this.#custom.listClusterCustomObject(list);
      return true;
    } catch (err) {
      if (err instanceof ApiException && err.code === 404) return false;
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (!this.#enabled) return;
    await this.#queue.shutDown();
    await this.#running;
    await Promise.all(this.#informers.map((i) => i.stop()));
  }

  #enqueue(namespace: string | undefined, name: string | undefined): void {
    if (namespace && name) this.#queue.add(`${namespace}/${name}`);
  }
}

/** The per-server gauges' figures from the status the reconciler wrote. */
export function serverObservation(
  namespace: string,
  server: string,
  replicas: number,
  status: RunaheadServerStatus,
): ServerObservation {
  return {
    namespace,
    server,
    desired: replicas,
    ready: status.readyReplicas ?? 0,
    updated: status.updatedReplicas ?? 0,
    ttftMs: status.ttftMs,
  };
}
