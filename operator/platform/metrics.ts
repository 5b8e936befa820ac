// The operator's Prometheus metrics, in a registry of their own (not prom-client's global one), so
// two operators in one test process, or a library that registers on the global registry, cannot
// collide. Names are fixed in METRIC_NAMES: the Grafana dashboard's tests check every query against it.
//
// Two kinds of job metrics, for two questions:
//  - histograms and counters (`runahead_ttft_seconds`, `runahead_kv_bytes_sent_total`, ...) answer
//    "how does the fleet do", aggregated over jobs with bounded labels (mode, ranks, kind);
//  - per-job gauges (`runahead_job_*`) answer "how did this job do, rank by rank" — no controller
//    surveyed reports per-rank latency (OPERATOR-NOTES.md). One series per finished job and rank,
//    removed when the job is deleted, so their number follows the jobs kept in the cluster.
//
// RunaheadServers get per-server gauges (`runahead_server_*`, labels namespace and server): groups
// desired, ready and updated, and the TTFT percentiles of status.ttftMs, set from the status each
// reconcile writes and removed when the server is deleted; group restarts count by reason. What the
// fronts serve (requests, queue time, TTFT histograms) is on the fronts' own /metrics
// (`runahead_serve_*`, cli/serve/serve-metrics.ts), which the chart's PodMonitor scrapes.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PHASES, type Phase } from '../../core/api/v1alpha1/names.ts';

export const METRIC_NAMES = {
  reconcileTotal: 'runahead_reconcile_total',
  reconcileErrorsTotal: 'runahead_reconcile_errors_total',
  reconcileDurationSeconds: 'runahead_reconcile_duration_seconds',
  jobs: 'runahead_jobs',
  ttftSeconds: 'runahead_ttft_seconds',
  jobTtftMilliseconds: 'runahead_job_ttft_milliseconds',
  jobRankMilliseconds: 'runahead_job_rank_milliseconds',
  jobRankKvBytesSent: 'runahead_job_rank_kv_bytes_sent',
  rankSeconds: 'runahead_rank_seconds',
  kvBytesSentTotal: 'runahead_kv_bytes_sent_total',
  jobRestartsTotal: 'runahead_job_restarts_total',
  jobsFinishedTotal: 'runahead_jobs_finished_total',
  isLeader: 'runahead_is_leader',
  workqueueDepth: 'runahead_workqueue_depth',
  informerRestartsTotal: 'runahead_informer_restarts_total',
  serverGroupsDesired: 'runahead_server_groups_desired',
  serverGroupsReady: 'runahead_server_groups_ready',
  serverGroupsUpdated: 'runahead_server_groups_updated',
  serverTtftMilliseconds: 'runahead_server_ttft_milliseconds',
  serverGroupRestartsTotal: 'runahead_server_group_restarts_total',
} as const;
export type MetricName = (typeof METRIC_NAMES)[keyof typeof METRIC_NAMES];

/** Prefix of prom-client's process metrics (CPU, memory, event loop lag, GC, handles). */
export const PROCESS_METRICS_PREFIX = 'runahead_operator_';

/**
 * TTFT and per-rank times, 10 ms to 10 min in 1-2.5-5 steps: a tiny synthetic model on CPU takes tens
 * of ms, a 7B model at 32k tokens on CPU takes minutes.
 */
export const LATENCY_BUCKETS_SECONDS = [
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 600,
] as const;

/** A reconcile is a few API calls: 1 ms (cache-only) to 10 s (a slow API server). */
export const RECONCILE_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

export type ReconcileResult = 'success' | 'error' | 'requeue';
/** `critical_send`: the part of a rank's send time on the path to the first token (core/critical-path.ts). */
export type RankTimeKind = 'compute' | 'wait' | 'send' | 'critical_send';
export type FinishedResult = 'succeeded' | 'failed';

/** One rank's figures (fields missing when the rank did not report them, e.g. it crashed). */
export interface RankTiming {
  readonly rank: number;
  readonly computeMs?: number | undefined;
  readonly waitMs?: number | undefined;
  readonly sendMs?: number | undefined;
  readonly criticalSendMs?: number | undefined;
  readonly bytesSent?: number | undefined;
}

