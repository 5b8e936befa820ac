// The real control plane (etcd + kube-apiserver + kube-controller-manager) that integration tests run
// against: @kubernetes/client-node and kubectl both work with its kubeconfig, and garbage collection
// of owner-referenced objects happens. Needs KUBEBUILDER_ASSETS (scripts/setup-envtest.sh).
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ControlPlane } from '../support/control-plane.ts';
import { eventually } from '../support/eventually.ts';

describe('control plane', () => {
  let cp: ControlPlane | undefined;
  let core: CoreV1Api;

  beforeAll(async () => {
    cp = await ControlPlane.start({ controllerManager: true });
    process.stderr.write(`control plane ready in ${cp.startupMs} ms\n`);
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
  }, 120_000);

  afterAll(async () => {
    await cp?.stop();
  });

  test('starts quickly', () => {
    expect(cp!.startupMs).toBeLessThan(30_000);
  });

  test('client-node creates and reads a namespace and a ConfigMap', async () => {
    await core.createNamespace({ body: { metadata: { name: 'cp-client' } } });
    const ns = await core.readNamespace({ name: 'cp-client' });
    expect(ns.status?.phase).toBe('Active');

    await core.createNamespacedConfigMap({
      namespace: 'cp-client',
      body: { metadata: { name: 'settings' }, data: { chain: 'rank0,rank1' } },
    });
    const cm = await core.readNamespacedConfigMap({ namespace: 'cp-client', name: 'settings' });
    expect(cm.data).toEqual({ chain: 'rank0,rank1' });
    expect(cm.metadata?.uid).toBeTruthy();
  });

  test('kubectl works with the kubeconfig', async () => {
    const version = JSON.parse(await cp!.kubectl(['version', '-o', 'json'])) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    expect(version.serverVersion.gitVersion).toMatch(/^v1\.34\.\d+$/);
    expect(version.clientVersion.gitVersion).toBe(version.serverVersion.gitVersion);

    await core.createNamespace({ body: { metadata: { name: 'cp-kubectl' } } });
    const names = (await cp!.kubectl(['get', 'ns', '-o', 'name'])).split('\n');
    expect(names).toEqual(expect.arrayContaining(['namespace/default', 'namespace/cp-kubectl']));
  });

  test('deleting an owner garbage-collects its dependent', async () => {
    const namespace = 'cp-gc';
    await core.createNamespace({ body: { metadata: { name: namespace } } });
    const owner = await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: 'owner' } } });
    await core.createNamespacedConfigMap({
      namespace,
      body: {
        metadata: {
          name: 'dependent',
          ownerReferences: [
            { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata!.uid! },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace, name: 'owner' });

    const gone = async (): Promise<boolean> => {
      try {
        await core.readNamespacedConfigMap({ namespace, name: 'dependent' });
        return false;
      } catch (err) {
        if (err instanceof ApiException && err.code === 404) return true;
        throw err;
      }
    };
    await eventually('the dependent ConfigMap to be garbage-collected', gone, 30_000, 100);
  }, 40_000);
});
