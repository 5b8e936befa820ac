// The cluster admin's limits on a real API server, with the operator run as a real process under the
// chart's ServiceAccount (so the chart's RBAC for each mode is proven sufficient): images outside
// --allowed-image-prefixes, tolerations and priority classes without their switch fail the job at
// once with PolicyViolation and one event, no pod; with --namespaces labelled, a job in a namespace
// that has not opted in is left alone with one Warning event, and starts when the label comes.
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

interface Job {
  metadata: { name: string; namespace: string; uid: string };
  status?: RunaheadJobStatus;
}

let cp: ControlPlane;
let core: CoreV1Api;
let custom: CustomObjectsApi;

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: false, crds: [repoPath('crds')] });
  const kc = new KubeConfig();
  kc.loadFromFile(cp.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
}, 180_000);

afterAll(async () => {
  await cp.stop();
});

async function namespace(name: string, labels?: Record<string, string>): Promise<string> {
  await core.createNamespace({ body: { metadata: { name, ...(labels ? { labels } : {}) } } });
  return name;
}

async function createJob(ns: string, name: string, spec: Partial<RunaheadJobSpecInput> = {}): Promise<void> {
  // An image from a registry the policies' tests allow by prefix.
  await createTestJob(custom, ns, name, { image: 'registry.example.com/runahead/worker:test', ...spec });
}

async function getJob(ns: string, name: string): Promise<Job> {
  return (await custom.getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    name,
  })) as Job;
}

async function pods(ns: string, job: string): Promise<V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: ns, labelSelector: `runahead.dev/job=${job}` })).items;
}