export interface FinishedJob {
  /** metadata.uid: a job recorded twice (a second reconcile, a restarted operator) counts once. */
  readonly uid: string;
  readonly namespace: string;
  readonly job: string;
  /** spec.mode (runahead, tsp, single). */
  readonly mode: string;
  /** spec.ranks: the rank count (the `ranks` label). */
  readonly rankCount: number;
  /** Missing when the job failed before its first token. */
  readonly ttftMs?: number | undefined;
  readonly ranks: readonly RankTiming[];
  readonly result: FinishedResult;
  /** The terminal condition's reason (a constant CamelCase word, e.g. FirstTokenProduced, RankFailed). */
  readonly reason: string;
  /**
   * When the job finished (status.completionTime). A job that finished before this process started is
   * one a previous operator already counted: it gets its per-job gauges back, but adds nothing to
   * counters and histograms, so a restart does not count the whole history again.
   */
  readonly finishedAt?: Date | undefined;
}

export interface OperatorMetricsOptions {
  /** Also collect prom-client's process metrics (prefix runahead_operator_). Default true. */
  readonly processMetrics?: boolean;
  /**
   * Most jobs remembered (for idempotency) and shown in the per-job gauges. Default 5000; beyond it
   * the oldest recorded job is dropped from both. Deleted jobs leave through forgetJob first.
   */
  readonly maxTrackedJobs?: number;
  /** When this process started counting (default: now); see FinishedJob.finishedAt. */
  readonly startedAt?: Date;
}

const RANK_TIME_KINDS = [
  'compute',
  'wait',
  'send',
  'critical_send',
] as const satisfies readonly RankTimeKind[];

/** The server percentiles of status.ttftMs, as the `quantile` label says them. */
const SERVER_QUANTILES = [
  ['0.5', 'p50'],
  ['0.9', 'p90'],
  ['0.99', 'p99'],
] as const;

/** What the per-server gauges show: a RunaheadServer's status as the operator last wrote it. */
export interface ServerObservation {
  readonly namespace: string;
  readonly server: string;
  /** spec.replicas. */
  readonly desired: number;
  readonly ready: number;
  readonly updated: number;
  /** status.ttftMs; missing until a front has answered a request. */
  readonly ttftMs?: { readonly p50: number; readonly p90: number; readonly p99: number } | undefined;
}

