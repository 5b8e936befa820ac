// One reconcile of one RunaheadServer: read its pods and Services from the informers' caches, let
// the pure planner decide (server-plan.ts), then apply — status first (it carries each group's
// restart count, which must survive a crash between writes), then the children, then the Events.
// The status is written with the resourceVersion the plan was made from: a plan from a stale cache
// is refused (409) and made again from fresh data.
import { ApiException, type CoreV1Api, type CustomObjectsApi, type V1Pod } from '@kubernetes/client-node';
import { isDeepStrictEqual } from 'node:util';
import { API_VERSION, FIELD_MANAGER, GROUP, Reason, VERSION } from '../core/api/v1alpha1/names.ts';
import { parseRunaheadServer, type RunaheadServerStatus } from '../core/api/v1alpha1/runahead-server.ts';
import { FRONT_PORT, SERVER_KIND, SERVER_PLURAL } from '../core/api/v1alpha1/server-names.ts';
import type { Logger } from '../core/log.ts';
import type { OperatorDefaults } from './desired-children.ts';
import type { PlannedEvent } from './job-plan.ts';
import { recordEvent } from './platform/events.ts';
import { deleteSeenPod, goalReached, liftGangGate } from './pod-writes.ts';
import { namespaceProblem } from './policies/namespace-policy.ts';
import {
  createPodGroup,
  deletePodGroup,
  isPodGroupUnavailable,
  podGroupUnavailableHint,
} from './pod-groups.ts';
import { apiErrorMessage, ConflictError } from './reconciler.ts';
import { serverRef } from './server-children.ts';
import {
  observeServerPod,
  planServer,
  type GroupRestartReason,
  type ServerAction,
  type ServerPod,
} from './server-plan.ts';
import { ttftPercentiles, type TtftPercentiles } from './ttft-percentiles.ts';

/** What the server reconciler reads: the informers' caches. */
export interface ServerClusterView {
  server(namespace: string, name: string): unknown;
  /** Pods labelled with the server's name (ownership is checked here). */
  podsOfServer(namespace: string, server: string): readonly V1Pod[];
  /** Names of the Services labelled with the server's name. */
  servicesOfServer(namespace: string, server: string): ReadonlySet<string>;
  /** The namespace's labels; undefined when unknown (in `--namespaces labelled`: not opted in). */
  namespaceLabels(namespace: string): Readonly<Record<string, string>> | undefined;
}

/** What the server reconciler reports, for metrics. */
export interface ServerReconcileObserver {
  /** The server's status as written (or found already written), on every reconcile of it. */
  status(namespace: string, name: string, replicas: number, status: RunaheadServerStatus): void;
  /** A group restarted, once per restart the status counts (reported after that status is written). */
  groupRestarted(namespace: string, name: string, group: number, reason: GroupRestartReason): void;
  /** The server is gone, going, or no longer served: its series go. */
  serverGone(namespace: string, name: string): void;
}

export interface ServerReconcilerDeps {
  readonly view: ServerClusterView;
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly defaults: OperatorDefaults;
  readonly log: Logger;
  readonly observer: ServerReconcileObserver;
  readonly clock?: () => Date;
}

type RawServer = {
  metadata?: { uid?: string; generation?: number; deletionTimestamp?: unknown; resourceVersion?: string };
  status?: RunaheadServerStatus;
};

/** How often a serving server's TTFT percentiles are read again from its fronts. */
export const TTFT_REFRESH_MS = 15_000;
const SCRAPE_TIMEOUT_MS = 1000;

/**
 * TTFT percentiles over every ready front's /metrics (each since that front started); a front that
 * does not answer in time is left out, and none answering keeps the last percentiles (null).
 */
async function scrapeTtft(pods: readonly ServerPod[]): Promise<TtftPercentiles | null> {
  const fronts = pods.filter((p) => p.role === 'front' && p.ready && p.ip);
  const texts = await Promise.all(
    fronts.map(async (p) => {
      try {
        const host = p.ip!.includes(':') ? `[${p.ip!}]` : p.ip!;
        const res = await fetch(`http://${host}:${FRONT_PORT}/metrics`, {
          signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS),
        });
        return res.ok ? await res.text() : null;
      } catch {
        return null;
      }
    }),
  );
  const answered = texts.filter((t): t is string => t !== null);
  return answered.length > 0 ? ttftPercentiles(answered) : null;
}

const isCode = (err: unknown, code: number) => err instanceof ApiException && err.code === code;

export class ServerReconciler {
  private readonly deps: ServerReconcilerDeps;
  private readonly clock: () => Date;

  constructor(deps: ServerReconcilerDeps) {
    this.deps = deps;
    this.clock = deps.clock ?? (() => new Date());
  }

