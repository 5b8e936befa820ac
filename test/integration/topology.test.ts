// Placement across several nodes, on a real API server with the operator as a real process: four GPU
// nodes in two racks, and a scheduler that decides as kube-scheduler's default profile does
// (test/support/scheduler.ts), so what is tested is what the operator's pods ask of a scheduler: a
// group in one rack, its consecutive ranks sharing nodes, an exclusive rack left to its group; with
// --gang-capacity-check, a gang too big for the room left held at its gate (no GPU held) until room
// is freed; without the gate, such a group failing after startupTimeoutSeconds with the scheduler's
// reason.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../core/api/v1alpha1/names.ts';
import type { RunaheadJobSpecInput, RunaheadJobStatus } from '../../core/api/v1alpha1/runahead-job.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { createTestJob } from '../support/test-jobs.ts';
import { chartIdentity } from '../support/chart-rbac.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';
import { repoPath } from '../support/operator.ts';
import { OperatorProcess } from '../support/operator-process.ts';
import { TestScheduler } from '../support/scheduler.ts';

const RACK = 'example.com/rack';
/** Two racks of two nodes with two GPUs each. */
const NODES: Record<string, string> = { a1: 'rack-a', a2: 'rack-a', b1: 'rack-b', b2: 'rack-b' };

let cp: ControlPlane;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let op: OperatorProcess;
let scheduler: TestScheduler;
const ns = 'placement';

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: true, crds: [repoPath('crds')] });
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  for (const [name, rack] of Object.entries(NODES))
    await TestScheduler.addNode(
      core,
      name,
      { [RACK]: rack },
      {
        cpu: '16',
        memory: '64Gi',
        pods: '110',
        'nvidia.com/gpu': '2',
      },
    );
  await core.createNamespace({ body: { metadata: { name: ns } } });
  scheduler = TestScheduler.start(cp.kubeconfigPath);
  const identity = await chartIdentity(cp, { set: ['operator.gangCapacityCheck=true'] });
  op = await OperatorProcess.start({
    kubeconfig: identity.kubeconfigPath,
    extraArgs: ['--gang-capacity-check'],
  });
}, 180_000);

afterAll(async () => {
  expect(await op.stop()).toBe(0);
  await scheduler.stop();
  expect(scheduler.errors).toEqual([]);
  await cp.stop();
});

async function createJob(name: string, spec: Partial<RunaheadJobSpecInput>): Promise<void> {
  await createTestJob(custom, ns, name, { executionProvider: 'cuda', ...spec });
}

async function pods(job: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `runahead.dev/job=${job}` });
  return list.items.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
}

async function status(name: string): Promise<RunaheadJobStatus> {
  const job = (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  })) as { status?: RunaheadJobStatus };
  return job.status ?? {};
}

/** What a kubelet does for a bound pod being deleted: confirms it (grace period 0). */
async function finishDeletion(job: string): Promise<void> {
  for (const p of await pods(job))
    if (p.metadata?.deletionTimestamp)
      await core
        .deleteNamespacedPod({ namespace: ns, name: p.metadata.name!, gracePeriodSeconds: 0 })
        .catch(() => undefined);
}

/** Waits until all `ranks` pods of `job` are bound; returns each rank's node. */
function placed(job: string, ranks: number): Promise<string[]> {
  return eventuallyExpect(
    `${job}: ${ranks} pods bound`,
    async () => (await pods(job)).map((p) => p.spec?.nodeName ?? ''),
    (nodes) => {
      expect(nodes).toHaveLength(ranks);
      expect(nodes.every((n) => n !== '')).toBe(true);
    },
    30_000,
  );
}

