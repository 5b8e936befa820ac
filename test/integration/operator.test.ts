// The operator on a real API server (etcd + kube-apiserver + kube-controller-manager for garbage
// collection), run as a real process with the chart's ServiceAccount — so passing here also proves
// the chart's RBAC sufficient. No kubelet exists: the test plays it, moving pods through their phases
// by writing pod status (test/support/pod-status.ts); test/e2e runs real workers.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { encodeTerminationMessage, type RunOutcome } from '../../core/api/termination-message.ts';
import { GROUP, LABEL_ATTEMPT, PLURAL, VERSION } from '../../core/api/v1alpha1/names.ts';
import type { RunaheadJobSpecInput, RunaheadJobStatus } from '../../core/api/v1alpha1/runahead-job.ts';
import { ConflictError, Reconciler } from '../../operator/reconciler.ts';
import { DEFAULT_OPERATOR_DEFAULTS } from '../../operator/desired-children.ts';
import { logger } from '../../core/log.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { createTestJob } from '../support/test-jobs.ts';
import { chartIdentity } from '../support/chart-rbac.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';
import { repoPath } from '../support/operator.ts';
import { OperatorProcess } from '../support/operator-process.ts';
import { markRunning, markTerminated } from '../support/pod-status.ts';

interface Job {
  metadata: { name: string; namespace: string; uid: string; resourceVersion: string };
  spec: Record<string, unknown>;
  status?: RunaheadJobStatus;
}

let cp: ControlPlane;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let operatorKubeconfig: string;
let leaseNamespace: string;

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: true, crds: [repoPath('crds')] });
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  const identity = await chartIdentity(cp);
  operatorKubeconfig = identity.kubeconfigPath;
  leaseNamespace = identity.namespace;
}, 180_000);

afterAll(async () => {
  await cp.stop();
});

async function namespace(name: string): Promise<string> {
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

async function createJob(ns: string, name: string, spec: Partial<RunaheadJobSpecInput> = {}): Promise<Job> {
  return (await createTestJob(custom, ns, name, spec)) as Job;
}

async function getJob(ns: string, name: string): Promise<Job | null> {
  try {
    return (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: PLURAL,
      name,
    })) as Job;
  } catch {
    return null;
  }
}

async function patchSpec(ns: string, name: string, spec: Record<string, unknown>): Promise<void> {
  await cp.kubectl(['patch', 'runaheadjob', name, '-n', ns, '--type=merge', '-p', JSON.stringify({ spec })]);
}

async function pods(ns: string, job: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `runahead.dev/job=${job}` });
  return list.items.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
}

/** Waits until the job's status satisfies `ok`; returns it. */
function jobStatus(
  ns: string,
  name: string,
  what: string,
  ok: (s: RunaheadJobStatus) => boolean,
  timeoutMs = 20_000,
) {
  return eventually(
    `${ns}/${name}: ${what}`,
    async () => {
      const s = (await getJob(ns, name))?.status;
      return s && ok(s) ? s : null;
    },
    timeoutMs,
    50,
  );
}

const condition = (s: RunaheadJobStatus, type: string) => s.conditions?.find((c) => c.type === type);

