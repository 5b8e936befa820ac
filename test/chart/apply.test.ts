// The chart against a real API server (test/support/control-plane.ts): `helm install` creates every
// object (the CRD from crds/ included) and prints NOTES.txt; the manifests of other values pass
// `kubectl apply --dry-run=server`, i.e. the API server's own validation and admission; and the
// chart's ServiceAccount can do exactly what the operator needs. Needs KUBEBUILDER_ASSETS and helm.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { fileURLToPath } from 'node:url';
import { ControlPlane } from '../support/control-plane.ts';
import { chartIdentity, type ChartIdentity } from '../support/chart-rbac.ts';
import { CHART_DIR, render, renderRaw } from '../support/chart.ts';
import { helm, run } from '../support/tools.ts';

const NAMESPACE = 'runahead-system';
const TIMEOUT = 120_000;

// Just enough of the Prometheus Operator's CRDs for the API server to accept ServiceMonitors and
// PodMonitors.
const monitoringCrd = (kind: 'ServiceMonitor' | 'PodMonitor') =>
  JSON.stringify({
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${kind.toLowerCase()}s.monitoring.coreos.com` },
    spec: {
      group: 'monitoring.coreos.com',
      scope: 'Namespaced',
      names: {
        kind,
        listKind: `${kind}List`,
        plural: `${kind.toLowerCase()}s`,
        singular: kind.toLowerCase(),
      },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      ],
    },
  });

describe('the chart on a real API server', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await ControlPlane.start();
    for (const ns of ['team-a', 'team-b', 'monitoring']) await cp.kubectl(['create', 'namespace', ns]);
  }, TIMEOUT);

  afterAll(async () => {
    // Undefined when start failed.
    await (cp as ControlPlane | undefined)?.stop();
  });

  const dryRun = (yaml: string): Promise<string> =>
    cp.kubectl(['apply', '--dry-run=server', '-f', '-'], yaml);

  test(
    'helm install creates the CRD and every object, and prints what to run next',
    async () => {
      const r = await helm([
        'install',
        'runahead',
        CHART_DIR,
        '--namespace',
        NAMESPACE,
        '--create-namespace',
        '--kubeconfig',
        cp.kubeconfigPath,
      ]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      expect(r.stdout).toContain('STATUS: deployed');
      for (const next of [
        `kubectl -n ${NAMESPACE} rollout status deployment/runahead-runahead-operator`,
        'kubectl apply -f examples/synthetic-2ranks.yaml',
        'kubectl get runaheadjobs -w',
        `kubectl -n ${NAMESPACE} port-forward service/runahead-runahead-operator 8080:8080`,
        'Jobs without spec.image run runahead-worker:0.1.0',
        'kubectl apply --server-side -f',
      ])
        expect(r.stdout).toContain(next);

      await cp.kubectl([
        'wait',
        '--for=condition=Established',
        'crd/runaheadjobs.runahead.dev',
        '--timeout=30s',
      ]);
      expect(await cp.kubectl(['get', 'runaheadjobs', '-A', '-o', 'name'])).toBe('');
      // The README's next step: the example job is accepted by the CRD that Helm installed.
      await cp.kubectl([
        'apply',
        '-n',
        'team-a',
        '-f',
        fileURLToPath(new URL('../../examples/synthetic-2ranks.yaml', import.meta.url)),
      ]);
      expect(await cp.kubectl(['get', 'runaheadjobs', '-n', 'team-a', '-o', 'name'])).toBe(
        'runaheadjob.runahead.dev/synthetic-2ranks\n',
      );
      const created = await cp.kubectl([
        'get',
        'deployment,service,serviceaccount,role,rolebinding,configmap,poddisruptionbudget',
        '-n',
        NAMESPACE,
        '-l',
        'app.kubernetes.io/instance=runahead',
        '-o',
        'name',
      ]);
      expect(created.trim().split('\n').sort()).toEqual(
        [
          'configmap/runahead-runahead-operator-dashboard',
          'deployment.apps/runahead-runahead-operator',
          'poddisruptionbudget.policy/runahead-runahead-operator',
          'role.rbac.authorization.k8s.io/runahead-runahead-operator-leader-election',
          'rolebinding.rbac.authorization.k8s.io/runahead-runahead-operator-leader-election',
          'service/runahead-runahead-operator',
          'serviceaccount/runahead-runahead-operator',
        ].sort(),
      );
      // An upgrade with other values goes through too (the CRD is left alone: Helm's crds/ rule).
      const up = await helm([
        'upgrade',
        'runahead',
        CHART_DIR,
        '--namespace',
        NAMESPACE,
        '--kubeconfig',
        cp.kubeconfigPath,
        '--set',
        'replicaCount=3',
      ]);
      expect({ code: up.code, stderr: up.stderr }).toEqual({ code: 0, stderr: '' });
      expect(
        await cp.kubectl([
          'get',
          'deployment/runahead-runahead-operator',
          '-n',
          NAMESPACE,
          '-o',
          'jsonpath={.spec.replicas}',
        ]),
      ).toBe('3');
    },
    TIMEOUT,
  );

  test(
    'kubectl apply --dry-run=server accepts the default manifests and the CRD',
    async () => {
      const { yaml } = await render({ namespace: NAMESPACE, includeCrds: true });
      const out = await dryRun(yaml);
      expect(out).toMatch(
        /customresourcedefinition.apiextensions.k8s.io\/runaheadjobs.runahead.dev (configured|unchanged) \(server dry run\)/,
      );
      expect(out).toMatch(
        /deployment.apps\/runahead-runahead-operator (configured|unchanged) \(server dry run\)/,
      );
    },
    TIMEOUT,
  );

  test(
    'kubectl apply --dry-run=server accepts every option on: ServiceMonitor, PodMonitor, NetworkPolicies, one watched namespace, images by digest',
    async () => {
      for (const kind of ['ServiceMonitor', 'PodMonitor'] as const) {
        await cp.kubectl(['apply', '--server-side', '-f', '-'], monitoringCrd(kind));
        await cp.kubectl([
          'wait',
          '--for=condition=Established',
          `crd/${kind.toLowerCase()}s.monitoring.coreos.com`,
          '--timeout=30s',
        ]);
      }
      const { yaml, manifests } = await render({
        release: 'full',
        namespace: NAMESPACE,
        values: JSON.stringify({
          replicaCount: 3,
          image: {
            repository: 'registry.example.com/ml/runahead-operator',
            digest: `sha256:${'0f'.repeat(32)}`,
          },
          workerImage: { repository: 'registry.example.com/ml/runahead-worker', tag: '0.1.0-cuda12' },
          imagePullSecrets: [{ name: 'registry' }],
          operator: { watchNamespace: 'team-a', extraEnv: [{ name: 'LOG_LEVEL', value: 'debug' }] },
          serviceAccount: { annotations: { 'example.com/role': 'runahead' } },
          serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
          podMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' }, namespaces: ['team-b'] },
          networkPolicy: {
            enabled: true,
            namespaces: ['team-a', 'team-b'],
            extraIngress: [
              {
                from: [
                  { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
                ],
              },
            ],
          },
          dashboards: { namespace: 'monitoring', annotations: { grafana_folder: 'Runahead' } },
          tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoSchedule' }],
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [
                  { matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In', values: ['linux'] }] },
                ],
              },
            },
          },
          priorityClassName: 'system-cluster-critical',
          service: { type: 'NodePort' },
        }),
      });
      const out = await dryRun(yaml);
      const created = out.trim().split('\n');
      expect(created).toHaveLength(manifests.length);
      for (const line of created) expect(line).toMatch(/ created \(server dry run\)$/);
      for (const kind of [
        'servicemonitor.monitoring.coreos.com/full-runahead-operator',
        'podmonitor.monitoring.coreos.com/full-runahead-operator-fronts',
        'networkpolicy.networking.k8s.io/full-runahead-operator-ranks',
        'rolebinding.rbac.authorization.k8s.io/full-runahead-operator',
      ])
        expect(out).toContain(kind);
    },
    TIMEOUT,
  );

  test(
    'what the schema lets through, the API server still checks (a bad quantity is refused)',
    async () => {
      const r = await renderRaw({ namespace: NAMESPACE, set: ['resources.requests.cpu=lots'] });
      expect(r.code).toBe(0);
      await expect(dryRun(r.stdout)).rejects.toThrow(/quantities must match the regular expression/);
    },
    TIMEOUT,
  );

  describe("the chart's ServiceAccount", () => {
    let identity: ChartIdentity;
    const asIdentity = (args: readonly string[]) =>
      run(cp.kubectlPath, [`--kubeconfig=${identity.kubeconfigPath}`, ...args], { env: { KUBECONFIG: '' } });
    // kubectl auth can-i: exit 0 and "yes", or exit 1 and "no".
    const canI = async (
      verb: string,
      resource: string,
      namespace: string | null,
      subresource?: string,
    ): Promise<boolean> => {
      const r = await asIdentity([
        'auth',
        'can-i',
        verb,
        resource,
        ...(subresource ? [`--subresource=${subresource}`] : []),
        ...(namespace === null ? ['--all-namespaces'] : ['-n', namespace]),
      ]);
      if (r.code > 1 || r.stderr.trim() !== '')
        throw new Error(`kubectl auth can-i failed (${r.code}): ${r.stderr}`);
      return r.code === 0 && r.stdout.trim() === 'yes';
    };

    beforeAll(async () => {
      identity = await chartIdentity(cp, { namespace: 'rbac-check' });
    }, TIMEOUT);

    test('authenticates as the ServiceAccount, not as the admin', async () => {
      const r = await asIdentity(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}']);
      expect(r.stdout).toBe(`system:serviceaccount:rbac-check:${identity.serviceAccount}`);
    });

    test(
      'may do what the operator does, in any namespace',
      async () => {
        const allowed: [string, string, string | null, string?][] = [
          ['list', 'runaheadjobs.runahead.dev', null],
          ['watch', 'runaheadjobs.runahead.dev', null],
          ['get', 'runaheadjobs.runahead.dev', 'team-a'],
          ['delete', 'runaheadjobs.runahead.dev', 'team-a'],
          ['update', 'runaheadjobs.runahead.dev', 'team-a', 'status'],
          ['patch', 'runaheadjobs.runahead.dev', 'team-b', 'status'],
          ['create', 'pods', 'team-a'],
          ['delete', 'pods', 'team-a'],
          ['patch', 'pods', 'team-a'],
          ['watch', 'pods', null],
          ['create', 'services', 'team-a'],
          ['create', 'configmaps', 'team-a'],
          ['delete', 'configmaps', 'team-a'],
          ['create', 'events', 'team-a'],
          ['patch', 'events.events.k8s.io', 'team-a'],
          ['get', 'leases.coordination.k8s.io', 'rbac-check'],
          ['create', 'leases.coordination.k8s.io', 'rbac-check'],
          ['update', 'leases.coordination.k8s.io', 'rbac-check'],
        ];
        for (const [verb, resource, ns, sub] of allowed)
          expect([verb, resource, sub, ns, await canI(verb, resource, ns, sub)]).toEqual([
            verb,
            resource,
            sub,
            ns,
            true,
          ]);
      },
      TIMEOUT,
    );

    test(
      'may do nothing more',
      async () => {
        const denied: [string, string, string | null, string?][] = [
          ['create', 'runaheadjobs.runahead.dev', 'team-a'],
          ['update', 'runaheadjobs.runahead.dev', 'team-a'],
          ['patch', 'runaheadjobs.runahead.dev', 'team-a'],
          ['update', 'pods', 'team-a'],
          ['create', 'pods', 'team-a', 'exec'],
          ['delete', 'services', 'team-a'],
          ['update', 'configmaps', 'team-a'],
          ['get', 'secrets', 'team-a'],
          ['list', 'secrets', null],
          ['delete', 'events', 'team-a'],
          ['create', 'leases.coordination.k8s.io', 'team-a'],
          ['delete', 'leases.coordination.k8s.io', 'rbac-check'],
          ['list', 'nodes', null],
          ['create', 'customresourcedefinitions.apiextensions.k8s.io', null],
          ['create', 'networkpolicies.networking.k8s.io', 'team-a'],
        ];
        for (const [verb, resource, ns, sub] of denied)
          expect([verb, resource, sub, ns, await canI(verb, resource, ns, sub)]).toEqual([
            verb,
            resource,
            sub,
            ns,
            false,
          ]);
      },
      TIMEOUT,
    );
  });
});