interface JobSeries {
  /** The job object (uid) the series describe: a job deleted and created again under its name is another. */
  readonly uid: string;
  readonly ttft?: { namespace: string; job: string; mode: string; ranks: string };
  readonly ranks: { rank: string; kinds: RankTimeKind[]; bytes: boolean }[];
}

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly #startedAt: number;
  readonly #maxTrackedJobs: number;
  /** uid → namespace/job of the jobs recorded; Map order is recording order (oldest first, for eviction). */
  readonly #recorded = new Map<string, string>();
  /** namespace/job → the per-job series set for it, to remove exactly those. */
  readonly #series = new Map<string, JobSeries>();

  readonly #reconcileTotal: Counter<'result'>;
  readonly #reconcileErrors: Counter<'reason'>;
  readonly #reconcileDuration: Histogram;
  readonly #jobs: Gauge<'phase'>;
  readonly #ttft: Histogram<'mode' | 'ranks'>;
  readonly #jobTtft: Gauge<'namespace' | 'job' | 'mode' | 'ranks'>;
  readonly #jobRankMs: Gauge<'namespace' | 'job' | 'rank' | 'kind'>;
  readonly #jobRankBytes: Gauge<'namespace' | 'job' | 'rank'>;
  readonly #rankSeconds: Histogram<'mode' | 'kind'>;
  readonly #kvBytes: Counter<'mode'>;
  readonly #restarts: Counter;
  readonly #finished: Counter<'result' | 'reason'>;
  readonly #isLeader: Gauge;
  readonly #queueDepth: Gauge;
  readonly #informerRestarts: Counter<'resource'>;
  readonly #serverGroupsDesired: Gauge<'namespace' | 'server'>;
  readonly #serverGroupsReady: Gauge<'namespace' | 'server'>;
  readonly #serverGroupsUpdated: Gauge<'namespace' | 'server'>;
  readonly #serverTtft: Gauge<'namespace' | 'server' | 'quantile'>;
  readonly #serverRestarts: Counter<'namespace' | 'server' | 'reason'>;
  /** namespace/server → the restart reasons counted for it, to remove exactly those. */
  readonly #serverRestartReasons = new Map<string, Set<string>>();
  #readQueueDepth: (() => number) | null = null;

  constructor(options: OperatorMetricsOptions = {}) {
    this.#startedAt = (options.startedAt ?? new Date()).getTime();
    this.#maxTrackedJobs = options.maxTrackedJobs ?? 5000;
    const registers = [this.registry];
    this.#reconcileTotal = new Counter({
      name: METRIC_NAMES.reconcileTotal,
      help: 'Reconciles of RunaheadJobs, by result (success, error, requeue).',
      labelNames: ['result'],
      registers,
    });
    this.#reconcileErrors = new Counter({
      name: METRIC_NAMES.reconcileErrorsTotal,
      help: 'Reconcile errors, by reason (Conflict, ApiError, Invalid, ...).',
      labelNames: ['reason'],
      registers,
    });
    this.#reconcileDuration = new Histogram({
      name: METRIC_NAMES.reconcileDurationSeconds,
      help: 'Time one reconcile of a RunaheadJob takes.',
      buckets: [...RECONCILE_BUCKETS_SECONDS],
      registers,
    });
    this.#jobs = new Gauge({
      name: METRIC_NAMES.jobs,
      help: 'RunaheadJobs in the cluster, by phase.',
      labelNames: ['phase'],
      registers,
    });
    this.#ttft = new Histogram({
      name: METRIC_NAMES.ttftSeconds,
      help: 'Time to first token of finished RunaheadJobs, by mode and rank count.',
      labelNames: ['mode', 'ranks'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.#jobTtft = new Gauge({
      name: METRIC_NAMES.jobTtftMilliseconds,
      help: 'Time to first token of one finished RunaheadJob.',
      labelNames: ['namespace', 'job', 'mode', 'ranks'],
      registers,
    });
    this.#jobRankMs = new Gauge({
      name: METRIC_NAMES.jobRankMilliseconds,
      help: "Time one rank of a finished RunaheadJob spent computing, waiting for its predecessor's KV-cache, and sending (critical_send: the part of it on the path to the first token).",
      labelNames: ['namespace', 'job', 'rank', 'kind'],
      registers,
    });
    this.#jobRankBytes = new Gauge({
      name: METRIC_NAMES.jobRankKvBytesSent,
      help: 'KV-cache bytes one rank of a finished RunaheadJob sent to its successor.',
      labelNames: ['namespace', 'job', 'rank'],
      registers,
    });
    this.#rankSeconds = new Histogram({
      name: METRIC_NAMES.rankSeconds,
      help: 'Per-rank compute, wait, send and critical send time of finished RunaheadJobs, by mode.',
      labelNames: ['mode', 'kind'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.#kvBytes = new Counter({
      name: METRIC_NAMES.kvBytesSentTotal,
      help: 'KV-cache bytes sent between ranks of finished RunaheadJobs, by mode.',
      labelNames: ['mode'],
      registers,
    });
    this.#restarts = new Counter({
      name: METRIC_NAMES.jobRestartsTotal,
      help: 'Restarts of the rank group of a RunaheadJob.',
      registers,
    });
    this.#finished = new Counter({
      name: METRIC_NAMES.jobsFinishedTotal,
      help: 'RunaheadJobs that finished, by result (succeeded, failed) and reason.',
      labelNames: ['result', 'reason'],
      registers,
    });
    this.#isLeader = new Gauge({
      name: METRIC_NAMES.isLeader,
      help: 'Whether this replica is the leader (1) and reconciles, or a standby (0).',
      registers,
    });
    const readDepth = (): number | null => this.#readQueueDepth?.() ?? null;
    this.#queueDepth = new Gauge({
      name: METRIC_NAMES.workqueueDepth,
      help: 'Keys waiting in the reconcile work queue.',
      registers,
      collect() {
        const depth = readDepth();
        if (depth !== null) this.set(depth);
      },
    });
    this.#informerRestarts = new Counter({
      name: METRIC_NAMES.informerRestartsTotal,
      help: 'Restarts of an informer after its watch or list failed, by resource.',
      labelNames: ['resource'],
      registers,
    });
    const perServer = ['namespace', 'server'] as const;
    this.#serverGroupsDesired = new Gauge({
      name: METRIC_NAMES.serverGroupsDesired,
      help: 'Rank groups a RunaheadServer asks for (spec.replicas).',
      labelNames: perServer,
      registers,
    });
    this.#serverGroupsReady = new Gauge({
      name: METRIC_NAMES.serverGroupsReady,
      help: 'Rank groups of a RunaheadServer that serve (every rank pod and the front ready).',
      labelNames: perServer,
      registers,
    });
    this.#serverGroupsUpdated = new Gauge({
      name: METRIC_NAMES.serverGroupsUpdated,
      help: 'Ready rank groups of a RunaheadServer that run its current spec revision.',
      labelNames: perServer,
      registers,
    });
    this.#serverTtft = new Gauge({
      name: METRIC_NAMES.serverTtftMilliseconds,
      help: "A RunaheadServer's time to first token over its fronts, by quantile (status.ttftMs).",
      labelNames: [...perServer, 'quantile'],
      registers,
    });
    this.#serverRestarts = new Counter({
      name: METRIC_NAMES.serverGroupRestartsTotal,
      help: 'Restarts of a rank group of a RunaheadServer, by reason (RankFailed, RankPodDeleted).',
      labelNames: [...perServer, 'reason'],
      registers,
    });
    this.#isLeader.set(0);
    this.#queueDepth.set(0);
    this.#restarts.inc(0);
    this.setJobPhases({});
    if (options.processMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry, prefix: PROCESS_METRICS_PREFIX });
    }
  }

  /** Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  observeReconcile(result: ReconcileResult, seconds: number): void {
    this.#reconcileTotal.inc({ result });
    this.#reconcileDuration.observe(seconds);
  }

  /** `reason`: a constant word from a small set (label cardinality), never an error message. */
  reconcileError(reason: string): void {
    this.#reconcileErrors.inc({ reason });
  }

  /** Sets every phase from a full count: phases missing from `counts` show 0, not their last value. */
  setJobPhases(counts: Partial<Record<Phase, number>>): void {
    for (const phase of PHASES) this.#jobs.set({ phase }, counts[phase] ?? 0);
  }

  jobRestarted(): void {
    this.#restarts.inc();
  }

  setLeader(leading: boolean): void {
    this.#isLeader.set(leading ? 1 : 0);
  }

  setWorkQueueDepth(depth: number): void {
    this.#queueDepth.set(depth);
  }

  /** Reads the depth at each scrape instead (e.g. `() => queue.depth`). */
  trackWorkQueueDepth(read: () => number): void {
    this.#readQueueDepth = read;
  }

  /** `resource`: the informer's resource (e.g. runaheadjobs, pods). */
  informerRestarted(resource: string): void {
    this.#informerRestarts.inc({ resource });
  }

  /** Sets a server's gauges from the status the operator wrote (or found already written). */
  setServer(s: ServerObservation): void {
    const labels = { namespace: s.namespace, server: s.server };
    this.#serverGroupsDesired.set(labels, s.desired);
    this.#serverGroupsReady.set(labels, s.ready);
    this.#serverGroupsUpdated.set(labels, s.updated);
    for (const [quantile, key] of SERVER_QUANTILES)
      if (s.ttftMs) this.#serverTtft.set({ ...labels, quantile }, s.ttftMs[key]);
      else this.#serverTtft.remove({ ...labels, quantile });
  }

  /** `reason`: the restart event's reason (RankFailed, RankPodDeleted). */
  serverGroupRestarted(namespace: string, server: string, reason: string): void {
    const key = `${namespace}/${server}`;
    const reasons = this.#serverRestartReasons.get(key) ?? new Set<string>();
    reasons.add(reason);
    this.#serverRestartReasons.set(key, reasons);
    this.#serverRestarts.inc({ namespace, server, reason });
  }

  /** Removes every series of a server that is gone (deleted, or no longer served). */
  forgetServer(namespace: string, server: string): void {
    const labels = { namespace, server };
    this.#serverGroupsDesired.remove(labels);
    this.#serverGroupsReady.remove(labels);
    this.#serverGroupsUpdated.remove(labels);
    for (const [quantile] of SERVER_QUANTILES) this.#serverTtft.remove({ ...labels, quantile });
    const key = `${namespace}/${server}`;
    for (const reason of this.#serverRestartReasons.get(key) ?? [])
      this.#serverRestarts.remove({ ...labels, reason });
    this.#serverRestartReasons.delete(key);
  }

  /**
   * Records a finished job: its per-job gauges, and (once per uid, and only when it finished while
   * this process ran) the fleet counters and histograms. Safe to call on every reconcile of it.
   */
  recordFinishedJob(job: FinishedJob): void {
    const jobKey = `${job.namespace}/${job.job}`;
    const firstTime = !this.#recorded.has(job.uid);
    if (firstTime) {
      this.#recorded.set(job.uid, jobKey);
      this.#evictBeyondLimit();
    }
    this.#setJobGauges(jobKey, job);
    const finishedBefore = job.finishedAt !== undefined && job.finishedAt.getTime() < this.#startedAt;
    if (!firstTime || finishedBefore) return;

    const ranks = String(job.rankCount);
    this.#finished.inc({ result: job.result, reason: job.reason });
    if (job.ttftMs !== undefined) this.#ttft.observe({ mode: job.mode, ranks }, job.ttftMs / 1000);
    let bytes = 0;
    for (const r of job.ranks) {
      for (const kind of RANK_TIME_KINDS) {
        const ms = rankMs(r, kind);
        if (ms !== undefined) this.#rankSeconds.observe({ mode: job.mode, kind }, ms / 1000);
      }
      bytes += r.bytesSent ?? 0;
    }
    this.#kvBytes.inc({ mode: job.mode }, bytes);
  }

  /** Removes the per-job series of a deleted job (counters and histograms keep its contribution). */
  forgetJob(namespace: string, job: string): void {
    const jobKey = `${namespace}/${job}`;
    this.#removeJobGauges(jobKey);
    for (const [uid, key] of this.#recorded) if (key === jobKey) this.#recorded.delete(uid);
  }

  /** Jobs remembered for idempotency (for tests and debugging). */
  get trackedJobs(): number {
    return this.#recorded.size;
  }

  #setJobGauges(jobKey: string, job: FinishedJob): void {
    // A job recorded again may report more (a rank that reported late): replace its series.
    this.#removeJobGauges(jobKey);
    const { namespace } = job;
    const name = job.job;
    let ttft: JobSeries['ttft'];
    if (job.ttftMs !== undefined) {
      ttft = { namespace, job: name, mode: job.mode, ranks: String(job.rankCount) };
      this.#jobTtft.set(ttft, job.ttftMs);
    }
    const ranks: JobSeries['ranks'] = [];
    for (const r of job.ranks) {
      const rank = String(r.rank);
      const kinds: RankTimeKind[] = [];
      for (const kind of RANK_TIME_KINDS) {
        const ms = rankMs(r, kind);
        if (ms === undefined) continue;
        this.#jobRankMs.set({ namespace, job: name, rank, kind }, ms);
        kinds.push(kind);
      }
      if (r.bytesSent !== undefined) this.#jobRankBytes.set({ namespace, job: name, rank }, r.bytesSent);
      ranks.push({ rank, kinds, bytes: r.bytesSent !== undefined });
    }
    this.#series.set(jobKey, ttft ? { uid: job.uid, ttft, ranks } : { uid: job.uid, ranks });
  }

  #removeJobGauges(jobKey: string): void {
    const series = this.#series.get(jobKey);
    if (!series) return;
    this.#series.delete(jobKey);
    const slash = jobKey.indexOf('/');
    const namespace = jobKey.slice(0, slash);
    const job = jobKey.slice(slash + 1);
    if (series.ttft) this.#jobTtft.remove(series.ttft);
    for (const { rank, kinds, bytes } of series.ranks) {
      for (const kind of kinds) this.#jobRankMs.remove({ namespace, job, rank, kind });
      if (bytes) this.#jobRankBytes.remove({ namespace, job, rank });
    }
  }

  #evictBeyondLimit(): void {
    while (this.#recorded.size > this.#maxTrackedJobs) {
      const oldest = this.#recorded.entries().next();
      if (oldest.done) return;
      const [uid, jobKey] = oldest.value;
      this.#recorded.delete(uid);
      if (this.#series.get(jobKey)?.uid === uid) this.#removeJobGauges(jobKey);
    }
  }
}

function rankMs(r: RankTiming, kind: RankTimeKind): number | undefined {
  switch (kind) {
    case 'compute':
      return r.computeMs;
    case 'wait':
      return r.waitMs;
    case 'send':
      return r.sendMs;
    case 'critical_send':
      return r.criticalSendMs;
  }
}
