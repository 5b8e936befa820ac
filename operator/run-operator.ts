// The operator process: HTTP (metrics, probes, dashboard) from the start, then — once this
// replica holds the Lease — the controller. Losing the Lease ends the process (as controller-runtime
// does): a replica that may have missed writes must not act on its caches; the Deployment restarts
// it as a fresh candidate. SIGTERM/SIGINT shut down gracefully: stop taking work, let reconciles in
// flight finish, release the Lease so another replica takes over at once, close the server.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { KubeConfig } from '@kubernetes/client-node';
import { parseRunaheadJob, type RunaheadJob } from '../core/api/v1alpha1/runahead-job.ts';
import { parseRunaheadServer, type RunaheadServer } from '../core/api/v1alpha1/runahead-server.ts';
import { logger } from '../core/log.ts';
import { Controller } from './controller.ts';
import { ServerController } from './server-controller.ts';
import { dashboardRoutes } from './dashboard/routes.ts';
import { HttpServer } from './platform/http-server.ts';
import { LeaderElector } from './platform/leader-election.ts';
import { OperatorMetrics } from './platform/metrics.ts';
import { imageUnder } from './policies/image-policy.ts';
import type { NamespaceMode } from './policies/namespace-policy.ts';

export interface OperatorConfig {
  readonly kubeconfig?: string | undefined;
  readonly namespace?: string | undefined;
  readonly leaderElection: boolean;
  readonly leaderElectionNamespace?: string | undefined;
  readonly leaseName: string;
  /** Seconds. */
  readonly leaseDuration: number;
  readonly renewDeadline: number;
  readonly retryPeriod: number;
  /** host:port; port 0 picks a free one (tests). */
  readonly metricsAddress: string;
  readonly workerImage: string;
  readonly clusterDomain: string;
  /** Directories a job's hostPath may be under (empty: none). */
  readonly allowedHostPaths: readonly string[];
  /** Image prefixes a rank's image must start with (empty: any image). */
  readonly allowedImagePrefixes: readonly string[];
  /** Pass the jobs' tolerations / priorityClassName through to their pods (else: PolicyViolation). */
  readonly allowTolerations: boolean;
  readonly allowPriorityClass: boolean;
  /** `all`, or only namespaces labelled runahead.dev/enabled=true. */
  readonly namespaces: NamespaceMode;
  /** The gang's gate waits until the group's GPUs are free somewhere (needs list/watch of nodes). */
  readonly gangCapacityCheck: boolean;
  readonly concurrency: number;
  readonly identity?: string | undefined;
}

export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else if (process.env['KUBERNETES_SERVICE_HOST']) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/** Runs until a signal or a lost Lease; resolves with the exit code. */
export async function runOperator(config: OperatorConfig): Promise<number> {
  const log = logger('operator');
  const kubeConfig = loadKubeConfig(config.kubeconfig);
  const metrics = new OperatorMetrics();
  const defaults = {
    workerImage: config.workerImage,
    clusterDomain: config.clusterDomain,
    hostPathPolicy: { allowedHostPaths: config.allowedHostPaths },
    imagePolicy: { allowedImagePrefixes: config.allowedImagePrefixes },
    passThroughPolicy: {
      allowTolerations: config.allowTolerations,
      allowPriorityClass: config.allowPriorityClass,
    },
    namespacePolicy: { namespaces: config.namespaces },
    gangCapacityCheck: config.gangCapacityCheck,
  };
  const controller = new Controller({
    kubeConfig,
    namespace: config.namespace,
    defaults,
    metrics,
    concurrency: config.concurrency,
  });
  // RunaheadServers: their own informers and queue, the same leader, defaults and policies' config.
  const servers = new ServerController({
    kubeConfig,
    namespace: config.namespace,
    defaults,
    metrics,
    concurrency: config.concurrency,
  });
  const identity = config.identity ?? process.env['POD_NAME'] ?? `${hostname()}_${randomUUID().slice(0, 8)}`;
  let leading = !config.leaderElection;
  let shuttingDown = false;

  const [host, port] = splitHostPort(config.metricsAddress);
  const http = await HttpServer.start({
    host,
    port: Number(port),
    metrics,
    liveness: [{ name: 'informers', check: () => controller.healthy && servers.healthy }],
    // A standby replica is ready (it serves metrics and the dashboard of nothing); the leader once
    // its caches are synced.
    readiness: [{ name: 'caches', check: () => !leading || (controller.synced && servers.synced) }],
  });
  const jobs = (): RunaheadJob[] =>
    controller.jobs
      .list()
      .map((j) => parseRunaheadJob(j))
      .flatMap((r) => (r.ok ? [r.job] : []));
  const listServers = (): RunaheadServer[] =>
    servers.servers
      .list()
      .map((s) => parseRunaheadServer(s))
      .flatMap((r) => (r.ok ? [r.server] : []));
  for (const route of dashboardRoutes(jobs, Date.now, listServers)) http.addRoute(route.path, route.handler);
  log.info(
    {
      address: `${host}:${http.port}`,
      identity,
      namespace: config.namespace ?? '(all)',
      namespaces: config.namespaces,
    },
    'operator serving',
  );
  const prefixes = config.allowedImagePrefixes;
  if (prefixes.length > 0 && !prefixes.some((p) => imageUnder(config.workerImage, p)))
    log.warn(
      { workerImage: config.workerImage, allowedImagePrefixes: prefixes },
      '--worker-image is not under --allowed-image-prefixes: jobs that name no image will fail (PolicyViolation)',
    );

  let exitCode = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  const startController = () => {
    Promise.all([controller.start(), servers.start()]).catch((err: unknown) => {
      log.error({ err }, 'controller failed to start');
      exitCode = 1;
      resolveDone();
    });
  };

  let elector: LeaderElector | null = null;
  if (config.leaderElection) {
    const namespace = config.leaderElectionNamespace ?? process.env['POD_NAMESPACE'] ?? 'default';
    elector = new LeaderElector({
      kubeConfig,
      leaseName: config.leaseName,
      namespace,
      identity,
      leaseDurationMs: config.leaseDuration * 1000,
      renewDeadlineMs: config.renewDeadline * 1000,
      retryPeriodMs: config.retryPeriod * 1000,
      onStartedLeading: () => {
        leading = true;
        metrics.setLeader(true);
        log.info(
          { identity, lease: `${namespace}/${config.leaseName}` },
          'became the leader; starting the controller',
        );
        startController();
      },
      onStoppedLeading: () => {
        metrics.setLeader(false);
        // Our own release at shutdown also ends leadership; only a Lease lost while working is an error.
        if (leading && !shuttingDown) {
          log.error({ identity }, 'lost the lease; exiting so that only the leader acts');
          exitCode = 1;
        }
        leading = false;
        resolveDone();
      },
      onNewLeader: (leader) => {
        log.info({ leader }, 'leader observed');
      },
    });
    elector.start();
  } else {
    metrics.setLeader(true);
    startController();
  }

  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down');
    resolveDone();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  await done;
  shuttingDown = true;
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);

  await Promise.all([controller.stop(), servers.stop()]).catch((err: unknown) => {
    log.error({ err }, 'controller stop failed');
  });
  if (elector)
    await elector.release().catch((err: unknown) => {
      log.error({ err }, 'lease release failed');
    });
  await http.close();
  log.info({ exitCode }, 'operator stopped');
  return exitCode;
}

function splitHostPort(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i) || '0.0.0.0', address.slice(i + 1)];
}
