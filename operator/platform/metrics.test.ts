import { describe, expect, it } from '@jest/globals';
import { register as globalRegistry } from 'prom-client';
import { METRIC_NAMES, OperatorMetrics, PROCESS_METRICS_PREFIX, type FinishedJob } from './metrics.ts';

/** The value of the sample `name{labels}` in a text exposition; undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = new Map(
      [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]),
    );
    if (got.size !== Object.keys(labels).length) continue;
    if (Object.entries(labels).every(([k, v]) => got.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

function seriesOf(text: string, name: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

const finished: FinishedJob = {
  uid: 'uid-1',
  namespace: 'team-a',
  job: 'prefill-8k',
  mode: 'runahead',
  rankCount: 2,
  ttftMs: 1500,
  ranks: [
    { rank: 0, computeMs: 700, waitMs: 0, sendMs: 120, criticalSendMs: 40, bytesSent: 4096 },
    { rank: 1, computeMs: 800, waitMs: 650, sendMs: 0, bytesSent: 0 },
  ],
  result: 'succeeded',
  reason: 'FirstTokenProduced',
};

describe('OperatorMetrics', () => {
  it('registers exactly the names of METRIC_NAMES, plus process metrics, in its own registry', async () => {
    const m = new OperatorMetrics();
    const names = (await m.registry.getMetricsAsJSON()).map((x) => x.name);
    const own = names.filter((n) => !n.startsWith(PROCESS_METRICS_PREFIX));
    expect(own.sort()).toEqual(Object.values(METRIC_NAMES).sort());
    expect(names).toContain(`${PROCESS_METRICS_PREFIX}process_cpu_seconds_total`);
    expect(names).toContain(`${PROCESS_METRICS_PREFIX}nodejs_eventloop_lag_seconds`);
    expect(await globalRegistry.metrics()).not.toContain('runahead_');
    // A second instance does not collide (each has its own registry).
    expect(() => new OperatorMetrics()).not.toThrow();
  });

  it('can leave out process metrics', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    expect(await m.text()).not.toContain(PROCESS_METRICS_PREFIX);
    expect(m.contentType).toMatch(/^text\/plain/);
  });

  it('counts reconciles by result and errors by reason, and times them', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    m.observeReconcile('success', 0.004);
    m.observeReconcile('success', 0.02);
    m.observeReconcile('requeue', 0.003);
    m.observeReconcile('error', 1.2);
    m.reconcileError('Conflict');
    const t = await m.text();
    expect(sample(t, 'runahead_reconcile_total', { result: 'success' })).toBe(2);
    expect(sample(t, 'runahead_reconcile_total', { result: 'requeue' })).toBe(1);
    expect(sample(t, 'runahead_reconcile_total', { result: 'error' })).toBe(1);
    expect(sample(t, 'runahead_reconcile_errors_total', { reason: 'Conflict' })).toBe(1);
    expect(sample(t, 'runahead_reconcile_duration_seconds_count')).toBe(4);
    expect(sample(t, 'runahead_reconcile_duration_seconds_bucket', { le: '0.005' })).toBe(2);
    expect(sample(t, 'runahead_reconcile_duration_seconds_sum')).toBeCloseTo(1.227, 6);
  });

  it('sets every phase from a full count, so a phase that emptied shows 0', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    expect(sample(await m.text(), 'runahead_jobs', { phase: 'Running' })).toBe(0);
    m.setJobPhases({ Running: 3, Pending: 1 });
    m.setJobPhases({ Succeeded: 4 });
    const t = await m.text();
    expect(
      ['Pending', 'Running', 'Succeeded', 'Failed', 'Suspended'].map((phase) =>
        sample(t, 'runahead_jobs', { phase }),
      ),
    ).toEqual([0, 0, 4, 0, 0]);
  });

  it('records a finished job: fleet histograms and counters, and per-job, per-rank gauges', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    m.recordFinishedJob(finished);
    const t = await m.text();
    expect(sample(t, 'runahead_ttft_seconds_count', { mode: 'runahead', ranks: '2' })).toBe(1);
    expect(sample(t, 'runahead_ttft_seconds_sum', { mode: 'runahead', ranks: '2' })).toBe(1.5);
    expect(sample(t, 'runahead_ttft_seconds_bucket', { mode: 'runahead', ranks: '2', le: '1' })).toBe(0);
    expect(sample(t, 'runahead_ttft_seconds_bucket', { mode: 'runahead', ranks: '2', le: '2.5' })).toBe(1);
    expect(sample(t, 'runahead_ttft_seconds_bucket', { mode: 'runahead', ranks: '2', le: '600' })).toBe(1);
    expect(sample(t, 'runahead_ttft_seconds_bucket', { mode: 'runahead', ranks: '2', le: '0.01' })).toBe(0);
    const job = { namespace: 'team-a', job: 'prefill-8k' };
    expect(sample(t, 'runahead_job_ttft_milliseconds', { ...job, mode: 'runahead', ranks: '2' })).toBe(1500);
    expect(sample(t, 'runahead_job_rank_milliseconds', { ...job, rank: '1', kind: 'wait' })).toBe(650);
    expect(sample(t, 'runahead_job_rank_milliseconds', { ...job, rank: '0', kind: 'send' })).toBe(120);
    expect(sample(t, 'runahead_job_rank_milliseconds', { ...job, rank: '0', kind: 'critical_send' })).toBe(
      40,
    );
    // Rank 1 reported no critical send time: no series rather than a 0 it did not report.
    expect(
      sample(t, 'runahead_job_rank_milliseconds', { ...job, rank: '1', kind: 'critical_send' }),
    ).toBeUndefined();
    expect(sample(t, 'runahead_rank_seconds_count', { mode: 'runahead', kind: 'critical_send' })).toBe(1);
    expect(sample(t, 'runahead_job_rank_kv_bytes_sent', { ...job, rank: '0' })).toBe(4096);
    expect(sample(t, 'runahead_rank_seconds_count', { mode: 'runahead', kind: 'compute' })).toBe(2);
    expect(sample(t, 'runahead_rank_seconds_sum', { mode: 'runahead', kind: 'compute' })).toBe(1.5);
    expect(sample(t, 'runahead_kv_bytes_sent_total', { mode: 'runahead' })).toBe(4096);
    expect(
      sample(t, 'runahead_jobs_finished_total', { result: 'succeeded', reason: 'FirstTokenProduced' }),
    ).toBe(1);
  });

  it('counts a job recorded twice once, but updates its gauges', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    m.recordFinishedJob(finished);
    m.recordFinishedJob({ ...finished, ttftMs: 1600 });
    const t = await m.text();
    expect(sample(t, 'runahead_ttft_seconds_count', { mode: 'runahead', ranks: '2' })).toBe(1);
    expect(
      sample(t, 'runahead_jobs_finished_total', { result: 'succeeded', reason: 'FirstTokenProduced' }),
    ).toBe(1);
    expect(sample(t, 'runahead_kv_bytes_sent_total', { mode: 'runahead' })).toBe(4096);
    expect(seriesOf(t, 'runahead_job_ttft_milliseconds')).toEqual([
      'runahead_job_ttft_milliseconds{namespace="team-a",job="prefill-8k",mode="runahead",ranks="2"} 1600',
    ]);
  });

  it('after a restart, restores gauges of jobs that finished before it without counting them again', async () => {
    const startedAt = new Date('2026-01-01T12:00:00Z');
    const m = new OperatorMetrics({ processMetrics: false, startedAt });
    m.recordFinishedJob({ ...finished, finishedAt: new Date('2026-01-01T11:59:00Z') });
    m.recordFinishedJob({
      ...finished,
      uid: 'uid-2',
      job: 'later',
      finishedAt: new Date('2026-01-01T12:01:00Z'),
    });
    const t = await m.text();
    expect(
      sample(t, 'runahead_job_ttft_milliseconds', {
        namespace: 'team-a',
        job: 'prefill-8k',
        mode: 'runahead',
        ranks: '2',
      }),
    ).toBe(1500);
    expect(sample(t, 'runahead_ttft_seconds_count', { mode: 'runahead', ranks: '2' })).toBe(1);
    expect(
      sample(t, 'runahead_jobs_finished_total', { result: 'succeeded', reason: 'FirstTokenProduced' }),
    ).toBe(1);
  });

  it('records a failed job without TTFT and with partial rank figures', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    m.recordFinishedJob({
      ...finished,
      ttftMs: undefined,
      ranks: [{ rank: 0, computeMs: 10 }, { rank: 1 }],
      result: 'failed',
      reason: 'RankFailed',
    });
    const t = await m.text();
    expect(seriesOf(t, 'runahead_job_ttft_milliseconds')).toEqual([]);
    expect(sample(t, 'runahead_ttft_seconds_count', { mode: 'runahead', ranks: '2' })).toBeUndefined();
    expect(seriesOf(t, 'runahead_job_rank_milliseconds')).toHaveLength(1);
    expect(sample(t, 'runahead_jobs_finished_total', { result: 'failed', reason: 'RankFailed' })).toBe(1);
  });

  it('forgetJob removes exactly that job’s series; counters keep its contribution', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    m.recordFinishedJob(finished);
    m.recordFinishedJob({ ...finished, uid: 'uid-2', job: 'other' });
    m.forgetJob('team-a', 'prefill-8k');
    const t = await m.text();
    for (const name of [
      'runahead_job_ttft_milliseconds',
      'runahead_job_rank_milliseconds',
      'runahead_job_rank_kv_bytes_sent',
    ]) {
      const series = seriesOf(t, name);
      expect(series.length).toBeGreaterThan(0);
      expect(series.every((s) => s.includes('job="other"'))).toBe(true);
    }
    expect(sample(t, 'runahead_ttft_seconds_count', { mode: 'runahead', ranks: '2' })).toBe(2);
    expect(m.trackedJobs).toBe(1);
    m.forgetJob('team-a', 'never-recorded');
  });

  it('keeps at most maxTrackedJobs jobs, dropping the oldest one’s series', async () => {
    const m = new OperatorMetrics({ processMetrics: false, maxTrackedJobs: 2 });
    for (const i of [1, 2, 3]) m.recordFinishedJob({ ...finished, uid: `uid-${i}`, job: `job-${i}` });
    expect(m.trackedJobs).toBe(2);
    const t = await m.text();
    expect(seriesOf(t, 'runahead_job_ttft_milliseconds').map((s) => /job="([^"]+)"/.exec(s)?.[1])).toEqual([
      'job-2',
      'job-3',
    ]);
    expect(sample(t, 'runahead_ttft_seconds_count', { mode: 'runahead', ranks: '2' })).toBe(3);
  });

  it('a job deleted and created again under its name replaces the old series', async () => {
    const m = new OperatorMetrics({ processMetrics: false, maxTrackedJobs: 2 });
    m.recordFinishedJob(finished);
    m.recordFinishedJob({ ...finished, uid: 'uid-new', ttftMs: 900 });
    m.recordFinishedJob({ ...finished, uid: 'uid-x', job: 'x' }); // evicts uid-1, whose series are gone already
    const t = await m.text();
    expect(
      sample(t, 'runahead_job_ttft_milliseconds', {
        namespace: 'team-a',
        job: 'prefill-8k',
        mode: 'runahead',
        ranks: '2',
      }),
    ).toBe(900);
  });

  it('leader, queue depth, restarts and informer restarts', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    let t = await m.text();
    expect(sample(t, 'runahead_is_leader')).toBe(0);
    expect(sample(t, 'runahead_workqueue_depth')).toBe(0);
    expect(sample(t, 'runahead_job_restarts_total')).toBe(0);
    m.setLeader(true);
    m.setWorkQueueDepth(7);
    m.jobRestarted();
    m.informerRestarted('pods');
    m.informerRestarted('pods');
    t = await m.text();
    expect(sample(t, 'runahead_is_leader')).toBe(1);
    expect(sample(t, 'runahead_workqueue_depth')).toBe(7);
    expect(sample(t, 'runahead_job_restarts_total')).toBe(1);
    expect(sample(t, 'runahead_informer_restarts_total', { resource: 'pods' })).toBe(2);
    let depth = 3;
    m.trackWorkQueueDepth(() => depth);
    expect(sample(await m.text(), 'runahead_workqueue_depth')).toBe(3);
    depth = 5;
    expect(sample(await m.text(), 'runahead_workqueue_depth')).toBe(5);
  });

  it('per-server gauges follow the status, TTFT quantiles only once there are some', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    const server = { namespace: 'team-a', server: 'chat' };
    m.setServer({ ...server, desired: 3, ready: 1, updated: 0 });
    let t = await m.text();
    expect(sample(t, 'runahead_server_groups_desired', server)).toBe(3);
    expect(sample(t, 'runahead_server_groups_ready', server)).toBe(1);
    expect(sample(t, 'runahead_server_groups_updated', server)).toBe(0);
    expect(seriesOf(t, 'runahead_server_ttft_milliseconds')).toEqual([]);
    m.setServer({ ...server, desired: 3, ready: 3, updated: 3, ttftMs: { p50: 120, p90: 300, p99: 950.5 } });
    t = await m.text();
    expect(sample(t, 'runahead_server_groups_ready', server)).toBe(3);
    expect(
      ['0.5', '0.9', '0.99'].map((quantile) =>
        sample(t, 'runahead_server_ttft_milliseconds', { ...server, quantile }),
      ),
    ).toEqual([120, 300, 950.5]);
  });

  it('counts group restarts by server and reason', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    m.serverGroupRestarted('team-a', 'chat', 'RankFailed');
    m.serverGroupRestarted('team-a', 'chat', 'RankFailed');
    m.serverGroupRestarted('team-a', 'chat', 'RankPodDeleted');
    const t = await m.text();
    const chat = { namespace: 'team-a', server: 'chat' };
    expect(sample(t, 'runahead_server_group_restarts_total', { ...chat, reason: 'RankFailed' })).toBe(2);
    expect(sample(t, 'runahead_server_group_restarts_total', { ...chat, reason: 'RankPodDeleted' })).toBe(1);
  });

  it('forgetServer removes exactly that server’s series', async () => {
    const m = new OperatorMetrics({ processMetrics: false });
    const ttftMs = { p50: 1, p90: 2, p99: 3 };
    for (const server of ['chat', 'other']) {
      m.setServer({ namespace: 'team-a', server, desired: 1, ready: 1, updated: 1, ttftMs });
      m.serverGroupRestarted('team-a', server, 'RankFailed');
    }
    m.forgetServer('team-a', 'chat');
    m.forgetServer('team-a', 'never-seen');
    const t = await m.text();
    for (const name of [
      'runahead_server_groups_desired',
      'runahead_server_groups_ready',
      'runahead_server_groups_updated',
      'runahead_server_ttft_milliseconds',
      'runahead_server_group_restarts_total',
    ]) {
      const series = seriesOf(t, name);
      expect([name, series.length > 0]).toEqual([name, true]);
      expect(series.every((s) => s.includes('server="other"'))).toBe(true);
    }
  });
});