async function eventReasons(ns: string, job: string): Promise<string[]> {
  const list = await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${job}` });
  return list.items.map((e) => e.reason ?? '');
}

/** The job fails with PolicyViolation and `message`, records exactly one event, and has no pod. */
async function expectPolicyViolation(ns: string, name: string, message: RegExp): Promise<void> {
  const status = await eventually(
    `${ns}/${name}: Failed`,
    async () => {
      const s = (await getJob(ns, name)).status;
      return s?.phase === 'Failed' ? s : null;
    },
    20_000,
    50,
  );
  expect(status.conditions?.find((c) => c.type === 'Failed')).toMatchObject({
    status: 'True',
    reason: 'PolicyViolation',
    message: expect.stringMatching(message) as unknown,
  });
  await eventuallyExpect(
    `${ns}/${name}: one PolicyViolation event`,
    () => eventReasons(ns, name),
    (reasons) => {
      expect(reasons).toEqual(['PolicyViolation']);
    },
  );
  expect(await pods(ns, name)).toHaveLength(0);
}

describe('images and pass-through fields, as the admin set them', () => {
  let op: OperatorProcess;
  let ns: string;

  beforeAll(async () => {
    ns = await namespace('pol-images');
    const identity = await chartIdentity(cp);
    op = await OperatorProcess.start({
      kubeconfig: identity.kubeconfigPath,
      namespace: ns,
      // The default worker image (ghcr.io/runahead/worker) is outside on purpose.
      extraArgs: ['--allowed-image-prefixes', 'registry.example.com/runahead/,localhost:5000/rw'],
    });
  }, 60_000);

  afterAll(async () => {
    expect(await op.stop()).toBe(0);
  });

  test('an image under an allowed prefix runs', async () => {
    await createJob(ns, 'allowed', { image: 'localhost:5000/rw:1' });
    await eventually('2 rank pods', async () => (await pods(ns, 'allowed')).length === 2);
  }, 30_000);

  test('an image elsewhere, or one that continues a prefix past its boundary, fails the job at once', async () => {
    await createJob(ns, 'elsewhere', { image: 'docker.io/someone/miner:latest' });
    await createJob(ns, 'lookalike', { image: 'localhost:5000/rw-evil:1' });
    await expectPolicyViolation(
      ns,
      'elsewhere',
      /^spec\.image docker\.io\/someone\/miner:latest is not allowed by the operator's image policy \(--allowed-image-prefixes: registry\.example\.com\/runahead\/, localhost:5000\/rw\): set spec\.image/,
    );
    await expectPolicyViolation(ns, 'lookalike', /^spec\.image localhost:5000\/rw-evil:1 is not allowed/);
  }, 30_000);

  test("a job naming no image is held to the operator's default worker image", async () => {
    await createJob(ns, 'default-image', { image: undefined });
    await expectPolicyViolation(
      ns,
      'default-image',
      /^the operator's default worker image ghcr\.io\/runahead\/worker:\S+ \(spec\.image unset\) is not allowed/,
    );
  }, 30_000);

  test('tolerations and a priority class fail the job while their switches are off', async () => {
    await createJob(ns, 'tolerating', {
      tolerations: [
        { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
      ],
    });
    await createJob(ns, 'important', { priorityClassName: 'system-node-critical' });
    await expectPolicyViolation(
      ns,
      'tolerating',
      /^spec\.tolerations \(1 toleration\(s\)\) is not allowed .*\(--allow-tolerations is off\).*operator\.allowTolerations=true/,
    );
    await expectPolicyViolation(
      ns,
      'important',
      /^spec\.priorityClassName \(system-node-critical\) is not allowed .*\(--allow-priority-class is off\)/,
    );
  }, 30_000);
});

describe('--namespaces labelled', () => {
  const start = (kubeconfig: string) =>
    OperatorProcess.start({ kubeconfig, extraArgs: ['--namespaces', 'labelled', '--allow-tolerations'] });
  let kubeconfig: string;
  let op: OperatorProcess;

  beforeAll(async () => {
    // The chart's RBAC for this mode: its ClusterRole adds list/watch of namespaces.
    kubeconfig = (
      await chartIdentity(cp, { namespace: 'runahead-labelled', set: ['operator.namespaces=labelled'] })
    ).kubeconfigPath;
    op = await start(kubeconfig);
  }, 60_000);

  afterAll(async () => {
    expect(await op.stop()).toBe(0);
  });

  test('a labelled namespace is served (and --allow-tolerations passes tolerations through)', async () => {
    const ns = await namespace('opted-in', { 'runahead.dev/enabled': 'true' });
    const toleration = { key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' } as const;
    await createJob(ns, 'served', { tolerations: [toleration] });
    const created = await eventually('2 rank pods', async () =>
      (await pods(ns, 'served')).length === 2 ? pods(ns, 'served') : null,
    );
    expect(created[0]!.spec!.tolerations).toContainEqual(toleration);
  }, 30_000);

  test('elsewhere a job is left alone with one Warning event, also across a restart, and starts once labelled', async () => {
    const ns = await namespace('not-opted-in');
    await createJob(ns, 'waiting');
    const events = async () =>
      (await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=waiting' })).items;
    const [event] = await eventuallyExpect('one NamespaceNotEnabled event', events, (list) => {
      expect(list.map((e) => e.reason)).toEqual(['NamespaceNotEnabled']);
    });
    expect(event).toMatchObject({
      type: 'Warning',
      message:
        'namespace not-opted-in is not served by this operator (--namespaces labelled): the job waits ' +
        'until a cluster admin labels the namespace runahead.dev/enabled=true',
    });
    expect((await getJob(ns, 'waiting')).status).toBeUndefined();
    expect(await pods(ns, 'waiting')).toHaveLength(0);

    // A new operator adopts every job again: the event, named after the job, is not repeated. A
    // second job's event shows that the new operator has been through the queue.
    expect(await op.stop()).toBe(0);
    op = await start(kubeconfig);
    await createJob(ns, 'later');
    await eventuallyExpect(
      'the second job told',
      () => eventReasons(ns, 'later'),
      (reasons) => {
        expect(reasons).toEqual(['NamespaceNotEnabled']);
      },
    );
    expect((await events()).map((e) => e.reason)).toEqual(['NamespaceNotEnabled']);

    await cp.kubectl(['label', 'namespace', ns, 'runahead.dev/enabled=true']);
    await eventually('rank pods once labelled', async () => (await pods(ns, 'waiting')).length === 2, 20_000);
    expect((await getJob(ns, 'waiting')).status?.phase).toBe('Pending');
  }, 60_000);
});
