// Faults end to end, on the same stack as jobs.test.ts (real API server, operator process, the test
// node agent running every rank as a `runahead worker` process): a rank's process killed in the
// middle of the prefill, a rank pod deleted, the operator restarted while a job runs, a model path
// that does not exist, and a job deleted while it runs — after which nothing may be left running.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { E2eCluster } from '../support/e2e.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';

jest.setTimeout(300_000);

/**
 * 2 ranks of the small synthetic model on a 2048-token prompt: loading takes a few seconds and the
 * prefill several more on this machine's CPUs, so there is time to hit a rank in the middle of it.
 */
function slowJob(
  name: string,
  extra: { backoffLimit?: number; ranks?: number; promptTokens?: number } = {},
): string {
  const ranks = extra.ranks ?? 2;
  return `apiVersion: runahead.dev/v1alpha1
kind: RunaheadJob
metadata:
  name: ${name}
spec:
  ranks: ${ranks}
  model:
    synthetic:
      preset: small
  dtype: float32
  prompt:
    syntheticTokens: ${extra.promptTokens ?? 2048}
  executionProvider: cpu
  threads: 1
  backoffLimit: ${extra.backoffLimit ?? 2}
`;
}

describe('faults, end to end', () => {
  let cluster: E2eCluster;
  beforeAll(async () => {
    cluster = await E2eCluster.start();
  }, 120_000);
  afterAll(async () => {
    await cluster.stop();
  });

  /** The agent's live pod of that name (its process runs). */
  const running = (name: string) =>
    cluster.agent.pods().find((p) => p.namespace === 'default' && p.name === name && p.running);

  const events = async (job: string, reason: string): Promise<string[]> => {
    const out = await cluster.kubectl([
      'get',
      'events',
      '--field-selector',
      `involvedObject.name=${job},reason=${reason}`,
      '-o',
      'jsonpath={range .items[*]}{.message}{"\\n"}{end}',
    ]);
    return out.split('\n').filter(Boolean);
  };

  it('a rank’s process killed mid-prefill: the group restarts and the job succeeds', async () => {
    // 4096 tokens: a prefill of several seconds, so that it is still under way when the test sees it.
    await cluster.apply(slowJob('kill-rank', { backoffLimit: 1, promptTokens: 4096 }));
    // Every rank serves once its model is loaded, and rank 0 then releases the prompt. Rank 1 idles
    // until then; once it has computed for half a second, the prefill is under way (it takes seconds).
    // Readiness as the agent's probe sees it: the job's RanksReady condition comes through the
    // operator, and on a busy machine a short prefill may be over before it is written.
    await eventually(
      'both ranks of kill-rank ready',
      () => ['kill-rank-0', 'kill-rank-1'].every((n) => running(n)?.ready),
      180_000,
      50,
    );
    const idle = cluster.agent.cpuSeconds('default', 'kill-rank-1');
    await eventually(
      'rank 1 of kill-rank to compute',
      () => cluster.agent.cpuSeconds('default', 'kill-rank-1') - idle >= 0.5,
      60_000,
      50,
    );
    const victim = running('kill-rank-1');
    expect(cluster.agent.signal('default', 'kill-rank-1', 'SIGKILL')).toBe(true);

    await cluster.wait('kill-rank', 'Complete', 240);
    const job = await cluster.job('kill-rank');
    expect(job.status).toMatchObject({ phase: 'Succeeded', restarts: 1 });
    expect(job.status!.ttftMs).toBeGreaterThan(0);
    // The killed process's pod ended with the kernel's code for SIGKILL, and the group restart was
    // reported with the rank that failed.
    expect(cluster.agent.pods().find((p) => p.uid === victim!.uid)?.exitCode).toBe(137);
    await eventuallyExpect(
      'the GroupRestarting event of kill-rank',
      () => events('kill-rank', 'GroupRestarting'),
      (restarts) => {
        expect(restarts).toHaveLength(1);
        expect(restarts[0]).toMatch(/rank 1\b.*restarting the rank group \(restart 1 of at most 1\)/);
      },
      30_000,
    );
  });

  it('a rank’s process killed with backoffLimit 0: the job fails with a condition naming the rank', async () => {
    await cluster.apply(slowJob('kill-no-retry', { backoffLimit: 0 }));
    await eventually('rank 1 of kill-no-retry to run', () => running('kill-no-retry-1'), 60_000);
    expect(cluster.agent.signal('default', 'kill-no-retry-1', 'SIGKILL')).toBe(true);

    await cluster.wait('kill-no-retry', 'Failed', 120);
    const failed = await cluster.condition('kill-no-retry', 'Failed');
    expect(failed).toMatchObject({ status: 'True', reason: 'BackoffLimitExceeded' });
    expect(failed!.message).toMatch(
      /^rank 1 \(pod kill-no-retry-1\) exited with code 137 .*the rank group was restarted 0 time\(s\), spec\.backoffLimit is 0$/s,
    );
    // The other rank's pod was stopped: nothing of the job runs any more.
    await eventually('no process of kill-no-retry', () => !running('kill-no-retry-0'), 30_000);
  });

  it('a rank pod deleted: the group restarts and the job succeeds', async () => {
    await cluster.apply(slowJob('delete-pod'));
    await eventually('rank 1 of delete-pod to run', () => running('delete-pod-1'), 60_000);
    // kubectl waits until the pod is gone: the agent stopped its process and finished the deletion.
    await cluster.kubectl(['delete', 'pod', 'delete-pod-1']);
    await cluster.wait('delete-pod', 'Complete', 240);
    const job = await cluster.job('delete-pod');
    expect(job.status?.phase).toBe('Succeeded');
    expect(job.status?.restarts).toBeGreaterThanOrEqual(1);
    await eventuallyExpect(
      'the GroupRestarting event of delete-pod',
      () => events('delete-pod', 'GroupRestarting'),
      (restarts) => {
        expect(restarts[0]).toMatch(/rank 1\b|delete-pod-1/);
      },
      30_000,
    );
  });

  it('the operator restarted mid-job: the new one takes the result the ranks left and completes the job', async () => {
    // 4096 tokens: seconds of prefill. The operator is stopped as soon as it has seen both rank pods
    // running (phase Running, written before the models have loaded) — not once RanksReady is
    // written: on a busy machine a short prefill can be over, and the job Succeeded, before that
    // condition is seen, and then nothing is left mid-job.
    await cluster.apply(slowJob('operator-restart', { promptTokens: 4096 }));
    await eventually(
      'operator-restart Running',
      async () => (await cluster.job('operator-restart')).status?.phase === 'Running',
      180_000,
      50,
    );
    await cluster.restartOperator(async () => {
      // While no operator runs, the ranks finish the prefill and exit; the job cannot know yet.
      await eventually(
        'the ranks of operator-restart to finish',
        () =>
          cluster.agent.pods().filter((p) => p.name.startsWith('operator-restart-') && p.exitCode === 0)
            .length === 2,
        120_000,
      );
      const job = await cluster.job('operator-restart');
      expect(job.status?.phase).toBe('Running');
    });
    await cluster.wait('operator-restart', 'Complete', 60);
    const job = await cluster.job('operator-restart');
    expect(job.status).toMatchObject({ phase: 'Succeeded', restarts: 0, contextLength: 4096 });
  });

  it('a model path that does not exist: the job fails at once with a ConfigurationError naming the path', async () => {
    await cluster.apply(`apiVersion: runahead.dev/v1alpha1
kind: RunaheadJob
metadata:
  name: missing-model
spec:
  ranks: 2
  model:
    checkpoint:
      volume:
        hostPath:
          path: /var/lib/runahead/models
      mountPath: /models
      path: llama3-no-such-model
  dtype: float32
  prompt:
    text: 'The quick brown fox'
  executionProvider: cpu
  threads: 1
`);
    await cluster.wait('missing-model', 'Failed', 120);
    const failed = await cluster.condition('missing-model', 'Failed');
    expect(failed).toMatchObject({ status: 'True', reason: 'ConfigurationError' });
    expect(failed!.message).toMatch(
      /^rank \d: model: checkpoint directory \S*\/llama3-no-such-model does not exist \(spec\.model\.checkpoint\.path\) \(not retried: a restart cannot fix a configuration error\)$/,
    );
    expect((await cluster.job('missing-model')).status?.restarts).toBe(0);
  });

  it('a running job deleted: its pods go, and no worker process is left', async () => {
    await cluster.apply(slowJob('delete-job', { ranks: 4 }));
    await eventually(
      'the 4 ranks of delete-job to run',
      () => [0, 1, 2, 3].every((r) => running(`delete-job-${r}`)),
      60_000,
    );
    const pids = cluster.agent
      .pods()
      .filter((p) => p.name.startsWith('delete-job-'))
      .map((p) => p.pid!);
    expect(pids).toHaveLength(4);
    await cluster.kubectl(['delete', 'runaheadjob', 'delete-job']);
    // Garbage collection deletes the pods (owner references); the agent stops their processes.
    await eventually(
      'delete-job’s pods to go',
      async () => (await cluster.pods('delete-job')).length === 0,
      60_000,
    );
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    await eventually(
      'delete-job’s Service and ConfigMap to go',
      async () =>
        (
          await cluster.kubectl([
            'get',
            'services,configmaps',
            '-l',
            'runahead.dev/job=delete-job',
            '-o',
            'name',
          ])
        ).trim() === '',
      60_000,
    );
  });

  it('after every job is deleted, nothing is left: no pods, no worker processes', async () => {
    const everPids = cluster.agent.pods().flatMap((p) => (p.pid === undefined ? [] : [p.pid]));
    await cluster.kubectl(['delete', 'runaheadjobs', '--all']);
    await eventually(
      'every rank pod to go',
      async () => (await cluster.kubectl(['get', 'pods', '-o', 'name'])).trim() === '',
      60_000,
    );
    expect(cluster.agent.liveProcesses()).toEqual([]);
    for (const pid of everPids) expect(isAlive(pid)).toBe(false);
    expect(cluster.agent.errors).toEqual([]);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
