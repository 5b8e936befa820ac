// spec.placement and startupTimeoutSeconds on a real API server (jobs, and a server's PodGroups),
// with the operator as a real process under the chart's ServiceAccount (so the chart's RBAC is
// proven sufficient for lifting the gate and for creating and deleting PodGroups).
// kube-scheduler does not run here: the API server itself keeps gated pods out of scheduling
// (PodScheduled=False, SchedulingGated) and refuses a binding for them, a ResourceQuota refuses
// a group's last pod the way a full quota does, and the test writes what the scheduler would
// (PodScheduled=False, Unschedulable) where a rank cannot be placed.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../core/api/v1alpha1/names.ts';
import type { RunaheadJobSpecInput, RunaheadJobStatus } from '../../core/api/v1alpha1/runahead-job.ts';
import { SERVER_KIND, SERVER_PLURAL } from '../../core/api/v1alpha1/server-names.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { createTestJob } from '../support/test-jobs.ts';
import { chartIdentity } from '../support/chart-rbac.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';
import { repoPath } from '../support/operator.ts';
import { OperatorProcess } from '../support/operator-process.ts';
import { markRunning } from '../support/pod-status.ts';

const GANG = 'runahead.dev/gang';
const VOLCANO_POD_GROUP_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: podgroups.scheduling.volcano.sh}
spec:
  group: scheduling.volcano.sh
  scope: Namespaced
  names: {plural: podgroups, singular: podgroup, kind: PodGroup}
  versions:
    - name: v1beta1
      served: true
      storage: true
      schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`;

let cp: ControlPlane;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let op: OperatorProcess;

beforeAll(async () => {
  cp = await ControlPlane.start({
    controllerManager: true,
    crds: [repoPath('crds')],
    // resourcequota: a quota's usage is counted, so the quota admission refuses what passes it.
    controllers: ['garbagecollector', 'namespace', 'resourcequota'],
  });
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  // Volcano's PodGroups (a stand-in CRD of the same group, version and kind), which the chart lets
  // the operator create; Coscheduling's are neither installed nor allowed.
  await cp.kubectl(['apply', '-f', '-'], VOLCANO_POD_GROUP_CRD);
  await eventually(
    'the PodGroup CRD served',
    async () =>
      (await cp.kubectl(['api-resources', '--api-group=scheduling.volcano.sh', '-o', 'name'])).includes(
        'podgroups',
      ),
    20_000,
  );
  const identity = await chartIdentity(cp, { set: ['operator.podGroups={Volcano}'] });
  op = await OperatorProcess.start({ kubeconfig: identity.kubeconfigPath });
}, 180_000);

afterAll(async () => {
  expect(await op.stop()).toBe(0);
  await cp.stop();
});

async function createJob(
  ns: string,
  name: string,
  spec: Partial<RunaheadJobSpecInput>,
  labels: Record<string, string> = {},
): Promise<void> {
  await createTestJob(custom, ns, name, spec, labels);
}

/** A two-rank RunaheadServer whose groups are pod groups of `scheduler`. */
async function createServer(ns: string, name: string, scheduler: string): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: SERVER_PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: SERVER_KIND,
      metadata: { name },
      spec: {
        ranks: 2,
        model: { synthetic: { preset: 'tiny' } },
        executionProvider: 'cpu',
        placement: { podGroup: { scheduler } },
      },
    },
  });
}

async function status(ns: string, name: string): Promise<RunaheadJobStatus> {
  const job = (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  })) as { status?: RunaheadJobStatus };
  return job.status ?? {};
}

async function pods(ns: string, job: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `runahead.dev/job=${job}` });
  return list.items.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
}

const gates = (p: V1Pod) => (p.spec?.schedulingGates ?? []).map((g) => g.name);
const condition = (s: RunaheadJobStatus, type: string) => s.conditions?.find((c) => c.type === type);

async function events(ns: string, job: string): Promise<{ reason: string; message: string }[]> {
  const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${job}` });
  return list.items.map((e) => ({ reason: e.reason ?? '', message: e.message ?? '' }));
}