describe('placement on a rack topology', () => {
  let rackOfFirst = '';

  test('a group that fits lands in one rack, consecutive ranks sharing a node', async () => {
    await createJob('fits', { ranks: 4, placement: { topologyKey: RACK, exclusive: true } });
    const nodes = await placed('fits', 4);
    const racks = new Set(nodes.map((n) => NODES[n]));
    expect(racks.size).toBe(1);
    rackOfFirst = NODES[nodes[0]!]!;
    // Two GPUs a node: ranks 0,1 on one node and 2,3 on the other (the chain's links i → i+1).
    expect(nodes[0]).toBe(nodes[1]);
    expect(nodes[2]).toBe(nodes[3]);
    expect(nodes[1]).not.toBe(nodes[2]);
  }, 60_000);

  test('an exclusive rack keeps a second group out: it goes to the other rack', async () => {
    await createJob('second', { ranks: 2, placement: { topologyKey: RACK } });
    const nodes = await placed('second', 2);
    expect(nodes.map((n) => NODES[n])).toEqual(
      Array(2).fill(rackOfFirst === 'rack-a' ? 'rack-b' : 'rack-a') as string[],
    );
    expect(nodes[0]).toBe(nodes[1]);
  }, 60_000);

  test('--gang-capacity-check: a gang with no room stays gated, holding no GPU, and says why', async () => {
    // Two GPUs are left, in the rack of "second"; three ranks need three.
    await createJob('too-big', { ranks: 3, placement: { topologyKey: RACK }, startupTimeoutSeconds: 3 });
    const held = await eventuallyExpect(
      'too-big held at its gate',
      async () => ({ pods: await pods('too-big'), status: await status('too-big') }),
      ({ pods: ps, status: s }) => {
        expect(ps.map((p) => [p.spec?.schedulingGates?.map((g) => g.name), p.spec?.nodeName])).toEqual(
          Array(3).fill([['runahead.dev/gang'], undefined]) as unknown[],
        );
        expect(s.conditions?.find((c) => c.type === 'RanksReady')?.message).toBe(
          '0 of 3 rank(s) ready; the group is held at scheduling gate runahead.dev/gang until it fits: no example.com/rack domain has room for 3 rank(s) of 1 nvidia.com/gpu each (at most 2 fit)',
        );
      },
      30_000,
    );
    // Waiting for room is not a failure to start: the startup clock has not begun.
    expect(held.status.groupReleaseTime).toBeUndefined();
    await new Promise((r) => setTimeout(r, 4000));
    expect(await status('too-big')).toMatchObject({ phase: 'Pending', restarts: 0 });
  }, 60_000);

  test('without the gate, a group with no room binds what fits, then fails after startupTimeoutSeconds with the scheduler’s reason', async () => {
    await createJob('ungated', {
      ranks: 3,
      placement: { topologyKey: RACK, gang: false },
      startupTimeoutSeconds: 3,
      backoffLimit: 0,
    });
    await eventuallyExpect(
      'two of three bound',
      async () => (await pods('ungated')).filter((p) => p.spec?.nodeName).length,
      (bound) => {
        expect(bound).toBe(2);
      },
      30_000,
    );
    const failed = await eventually(
      'ungated Failed',
      async () => {
        const s = await status('ungated');
        return s.phase === 'Failed' ? s : null;
      },
      40_000,
    );
    expect(failed.conditions?.find((c) => c.type === 'Failed')).toMatchObject({
      reason: 'BackoffLimitExceeded',
      message: expect.stringMatching(
        /^rank 2 \(pod ungated-2\) was not running 3 s after its group was released to the scheduler \(spec\.startupTimeoutSeconds\): Unschedulable: 0\/4 nodes are available: .*Insufficient nvidia\.com\/gpu/,
      ) as unknown as string,
    });
    // Deleted by the operator; a kubelet would confirm, the test does (as they come).
    await eventuallyExpect(
      'its pods gone',
      async () => {
        await finishDeletion('ungated');
        return pods('ungated');
      },
      (ps) => {
        expect(ps).toEqual([]);
      },
      20_000,
    );
    // The gated group was never disturbed, and is still waiting.
    expect((await pods('too-big')).every((p) => !p.spec?.nodeName)).toBe(true);
  }, 90_000);

  test('room freed (the second group deleted): the held gang is released and lands in that rack', async () => {
    const rackOfSecond = NODES[(await pods('second'))[0]!.spec!.nodeName!];
    await custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: PLURAL,
      name: 'second',
    });
    await eventually(
      'second’s pods deleted',
      async () => {
        const ps = await pods('second');
        return ps.length > 0 && ps.every((p) => p.metadata?.deletionTimestamp) ? ps : null;
      },
      30_000,
    );
    await finishDeletion('second');
    const nodes = await placed('too-big', 3);
    expect(nodes.map((n) => NODES[n])).toEqual(Array(3).fill(rackOfSecond) as string[]);
    expect((await pods('fits')).every((p) => p.spec?.nodeName)).toBe(true);
  }, 90_000);
});
