// The RunaheadServer controller on a real API server, in-process: where the API serves no
// RunaheadServers (a chart upgraded in place keeps its old CRDs) it reconciles nothing and leaves the
// operator ready and healthy; with --namespaces labelled a server in a namespace not opted in gets
// nothing until the namespace is labelled, then its Services and pods, and its per-server metrics
// until it is deleted.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ServerController } from '../../operator/server-controller.ts';
import { DEFAULT_OPERATOR_DEFAULTS } from '../../operator/desired-children.ts';
import { OperatorMetrics } from '../../operator/platform/metrics.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { eventually } from '../support/eventually.ts';
import { installCrds, repoPath } from '../support/operator.ts';

jest.setTimeout(60_000);

describe('ServerController without the RunaheadServer CRD', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await ControlPlane.start();
    await cp.kubectl(['apply', '--server-side', '-f', repoPath('crds/runahead.dev_runaheadjobs.yaml')]);
  }, 120_000);
  afterAll(async () => {
    await cp.stop();
  });

  test('starts at once, synced and healthy, and stops', async () => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    const controller = new ServerController({
      kubeConfig,
      defaults: DEFAULT_OPERATOR_DEFAULTS,
      metrics: new OperatorMetrics(),
    });
    await controller.start();
    expect({ synced: controller.synced, healthy: controller.healthy }).toEqual({
      synced: true,
      healthy: true,
    });
    await controller.stop();
  });
});

describe('ServerController with --namespaces labelled', () => {
  let cp: ControlPlane;
  let controller: ServerController | undefined;

  beforeAll(async () => {
    cp = await ControlPlane.start();
    await installCrds(cp);
  }, 120_000);
  afterAll(async () => {
    await controller?.stop();
    await cp.stop();
  });

  test('a server in a namespace not opted in gets nothing until the namespace is labelled', async () => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(cp.kubeconfigPath);
    const core = kubeConfig.makeApiClient(CoreV1Api);
    await cp.kubectl(['create', 'namespace', 'ml']);
    await eventually(
      'the RunaheadServer CRD served',
      () => cp.kubectl(['get', 'runaheadservers', '-n', 'ml']).then(() => true),
      60_000,
      200,
    );
    await cp.kubectl(
      ['apply', '-f', '-'],
      stringify({
        apiVersion: 'runahead.dev/v1alpha1',
        kind: 'RunaheadServer',
        metadata: { name: 'chat', namespace: 'ml' },
        spec: { ranks: 2, model: { synthetic: { preset: 'tiny' } }, executionProvider: 'cpu' },
      }),
    );
    const metrics = new OperatorMetrics({ processMetrics: false });
    const serverSeries = async () =>
      (await metrics.text()).split('\n').filter((l) => l.startsWith('runahead_server_'));
    controller = new ServerController({
      kubeConfig,
      defaults: { ...DEFAULT_OPERATOR_DEFAULTS, namespacePolicy: { namespaces: 'labelled' } },
      metrics,
    });
    await controller.start();
    // Given time to act, it does not: no pod, no Service, no status.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await core.listNamespacedPod({ namespace: 'ml' })).items).toEqual([]);
    expect((await core.listNamespacedService({ namespace: 'ml' })).items).toEqual([]);
    await cp.kubectl(['label', 'namespace', 'ml', 'runahead.dev/enabled=true']);
    const pods = await eventually(
      'the group created once the namespace opted in',
      async () => {
        const names = (await core.listNamespacedPod({ namespace: 'ml' })).items.map((p) => p.metadata?.name);
        return names.length === 3 ? names.sort() : null;
      },
      20_000,
      200,
    );
    expect(pods).toEqual(['chat-g0-0', 'chat-g0-1', 'chat-g0-front']);
    const services = (await core.listNamespacedService({ namespace: 'ml' })).items.map(
      (s) => s.metadata?.name,
    );
    expect(services.sort()).toEqual(['chat', 'chat-g0-ranks']);
    const status = await eventually(
      'the status written',
      async () =>
        (
          JSON.parse(await cp.kubectl(['get', 'runaheadserver', 'chat', '-n', 'ml', '-o', 'json'])) as {
            status?: { endpoint?: string; readyReplicas?: number };
          }
        ).status,
      10_000,
      200,
    );
    expect(status).toMatchObject({
      endpoint: 'http://chat.ml.svc.cluster.local:8000/v1/completions',
      readyReplicas: 0,
    });
    expect(await serverSeries()).toEqual([
      'runahead_server_groups_desired{namespace="ml",server="chat"} 1',
      'runahead_server_groups_ready{namespace="ml",server="chat"} 0',
      'runahead_server_groups_updated{namespace="ml",server="chat"} 0',
    ]);
    await cp.kubectl(['delete', 'runaheadserver', 'chat', '-n', 'ml', '--wait=false']);
    await eventually(
      'the server’s series removed once it is deleted',
      async () => ((await serverSeries()).length === 0 ? true : null),
      20_000,
      200,
    );
  });
});