async function namespace(name: string): Promise<string> {
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

/** What kube-scheduler writes on a pod it cannot place. */
async function markUnschedulable(pod: V1Pod, message: string): Promise<void> {
  await core.patchNamespacedPodStatus(
    {
      namespace: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
      body: {
        status: {
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message,
              lastTransitionTime: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
            },
          ],
        },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

describe('gang: the scheduling gate', () => {
  test('a group that cannot be created whole stays gated, unbindable, and says so; completed, it is released', async () => {
    const ns = await namespace('gang-quota');
    await core.createNamespacedResourceQuota({
      namespace: ns,
      body: { metadata: { name: 'pods' }, spec: { hard: { pods: '2' } } },
    });
    await eventually(
      'the quota counted',
      async () =>
        (await core.readNamespacedResourceQuota({ namespace: ns, name: 'pods' })).status?.hard?.['pods'],
    );
    await createJob(ns, 'held', { ranks: 3, placement: {} });

    const held = await eventuallyExpect(
      'two gated pods and a condition naming the gate',
      async () => ({ pods: await pods(ns, 'held'), status: await status(ns, 'held') }),
      ({ pods: ps, status: s }) => {
        expect(ps.map((p) => [p.metadata!.name, gates(p)])).toEqual([
          ['held-0', [GANG]],
          ['held-1', [GANG]],
        ]);
        expect(condition(s, 'RanksReady')?.message).toBe(
          '0 of 3 rank(s) ready; 2 of 3 rank pod(s) exist; the group is held at scheduling gate(s) runahead.dev/gang until all do',
        );
      },
      30_000,
    );
    expect(held.status.groupReleaseTime).toBeUndefined();
    // Held means no node: the API server marks them gated and refuses to bind them.
    for (const p of held.pods) {
      expect(p.spec?.nodeName).toBeUndefined();
      expect(p.status?.conditions?.find((c) => c.type === 'PodScheduled')).toMatchObject({
        status: 'False',
        reason: 'SchedulingGated',
      });
    }
    await expect(
      core.createNamespacedPodBinding({
        namespace: ns,
        name: 'held-0',
        body: { metadata: { name: 'held-0' }, target: { apiVersion: 'v1', kind: 'Node', name: 'gpu-1' } },
      }),
    ).rejects.toThrow();
    await eventuallyExpect(
      'the refused create on the job',
      () => events(ns, 'held'),
      (es) => {
        expect(es).toContainEqual({
          reason: 'PodCreationFailed',
          message: expect.stringMatching(
            /could not create pod held-2: .*exceeded quota/,
          ) as unknown as string,
        });
      },
      20_000,
    );

    await core.patchNamespacedResourceQuota(
      { namespace: ns, name: 'pods', body: { spec: { hard: { pods: '3' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const released = await eventuallyExpect(
      'three ungated pods',
      () => pods(ns, 'held'),
      (ps) => {
        expect(ps.map((p) => [p.metadata!.name, gates(p)])).toEqual([
          ['held-0', []],
          ['held-1', []],
          ['held-2', []],
        ]);
      },
      70_000,
    );
    // The same pods, ungated in place (not recreated).
    expect(released[0]!.metadata!.uid).toBe(held.pods[0]!.metadata!.uid);
    const s = await eventually('the release recorded', async () => {
      const st = await status(ns, 'held');
      return st.groupReleaseTime ? st : null;
    });
    expect(condition(s, 'RanksReady')?.message).toBe('0 of 3 rank(s) ready');
  }, 120_000);

  test('a Kueue-style flow: created suspended in a queue, admitted by resuming; its pods form one Kueue pod group', async () => {
    const ns = await namespace('kueue-flow');
    await createJob(
      ns,
      'queued',
      { ranks: 2, suspend: true, placement: { topologyKey: 'example.com/rack', exclusive: true } },
      { 'kueue.x-k8s.io/queue-name': 'gpus' },
    );
    const suspended = await eventually('Suspended', async () => {
      const s = await status(ns, 'queued');
      return s.phase === 'Suspended' ? s : null;
    });
    expect(condition(suspended, 'Suspended')?.status).toBe('True');
    expect(await pods(ns, 'queued')).toEqual([]);

    await cp.kubectl([
      'patch',
      'runaheadjob',
      'queued',
      '-n',
      ns,
      '--type=merge',
      '-p',
      '{"spec":{"suspend":false}}',
    ]);
    const admitted = await eventuallyExpect(
      'two ungated pods of one Kueue pod group',
      () => pods(ns, 'queued'),
      (ps) => {
        expect(ps.map((p) => [p.metadata!.name, gates(p)])).toEqual([
          ['queued-0', []],
          ['queued-1', []],
        ]);
      },
      30_000,
    );
    for (const p of admitted) {
      expect(p.metadata!.labels).toMatchObject({
        'kueue.x-k8s.io/queue-name': 'gpus',
        'kueue.x-k8s.io/pod-group-name': 'queued-a0',
      });
      expect(p.metadata!.annotations).toMatchObject({
        'kueue.x-k8s.io/pod-group-total-count': '2',
        'kueue.x-k8s.io/podset-required-topology': 'example.com/rack',
      });
      // The API server took the compiled terms as a Pod's: the domain, the exclusion, the packing.
      expect(
        p.spec!.affinity!.podAffinity!.requiredDuringSchedulingIgnoredDuringExecution![0]!.topologyKey,
      ).toBe('example.com/rack');
      expect(p.spec!.affinity!.podAntiAffinity!.requiredDuringSchedulingIgnoredDuringExecution).toHaveLength(
        2,
      );
      expect(p.spec!.affinity!.podAffinity!.preferredDuringSchedulingIgnoredDuringExecution).toHaveLength(1);
    }
    const resumed = await status(ns, 'queued');
    expect(condition(resumed, 'Suspended')).toMatchObject({ status: 'False', reason: 'JobResumed' });
  }, 60_000);
});

describe('startupTimeoutSeconds', () => {
  test('an unschedulable rank fails the group after the timeout with the scheduler’s reason, counted against backoffLimit', async () => {
    const ns = await namespace('startup');
    const reason =
      '0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available';
    await createJob(ns, 'stuck', { ranks: 2, placement: {}, startupTimeoutSeconds: 2, backoffLimit: 1 });

    /** Rank 0 starts, rank 1 finds no room: what a scheduler and a kubelet would write. */
    const stall = async (attempt: string) => {
      const ps = await eventuallyExpect(
        `attempt ${attempt}: two ungated pods`,
        () => pods(ns, 'stuck'),
        (found) => {
          expect(found.map((p) => [p.metadata!.labels!['runahead.dev/attempt'], gates(p)])).toEqual([
            [attempt, []],
            [attempt, []],
          ]);
        },
        30_000,
      );
      await markRunning(core, ps[0]!, false);
      await markUnschedulable(ps[1]!, reason);
    };

    await stall('0');
    const restarted = await eventually(
      'the group restarted',
      async () => {
        const s = await status(ns, 'stuck');
        return (s.restarts ?? 0) >= 1 ? s : null;
      },
      30_000,
    );
    expect(condition(restarted, 'RanksReady')?.message).toBe(
      `rank 1 (pod stuck-1) was not running 2 s after its group was released to the scheduler (spec.startupTimeoutSeconds): Unschedulable: ${reason}; restarting the rank group (restart 1 of at most 1)`,
    );

    await stall('1');
    const failed = await eventually(
      'Failed',
      async () => {
        const s = await status(ns, 'stuck');
        return s.phase === 'Failed' ? s : null;
      },
      30_000,
    );
    expect(condition(failed, 'Failed')).toMatchObject({
      reason: 'BackoffLimitExceeded',
      message: `rank 1 (pod stuck-1) was not running 2 s after its group was released to the scheduler (spec.startupTimeoutSeconds): Unschedulable: ${reason}; the rank group was restarted 1 time(s), spec.backoffLimit is 1`,
    });
    // Nothing of the group is left holding a node's resources.
    await eventuallyExpect(
      'no pods left',
      () => pods(ns, 'stuck'),
      (ps) => {
        expect(ps).toEqual([]);
      },
      20_000,
    );
    // Events are written after the status they mirror: read until the last one is there.
    await eventuallyExpect(
      'the job’s events',
      async () => (await events(ns, 'stuck')).map((e) => e.reason),
      (reasons) => {
        expect(reasons).toEqual(
          expect.arrayContaining(['GroupReleased', 'RankFailed', 'GroupRestarting', 'BackoffLimitExceeded']),
        );
      },
      20_000,
    );
  }, 120_000);
});

describe('gang schedulers: pod groups', () => {
  test('podGroup Volcano: one PodGroup of minMember ranks, owned by the job; the pods name it and volcano', async () => {
    const ns = await namespace('volcano');
    await createJob(ns, 'vc', { ranks: 3, placement: { podGroup: { scheduler: 'Volcano' } } });
    const group = await eventually(
      'the PodGroup',
      async () =>
        (await custom.getNamespacedCustomObject({
          group: 'scheduling.volcano.sh',
          version: 'v1beta1',
          namespace: ns,
          plural: 'podgroups',
          name: 'vc-a0',
        })) as { spec: unknown; metadata: { ownerReferences: unknown[] } },
      20_000,
    );
    expect(group.spec).toEqual({ minMember: 3 });
    expect(group.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'RunaheadJob', name: 'vc', controller: true }),
    ]);
    const ps = await eventuallyExpect(
      'three ungated pods for volcano',
      () => pods(ns, 'vc'),
      (found) => {
        expect(found.map((p) => gates(p))).toEqual([[], [], []]);
      },
      20_000,
    );
    for (const p of ps) {
      expect(p.spec!.schedulerName).toBe('volcano');
      expect(p.metadata!.annotations).toMatchObject({ 'scheduling.k8s.io/group-name': 'vc-a0' });
    }
  }, 60_000);

  test('a pod group the operator may not create fails the job at once, saying what to install or allow', async () => {
    const ns = await namespace('cosched');
    await createJob(ns, 'cs', { ranks: 2, placement: { podGroup: { scheduler: 'Coscheduling' } } });
    const failed = await eventually(
      'Failed',
      async () => {
        const s = await status(ns, 'cs');
        return s.phase === 'Failed' ? s : null;
      },
      20_000,
    );
    expect(condition(failed, 'Failed')).toMatchObject({
      reason: 'ChildRejected',
      message: expect.stringMatching(
        /^the API server refused PodGroup cs-a0: .*\(spec\.placement\.podGroup Coscheduling needs scheduling\.x-k8s\.io\/v1alpha1 PodGroups installed and the operator allowed to create them, chart value operator\.podGroups; or remove spec\.placement\.podGroup\)$/,
      ) as unknown as string,
    });
    expect(await pods(ns, 'cs')).toEqual([]);
  }, 60_000);

  test('a RunaheadServer: one PodGroup per group and attempt, of its ranks, owned by the server; replaced when the group restarts', async () => {
    const ns = await namespace('volcano-server');
    await createServer(ns, 'chat', 'Volcano');
    const podGroup = (name: string) =>
      custom.getNamespacedCustomObject({
        group: 'scheduling.volcano.sh',
        version: 'v1beta1',
        namespace: ns,
        plural: 'podgroups',
        name,
      }) as Promise<{ spec: unknown; metadata: { ownerReferences: unknown[] } }>;
    const serverPods = async () =>
      (await core.listNamespacedPod({ namespace: ns, labelSelector: 'runahead.dev/server=chat' })).items.sort(
        (a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!),
      );
    const first = await eventually('the PodGroup of attempt 0', () => podGroup('chat-g0-a0'), 20_000);
    // The ranks only: the front holds no GPU and is scheduled anywhere (desiredServerPodGroup).
    expect(first.spec).toEqual({ minMember: 2 });
    expect(first.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'RunaheadServer', name: 'chat', controller: true }),
    ]);
    const ps = await eventuallyExpect(
      'two ungated rank pods and a front',
      serverPods,
      (found) => {
        expect(found.map((p) => [p.metadata!.name, gates(p)])).toEqual([
          ['chat-g0-0', []],
          ['chat-g0-1', []],
          ['chat-g0-front', []],
        ]);
      },
      20_000,
    );
    for (const p of ps.slice(0, 2)) {
      expect(p.spec!.schedulerName).toBe('volcano');
      expect(p.metadata!.annotations).toMatchObject({ 'scheduling.k8s.io/group-name': 'chat-g0-a0' });
    }
    expect(ps[2]!.spec!.schedulerName).toBe('default-scheduler');
    expect(ps[2]!.metadata!.annotations ?? {}).not.toHaveProperty(['scheduling.k8s.io/group-name']);

    // A rank of the running group goes away: the group restarts as attempt 1, in a new PodGroup,
    // and the old one is deleted (the chart allows it).
    await markRunning(core, ps[0]!, false);
    await core.deleteNamespacedPod({ namespace: ns, name: 'chat-g0-1' });
    const second = await eventually('the PodGroup of attempt 1', () => podGroup('chat-g0-a1'), 30_000);
    expect(second.spec).toEqual({ minMember: 2 });
    await eventuallyExpect(
      'the PodGroup of attempt 0 deleted',
      () =>
        podGroup('chat-g0-a0').then(
          () => 'present',
          (err: unknown) => (err instanceof ApiException ? err.code : err),
        ),
      (found) => {
        expect(found).toBe(404);
      },
      20_000,
    );
    await eventuallyExpect(
      'the rank pods of attempt 1 name it',
      serverPods,
      (found) => {
        expect(
          found.map((p) => [p.metadata!.name, p.metadata!.annotations?.['scheduling.k8s.io/group-name']]),
        ).toEqual([
          ['chat-g0-0', 'chat-g0-a1'],
          ['chat-g0-1', 'chat-g0-a1'],
          ['chat-g0-front', undefined],
        ]);
      },
      30_000,
    );
  }, 90_000);

  test('a RunaheadServer whose PodGroup may not be created gets no pod and says what to install or allow', async () => {
    const ns = await namespace('cosched-server');
    await createServer(ns, 'cs', 'Coscheduling');
    await eventuallyExpect(
      'the Warning on the server',
      () => events(ns, 'cs'),
      (es) => {
        expect(es).toContainEqual({
          reason: 'ChildRejected',
          message: expect.stringMatching(
            /^could not create PodGroup cs-g0-a0: .*\(spec\.placement\.podGroup Coscheduling needs scheduling\.x-k8s\.io\/v1alpha1 PodGroups installed/,
          ) as unknown as string,
        });
      },
      20_000,
    );
    expect((await core.listNamespacedPod({ namespace: ns })).items).toEqual([]);
  }, 60_000);
});