  /** Reconciles the server; returns when to look again (TTFT from the fronts), null: on change only. */
  async reconcile(namespace: string, name: string): Promise<number | null> {
    const { view, log, observer } = this.deps;
    const raw = view.server(namespace, name) as RawServer | undefined;
    // Gone, or going: its children go with it through owner references.
    if (!raw || raw.metadata?.deletionTimestamp) {
      observer.serverGone(namespace, name);
      return null;
    }
    // As a job in a namespace not opted in: left alone (no status, no children), quietly.
    if (namespaceProblem(namespace, view.namespaceLabels(namespace), this.deps.defaults.namespacePolicy)) {
      log.debug({ namespace, server: name }, 'server not served: its namespace has not opted in');
      observer.serverGone(namespace, name);
      return null;
    }
    const parsed = parseRunaheadServer(raw);
    if (!parsed.ok) {
      // The API server's CEL refuses these; one stored before the CRD changed is left alone.
      log.warn({ namespace, server: name, problem: parsed.message }, 'invalid RunaheadServer left alone');
      observer.serverGone(namespace, name);
      return null;
    }
    const uid = raw.metadata?.uid ?? '';
    const pods = view
      .podsOfServer(namespace, name)
      .filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === uid))
      .flatMap((p) => observeServerPod(p) ?? []);
    const plan = planServer({
      server: serverRef(parsed.server),
      generation: raw.metadata?.generation ?? 0,
      status: raw.status,
      pods,
      services: view.servicesOfServer(namespace, name),
      ttftMs: await scrapeTtft(pods),
      now: this.clock(),
      defaults: this.deps.defaults,
    });
    const changed = !isDeepStrictEqual(withoutUndefined(plan.status), withoutUndefined(raw.status ?? {}));
    if (changed) await this.writeStatus(raw, namespace, name, plan.status);
    // After the write: a plan refused (409) is made again, and its restarts counted then, once.
    observer.status(namespace, name, parsed.server.spec.replicas, plan.status);
    for (const r of plan.restarted) observer.groupRestarted(namespace, name, r.group, r.reason);
    for (const action of plan.actions)
      try {
        await this.applyAction(namespace, name, action);
      } catch (err) {
        // No PodGroup, no pod: they would wait for it forever. Said on the server; retried with
        // backoff, so installing the scheduler's CRD or allowing it in the chart is enough.
        if (action.kind === 'createPodGroup' && isPodGroupUnavailable(err))
          await this.recordEvent(raw, namespace, name, {
            type: 'Warning',
            reason: Reason.ChildRejected,
            message: `could not create PodGroup ${action.object.metadata.name ?? ''}: ${apiErrorMessage(err)}${podGroupUnavailableHint(action.scheduler, action.object.apiVersion)}`,
          });
        throw err;
      }
    for (const e of plan.events) await this.recordEvent(raw, namespace, name, e);
    return (plan.status.readyReplicas ?? 0) > 0 ? TTFT_REFRESH_MS : null;
  }

  private async writeStatus(
    raw: RawServer,
    namespace: string,
    name: string,
    status: RunaheadServerStatus,
  ): Promise<void> {
    try {
      await this.deps.custom.replaceNamespacedCustomObjectStatus({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: SERVER_PLURAL,
        name,
        body: { ...raw, status },
        fieldManager: FIELD_MANAGER,
      });
    } catch (err) {
      if (isCode(err, 409))
        throw new ConflictError(`status of ${namespace}/${name} changed meanwhile; reconciling again`);
      if (isCode(err, 404)) return;
      throw err;
    }
  }

  private async applyAction(namespace: string, server: string, action: ServerAction): Promise<void> {
    const { core, custom, log } = this.deps;
    try {
      switch (action.kind) {
        case 'createService':
          await core.createNamespacedService({ namespace, body: action.object, fieldManager: FIELD_MANAGER });
          return;
        case 'createPodGroup':
          await createPodGroup(custom, namespace, action.scheduler, action.object);
          log.info({ namespace, server, podGroup: action.object.metadata.name }, 'created PodGroup');
          return;
        case 'deletePodGroup':
          try {
            await deletePodGroup(custom, namespace, action.scheduler, action.name);
          } catch (err) {
            // Not allowed (a chart from before servers had PodGroups grants create only): the group
            // still restarts; the PodGroup goes with the server (owner reference).
            if (!isCode(err, 403)) throw err;
            log.warn(
              { namespace, server, podGroup: action.name, err: apiErrorMessage(err) },
              'could not delete PodGroup',
            );
          }
          return;
        case 'createPod':
          await core.createNamespacedPod({ namespace, body: action.object, fieldManager: FIELD_MANAGER });
          log.info({ namespace, server, pod: action.object.metadata?.name }, 'created server pod');
          return;
        case 'deletePod':
          await deleteSeenPod(core, namespace, action.name, action.uid);
          log.info({ namespace, server, pod: action.name }, 'deleted server pod');
          return;
        case 'ungatePod':
          await liftGangGate(core, namespace, action.name, action.uid);
          return;
      }
    } catch (err) {
      if (goalReached(action.kind, err)) return;
      throw err;
    }
  }

  private async recordEvent(raw: RawServer, namespace: string, name: string, e: PlannedEvent): Promise<void> {
    await recordEvent(
      { apiVersion: API_VERSION, kind: SERVER_KIND, namespace, name, uid: raw.metadata?.uid },
      e,
      {
        core: this.deps.core,
        log: this.deps.log,
        logContext: { namespace, server: name },
        now: this.clock(),
      },
    );
  }
}

/** Status as compared: JSON-equal (undefined fields do not count). */
function withoutUndefined(x: unknown): unknown {
  return JSON.parse(JSON.stringify(x)) as unknown;
}