async function events(ns: string, job: string): Promise<{ reason: string; message: string }[]> {
  const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${job}` });
  return list.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '' }));
}

async function eventReasons(ns: string, job: string): Promise<string[]> {
  return (await events(ns, job)).map((e) => e.reason);
}

function outcome(boundaries: number[]): RunOutcome {
  return {
    mode: 'runahead',
    partition: 'even',
    ttftMs: 123.4,
    contextLength: boundaries.at(-1)!,
    boundaries,
    firstToken: 42,
    firstTokenText: ' fox',
    tokens: [42],
    text: ' fox',
    slotMs: 2,
    ranks: boundaries.slice(1).map((end, rank) => ({
      rank,
      chunk: [boundaries[rank]!, end] as [number, number],
      computeMs: 80 - rank * 10,
      waitMs: rank * 5,
      sendMs: 3,
      bytesSent: 4096,
      bytesReceived: rank * 4096,
      peakRssBytes: 1 << 26,
      startMs: 0,
      endMs: 120,
      timeline: 'cccccwwccc',
    })),
  };
}

/** Every rank ends well: rank 0 with the result, the others with their own short report. */
async function finishRun(ns: string, job: string, boundaries: number[]): Promise<void> {
  for (const pod of (await pods(ns, job)).reverse()) {
    const rank = Number(pod.metadata!.labels!['runahead.dev/rank']);
    const message =
      rank === 0
        ? encodeTerminationMessage({ v: 1, ok: true, rank: 0, result: outcome(boundaries) })
        : encodeTerminationMessage({ v: 1, ok: true, rank });
    await markTerminated(core, pod, 0, message);
  }
}

describe('the operator, one replica', () => {
  let op: OperatorProcess;
  let ns: string;

  beforeAll(async () => {
    ns = await namespace('op-main');
    op = await OperatorProcess.start({
      kubeconfig: operatorKubeconfig,
      namespace: ns,
      leaderElection: true,
      leaseNamespace,
      identity: 'main',
    });
  }, 60_000);

  afterAll(async () => {
    expect(await op.stop()).toBe(0);
  });

  test('a job becomes a headless Service, a ConfigMap and rank-ordered pods, then Succeeded with TTFT', async () => {
    await createJob(ns, 'demo', { ranks: 3, prompt: { syntheticTokens: 96 } });
    const created = await eventually('3 rank pods', async () =>
      (await pods(ns, 'demo')).length === 3 ? pods(ns, 'demo') : null,
    );

    // Rank order: created one after another, rank 0 first.
    const versions = created.map((p) => Number(p.metadata!.resourceVersion));
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    const p1 = created[1]!;
    expect(p1.metadata!.ownerReferences).toEqual([
      expect.objectContaining({
        kind: 'RunaheadJob',
        name: 'demo',
        controller: true,
        blockOwnerDeletion: true,
      }),
    ]);
    expect(p1.metadata!.labels).toMatchObject({
      'runahead.dev/job': 'demo',
      'runahead.dev/rank': '1',
      'runahead.dev/attempt': '0',
    });
    expect(p1.spec).toMatchObject({
      hostname: 'demo-1',
      subdomain: 'demo-ranks',
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
    });
    const env = Object.fromEntries(
      p1.spec!.containers[0]!.env!.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
    );
    expect(env).toMatchObject({
      RUNAHEAD_RANK: '1',
      RUNAHEAD_WORLD_SIZE: '3',
      RUNAHEAD_PREDECESSOR: 'demo-0.demo-ranks.op-main.svc.cluster.local:50051',
      RUNAHEAD_SUCCESSOR: 'demo-2.demo-ranks.op-main.svc.cluster.local:50051',
    });
    expect(env['RUNAHEAD_PEERS']?.split(',')).toHaveLength(3);
    const container = p1.spec!.containers[0]!;
    expect(container.args?.slice(0, 3)).toEqual(['worker', '--model', 'synthetic:tiny']);
    expect(container.readinessProbe?.grpc?.port).toBe(50051);
    expect(container.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(p1.spec!.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(container.terminationMessagePath).toBe('/dev/termination-log');

    const svc = await core.readNamespacedService({ namespace: ns, name: 'demo-ranks' });
    expect(svc.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    const cm = await core.readNamespacedConfigMap({ namespace: ns, name: 'demo-shared' });
    expect(cm.data?.['peers']?.split('\n')).toEqual(env['RUNAHEAD_PEERS']?.split(','));

    const pending = await jobStatus(
      ns,
      'demo',
      'Pending with the planned split',
      (s) => s.phase === 'Pending',
    );
    expect(pending.boundaries).toEqual([0, 32, 64, 96]);

    for (const pod of created) await markRunning(core, pod, false);
    const running = await jobStatus(ns, 'demo', 'Running', (s) => s.phase === 'Running');
    expect(condition(running, 'RanksReady')).toMatchObject({
      status: 'False',
      reason: 'WaitingForRanks',
      message: '0 of 3 rank(s) ready',
    });
    for (const pod of created) await markRunning(core, pod, true);
    await jobStatus(ns, 'demo', 'RanksReady', (s) => condition(s, 'RanksReady')?.status === 'True');

    await finishRun(ns, 'demo', [0, 32, 64, 96]);
    const done = await jobStatus(ns, 'demo', 'Succeeded', (s) => s.phase === 'Succeeded');
    expect(done).toMatchObject({
      ttftMs: 123.4,
      firstToken: 42,
      firstTokenText: ' fox',
      contextLength: 96,
      restarts: 0,
    });
    expect(done.completionTime).toBeDefined();
    expect(done.ranks?.map((r) => [r.rank, r.chunk, r.computeMs, r.timeline])).toEqual([
      [0, [0, 32], 80, 'cccccwwccc'],
      [1, [32, 64], 70, 'cccccwwccc'],
      [2, [64, 96], 60, 'cccccwwccc'],
    ]);
    expect(condition(done, 'Complete')).toMatchObject({ status: 'True', reason: 'FirstTokenProduced' });
    await eventuallyExpect(
      'milestone events',
      () => eventReasons(ns, 'demo'),
      (reasons) => {
        expect(reasons).toEqual(
          expect.arrayContaining(['PodsCreated', 'AllRanksReady', 'FirstTokenProduced']),
        );
      },
    );

    const table = await cp.kubectl(['get', 'runaheadjobs', '-n', ns]);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+PHASE\s+RANKS\s+MODE\s+TOKENS\s+TTFT-MS\s+AGE$/);
    expect(table).toMatch(/demo\s+Succeeded\s+3\s+runahead\s+96\s+123\.4\s+\d+s/);

    await eventually(
      'TTFT in the metrics',
      async () =>
        (await op.metric(
          `runahead_job_ttft_milliseconds{namespace="${ns}",job="demo",mode="runahead",ranks="3"}`,
        )) === 123.4,
    );
    expect(await op.metric('runahead_is_leader')).toBe(1);
    const dashboard = await op.get('/');
    expect(dashboard.status).toBe(200);
    expect(dashboard.body).toContain('demo');
  }, 60_000);

  test('a failed rank restarts the whole group; past backoffLimit the job fails naming the rank', async () => {
    await createJob(ns, 'flaky', { backoffLimit: 1 });
    const first = await eventually('2 rank pods', async () =>
      (await pods(ns, 'flaky')).length === 2 ? pods(ns, 'flaky') : null,
    );
    for (const pod of first) await markRunning(core, pod, true);
    await markTerminated(
      core,
      first[1]!,
      1,
      encodeTerminationMessage({
        v: 1,
        ok: false,
        rank: 1,
        retriable: true,
        error: 'rank 1: KV stream from rank 0 broke: read ECONNRESET',
      }),
    );
    await jobStatus(ns, 'flaky', 'one restart', (s) => s.restarts === 1);
    // The RanksReady condition says why only until the next reconcile, which may come before the
    // test reads it; the GroupRestarting event keeps the same message.
    await eventuallyExpect(
      'the GroupRestarting event',
      async () => (await events(ns, 'flaky')).filter((e) => e.reason === 'GroupRestarting'),
      (restarts) => {
        expect(restarts.map((e) => e.message)).toEqual([
          expect.stringMatching(/read ECONNRESET; restarting the rank group \(restart 1 of at most 1\)/),
        ]);
      },
      20_000,
    );
    const second = await eventually('a fresh group of attempt 1', async () => {
      const now = await pods(ns, 'flaky');
      return now.length === 2 && now.every((p) => p.metadata!.labels![LABEL_ATTEMPT] === '1') ? now : null;
    });
    const firstUids = new Set(first.map((p) => p.metadata!.uid));
    expect(second.some((p) => firstUids.has(p.metadata!.uid))).toBe(false);

    await markTerminated(core, second[0]!, 137, '');
    const failed = await jobStatus(ns, 'flaky', 'Failed', (s) => s.phase === 'Failed');
    expect(condition(failed, 'Failed')).toMatchObject({ reason: 'BackoffLimitExceeded' });
    expect(condition(failed, 'Failed')?.message).toBe(
      'rank 0 (pod flaky-0) exited with code 137 (Error); the rank group was restarted 1 time(s), spec.backoffLimit is 1',
    );
    await eventually('the surviving rank deleted', async () =>
      (await pods(ns, 'flaky')).every((p) => p.status?.phase === 'Failed'),
    );
    // Events follow the status write that they report (the reconciler writes them after it), so
    // on a busy machine they come later than the Failed phase.
    await eventuallyExpect(
      'the events of the restart and of the failure',
      () => eventReasons(ns, 'flaky'),
      (reasons) => {
        expect(reasons).toEqual(
          expect.arrayContaining(['RankFailed', 'GroupRestarting', 'BackoffLimitExceeded']),
        );
      },
      20_000,
    );
  }, 60_000);

  test('a configuration error fails the job at once, without restarts', async () => {
    await createJob(ns, 'misconfigured', {
      model: { checkpoint: { volume: { persistentVolumeClaim: { claimName: 'models' } }, path: 'nope' } },
    });
    const created = await eventually('rank pods', async () =>
      (await pods(ns, 'misconfigured')).length === 2 ? pods(ns, 'misconfigured') : null,
    );
    expect(created[0]!.spec!.containers[0]!.args).toEqual(
      expect.arrayContaining(['--model', '/models/nope']),
    );
    await markTerminated(
      core,
      created[0]!,
      2,
      encodeTerminationMessage({
        v: 1,
        ok: false,
        rank: 0,
        retriable: false,
        error: 'rank 0: model: checkpoint directory /models/nope does not exist (spec.model.checkpoint.path)',
      }),
    );
    const failed = await jobStatus(ns, 'misconfigured', 'Failed', (s) => s.phase === 'Failed');
    expect(failed.restarts).toBe(0);
    expect(condition(failed, 'Failed')).toMatchObject({ reason: 'ConfigurationError' });
    expect(condition(failed, 'Failed')?.message).toMatch(
      /checkpoint directory \/models\/nope does not exist/,
    );
  }, 30_000);

  test.each([
    [
      'an invalid affinity (an empty required term list)',
      'bad-affinity',
      {
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] as never[] },
          },
        },
      },
      /^the API server refused rank pod bad-affinity-0: .*nodeSelectorTerms.*must have at least one/,
    ],
    [
      'a CPU request above its limit',
      'cpu-over-limit',
      { resources: { requests: { cpu: '2' }, limits: { cpu: '1' } } },
      /^the API server refused rank pod cpu-over-limit-0: .*must be less than or equal to cpu limit/,
    ],
    // (A prompt too large for the shared ConfigMap — 1 MiB of UTF-8 — no longer gets this far: the CRD
    // limits prompt.text in bytes, test/integration/crd-validation.test.ts.)
  ] as const)(
    '%s: the job fails at once (ChildRejected), with one event and no retries',
    async (_, name, spec, message) => {
      await createJob(ns, name, spec);
      const status = await jobStatus(ns, name, 'Failed', (s) => s.phase === 'Failed');
      const failed = condition(status, 'Failed');
      expect(failed?.reason).toBe('ChildRejected');
      expect(failed?.message).toMatch(message);
      // The API server echoes the refused input: what is kept is bounded.
      expect(failed!.message.length).toBeLessThanOrEqual(1024);
      await eventuallyExpect(
        'the ChildRejected event',
        () => events(ns, name),
        (list) => {
          expect(list.map((e) => e.reason)).toContain('ChildRejected');
        },
      );
      // Nothing retries a refusal: give a retry loop time to show itself, then count.
      await new Promise((r) => setTimeout(r, 3000));
      const reasons = await eventReasons(ns, name);
      expect(reasons.filter((r) => r === 'ChildRejected')).toHaveLength(1);
      expect(reasons).not.toContain('PodCreationFailed');
      expect(await pods(ns, name)).toHaveLength(0);
      // And the operator's log says so a bounded number of times, in bounded lines (a retry loop
      // logged megabytes a minute).
      const logged = op.logs.filter((line) => line.includes(name));
      expect(logged.length).toBeGreaterThan(0);
      expect(logged.length).toBeLessThanOrEqual(8);
      for (const line of logged) expect(line.length).toBeLessThanOrEqual(4096);
    },
    40_000,
  );

  test('a hostPath the cluster admin has not allowed fails the job at once (PolicyViolation), with no pod', async () => {
    // This operator runs with the chart's default policy: no --allowed-host-paths.
    await createJob(ns, 'host-files', {
      model: { checkpoint: { volume: { hostPath: { path: '/data/models' } } } },
    });
    const status = await jobStatus(ns, 'host-files', 'Failed', (s) => s.phase === 'Failed');
    expect(condition(status, 'Failed')).toMatchObject({
      reason: 'PolicyViolation',
      message: expect.stringMatching(
        /^spec\.model\.checkpoint\.volume\.hostPath\.path \/data\/models is not allowed .*--allowed-host-paths: none/,
      ) as unknown,
    });
    await eventuallyExpect(
      'one PolicyViolation event',
      () => eventReasons(ns, 'host-files'),
      (reasons) => {
        expect(reasons).toEqual(['PolicyViolation']);
      },
    );
    expect(await pods(ns, 'host-files')).toHaveLength(0);
  }, 30_000);

  test('the active deadline fails a job that runs too long and deletes its pods', async () => {
    await createJob(ns, 'slow', { activeDeadlineSeconds: 2 });
    await eventually('rank pods', async () => (await pods(ns, 'slow')).length === 2);
    const failed = await jobStatus(ns, 'slow', 'Failed', (s) => s.phase === 'Failed', 15_000);
    expect(condition(failed, 'Failed')).toMatchObject({ reason: 'DeadlineExceeded' });
    await eventually('pods deleted', async () => (await pods(ns, 'slow')).length === 0);
  }, 30_000);

  test('suspend deletes the pods and holds the job; resume creates a group again', async () => {
    await createJob(ns, 'pausable');
    await eventually('rank pods', async () => (await pods(ns, 'pausable')).length === 2);
    await patchSpec(ns, 'pausable', { suspend: true });
    const suspended = await jobStatus(ns, 'pausable', 'Suspended', (s) => s.phase === 'Suspended');
    expect(condition(suspended, 'Suspended')).toMatchObject({ status: 'True', reason: 'JobSuspended' });
    expect(suspended.startTime).toBeUndefined();
    await eventually('pods deleted', async () => (await pods(ns, 'pausable')).length === 0);
    await patchSpec(ns, 'pausable', { suspend: false });
    const resumed = await jobStatus(
      ns,
      'pausable',
      'resumed',
      (s) => condition(s, 'Suspended')?.reason === 'JobResumed',
    );
    expect(resumed.phase).toBe('Pending');
    await eventually('pods again', async () => (await pods(ns, 'pausable')).length === 2);
  }, 30_000);

  test('deleting a job deletes its pods, Service and ConfigMap (owner references)', async () => {
    await createJob(ns, 'doomed');
    await eventually('rank pods', async () => (await pods(ns, 'doomed')).length === 2);
    await cp.kubectl(['delete', 'runaheadjob', 'doomed', '-n', ns, '--wait=false']);
    await eventually(
      'children collected',
      async () => {
        const svc = await core.listNamespacedService({
          namespace: ns,
          labelSelector: 'runahead.dev/job=doomed',
        });
        const cms = await core.listNamespacedConfigMap({
          namespace: ns,
          labelSelector: 'runahead.dev/job=doomed',
        });
        return (await pods(ns, 'doomed')).length === 0 && svc.items.length === 0 && cms.items.length === 0;
      },
      30_000,
    );
  }, 40_000);

  test('a finished job is deleted ttlSecondsAfterFinished after it finished', async () => {
    await createJob(ns, 'ephemeral', { ttlSecondsAfterFinished: 1 });
    const created = await eventually('rank pods', async () =>
      (await pods(ns, 'ephemeral')).length === 2 ? pods(ns, 'ephemeral') : null,
    );
    for (const pod of created) await markRunning(core, pod, true);
    await finishRun(ns, 'ephemeral', [0, 32, 64]);
    // Succeeded lasts only a second: a busy machine may not read the job in between, so the success
    // is read from its event, which outlives the job.
    await eventually('job deleted', async () => (await getJob(ns, 'ephemeral')) === null, 20_000);
    await eventuallyExpect(
      'the success recorded',
      () => eventReasons(ns, 'ephemeral'),
      (reasons) => {
        expect(reasons).toContain('FirstTokenProduced');
      },
    );
  }, 30_000);
});

describe('operator restarts and replicas', () => {
  test('a restarted operator adopts the pods it finds, creating no duplicates', async () => {
    const ns = await namespace('op-adopt');
    const first = await OperatorProcess.start({ kubeconfig: operatorKubeconfig, namespace: ns });
    await createJob(ns, 'adopted', { ranks: 3, prompt: { syntheticTokens: 96 } });
    const created = await eventually('rank pods', async () =>
      (await pods(ns, 'adopted')).length === 3 ? pods(ns, 'adopted') : null,
    );
    await first.kill();
    for (const pod of created) await markRunning(core, pod, true);

    const second = await OperatorProcess.start({ kubeconfig: operatorKubeconfig, namespace: ns });
    await jobStatus(
      ns,
      'adopted',
      'RanksReady from the new operator',
      (s) => condition(s, 'RanksReady')?.status === 'True',
    );
    const after = await pods(ns, 'adopted');
    expect(after.map((p) => p.metadata!.uid)).toEqual(created.map((p) => p.metadata!.uid));
    await finishRun(ns, 'adopted', [0, 32, 64, 96]);
    await jobStatus(ns, 'adopted', 'Succeeded', (s) => s.phase === 'Succeeded');
    expect(await second.stop()).toBe(0);
  }, 60_000);

  test('of two replicas only the Lease holder reconciles; the other takes over on shutdown', async () => {
    const ns = await namespace('op-ha');
    const a = await OperatorProcess.start({
      kubeconfig: operatorKubeconfig,
      namespace: ns,
      leaderElection: true,
      leaseNamespace,
      identity: 'replica-a',
      extraArgs: ['--lease-name', 'ha'],
    });
    const b = await OperatorProcess.start({
      kubeconfig: operatorKubeconfig,
      namespace: ns,
      leaderElection: true,
      leaseNamespace,
      identity: 'replica-b',
      extraArgs: ['--lease-name', 'ha'],
    });
    const leaders = async () => [
      (await a.metric('runahead_is_leader')) ?? 0,
      (await b.metric('runahead_is_leader')) ?? 0,
    ];
    await eventually('one leader', async () => (await leaders()).reduce((x, y) => x + y, 0) === 1);
    const [leader, standby] = (await leaders())[0] === 1 ? [a, b] : [b, a];

    await createJob(ns, 'ha-1');
    await eventually('rank pods', async () => (await pods(ns, 'ha-1')).length === 2);
    const reconciles = async (op: OperatorProcess) =>
      ((await op.metric('runahead_reconcile_total{result="success"}')) ?? 0) +
      ((await op.metric('runahead_reconcile_total{result="requeue"}')) ?? 0) +
      ((await op.metric('runahead_reconcile_total{result="error"}')) ?? 0);
    // The counter goes up when a reconcile ends, after the pods it created are visible.
    await eventually('the leader to count its reconciles', async () => (await reconciles(leader)) > 0);
    expect(await reconciles(standby)).toBe(0);
    expect(await leaders()).toEqual(leader === a ? [1, 0] : [0, 1]);

    expect(await leader.stop()).toBe(0);
    await eventually(
      'the standby leads',
      async () => (await standby.metric('runahead_is_leader')) === 1,
      15_000,
    );
    await createJob(ns, 'ha-2');
    await eventually('the new leader reconciles', async () => (await pods(ns, 'ha-2')).length === 2, 15_000);
    expect(await standby.stop()).toBe(0);
  }, 60_000);

  test('a status write made from a stale read is refused (409) and surfaces as a retriable conflict', async () => {
    const ns = await namespace('op-conflict');
    const job = await createJob(ns, 'contended');
    // Someone else writes first: the copy in hand is now stale.
    await cp.kubectl(['label', 'runaheadjob', 'contended', '-n', ns, 'touched=yes']);
    const view = {
      job: () => job,
      podsOfJob: () => [],
      serviceExists: () => false,
      configMapExists: () => false,
      namespaceLabels: () => undefined,
    };
    const observer = { terminal: () => undefined, restarted: () => undefined, jobGone: () => undefined };
    const reconciler = new Reconciler({
      view,
      core,
      custom,
      defaults: DEFAULT_OPERATOR_DEFAULTS,
      log: logger('test'),
      observer,
    });
    await expect(reconciler.reconcile(ns, 'contended')).rejects.toBeInstanceOf(ConflictError);
    expect(await pods(ns, 'contended')).toHaveLength(0);
    // The work queue tries again with what the cache holds by then: the fresh object.
    const fresh = (await getJob(ns, 'contended'))!;
    const retry = new Reconciler({
      view: { ...view, job: () => fresh },
      core,
      custom,
      defaults: DEFAULT_OPERATOR_DEFAULTS,
      log: logger('test'),
      observer,
    });
    await retry.reconcile(ns, 'contended');
    expect(await pods(ns, 'contended')).toHaveLength(2);
    expect((await getJob(ns, 'contended'))?.status?.phase).toBe('Pending');
  }, 30_000);
});
