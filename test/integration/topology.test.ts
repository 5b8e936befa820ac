// Placement across several nodes, on a real API server with the operator as a real process: four GPU
// nodes in two racks, and a scheduler that decides as kube-scheduler's default profile does
// (test/support/scheduler.ts), so what is tested is what the operator's pods ask of a scheduler: a
// group in one rack, its consecutive ranks sharing nodes, an exclusive rack left to its group, and
// a group too big for the room left failing after startupTimeoutSeconds with the scheduler's reason
// and holding nothing afterwards.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../core/api/v1alpha1/names.ts';
import type { RunaheadJobSpecInput, RunaheadJobStatus } from '../../core/api/v1alpha1/runahead-job.ts';
import { ControlPlane } from '../support/control-plane.ts';
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
  const identity = await chartIdentity(cp);
  op = await OperatorProcess.start({ kubeconfig: identity.kubeconfigPath });
}, 180_000);

afterAll(async () => {
  expect(await op.stop()).toBe(0);
  await scheduler.stop();
  expect(scheduler.errors).toEqual([]);
  await cp.stop();
});

async function createJob(name: string, spec: Partial<RunaheadJobSpecInput>): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'RunaheadJob',
      metadata: { name },
      spec: {
        model: { synthetic: { preset: 'tiny' } },
        prompt: { syntheticTokens: 64 },
        executionProvider: 'cuda',
        image: 'runahead-worker:test',
        ...spec,
      },
    },
  });
}

async function pods(job: string): Promise<V1Pod[]> {
  const list = await core.listNamespacedPod({ namespace: ns, labelSelector: `runahead.dev/job=${job}` });
  return list.items.sort((a, b) => a.metadata!.name!.localeCompare(b.metadata!.name!));
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

  test('a group with no room fails after startupTimeoutSeconds with the scheduler’s reason, and holds nothing', async () => {
    // Two GPUs are left, in the rack of "second"; three ranks need three.
    await createJob('too-big', {
      ranks: 3,
      placement: { topologyKey: RACK },
      startupTimeoutSeconds: 3,
      backoffLimit: 0,
    });
    const failed = await eventually(
      'too-big Failed',
      async () => {
        const job = (await custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: ns,
          plural: PLURAL,
          name: 'too-big',
        })) as { status?: RunaheadJobStatus };
        return job.status?.phase === 'Failed' ? job.status : null;
      },
      40_000,
    );
    expect(failed.conditions?.find((c) => c.type === 'Failed')).toMatchObject({
      reason: 'BackoffLimitExceeded',
      message: expect.stringMatching(
        /^rank 2 \(pod too-big-2\) was not running 3 s after its group was released to the scheduler \(spec\.startupTimeoutSeconds\): Unschedulable: 0\/4 nodes are available: .*Insufficient nvidia\.com\/gpu/,
      ) as unknown as string,
    });
    // Deleted by the operator; bound ones wait for a kubelet to confirm, which there is none to do.
    await eventuallyExpect(
      'its pods deleted',
      () => pods('too-big'),
      (ps) => {
        expect(ps.filter((p) => !p.metadata?.deletionTimestamp)).toEqual([]);
      },
      20_000,
    );
    // The groups that fit were never disturbed.
    expect((await pods('fits')).every((p) => p.spec?.nodeName)).toBe(true);
    expect(await pods('second')).toHaveLength(2);
  }, 90_000);
});
