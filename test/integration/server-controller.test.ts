// The RunaheadServer controller where the API serves no RunaheadServers (a chart upgraded in place
// keeps its old CRDs): it says so, reconciles nothing, and leaves the operator ready and healthy.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';
import { ServerController } from '../../operator/server-controller.ts';
import { DEFAULT_OPERATOR_DEFAULTS } from '../../operator/desired-children.ts';
import { OperatorMetrics } from '../../operator/platform/metrics.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { repoPath } from '../support/operator.ts';

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
