// charts/runahead-operator renders what the issue asks for, with default and non-default values, and
// refuses values that break its schema, naming the value. Needs helm (scripts/setup-tools.sh).
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { CHART_DIR, find, kinds, render, renderRaw, type Manifest } from '../support/chart.ts';
import { helm } from '../support/tools.ts';
import { RANK_KV_PORT, RANK_PORT } from '../../core/api/v1alpha1/names.ts';
import { RunaheadServerSpecSchema } from '../../core/api/v1alpha1/runahead-server.ts';
import {
  FRONT_PORT,
  FRONT_PORT_NAME,
  LABEL_SERVER,
  LABEL_SERVER_GROUP,
} from '../../core/api/v1alpha1/server-names.ts';
import { DEFAULT_OPERATOR_DEFAULTS } from '../../operator/desired-children.ts';
import { desiredFrontPod, serverRevision } from '../../operator/server-children.ts';

const TIMEOUT = 60_000;

interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests: Record<string, string> };
  securityContext: Record<string, unknown>;
}

function podSpec(m: Manifest): {
  securityContext: Record<string, unknown>;
  containers: Container[];
  serviceAccountName: string;
} {
  return (m as unknown as { spec: { template: { spec: ReturnType<typeof podSpec> } } }).spec.template.spec;
}

function spec(m: Manifest): Record<string, unknown> {
  return (m as unknown as { spec: Record<string, unknown> }).spec;
}

describe('helm lint', () => {
  test(
    'passes --strict with default values and with every option on',
    async () => {
      for (const set of [
        [],
        [
          'serviceMonitor.enabled=true',
          'podMonitor.enabled=true',
          'networkPolicy.enabled=true',
          'operator.watchNamespace=ml',
        ],
      ]) {
        const r = await helm(['lint', CHART_DIR, '--strict', ...set.flatMap((s) => ['--set', s])]);
        expect({ code: r.code, out: r.stdout + r.stderr }).toEqual({
          code: 0,
          out: expect.stringContaining('0 chart(s) failed'),
        });
      }
    },
    TIMEOUT,
  );
});

describe('helm template with default values', () => {
  test(
    'renders the operator, its RBAC, the metrics Service and the dashboard; nothing optional',
    async () => {
      const { manifests } = await render();
      expect(kinds(manifests)).toEqual(
        [
          'ClusterRole',
          'ClusterRoleBinding',
          'ConfigMap',
          'Deployment',
          'PodDisruptionBudget',
          'Role',
          'RoleBinding',
          'Service',
          'ServiceAccount',
        ].sort(),
      );
      for (const m of manifests.filter((m) => !m.kind.startsWith('Cluster')))
        expect([m.kind, m.metadata.namespace]).toEqual([m.kind, 'runahead-system']);
    },
    TIMEOUT,
  );

  test(
    'the Deployment: 2 replicas with leader election, probes, requests, a restricted security context, the downward API',
    async () => {
      const { manifests } = await render();
      const deployment = find(manifests, 'Deployment');
      expect(spec(deployment)['replicas']).toBe(2);
      const pod = podSpec(deployment);
      expect(pod.serviceAccountName).toBe(find(manifests, 'ServiceAccount').metadata.name);
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(pod.containers).toHaveLength(1);
      const c = pod.containers[0]!;
      expect(c.image).toBe('runahead-operator:0.1.0');
      expect(c.args).toEqual([
        'operator',
        '--metrics-address=0.0.0.0:8080',
        '--leader-election-namespace=runahead-system',
        '--lease-name=runahead-operator',
        '--worker-image=runahead-worker:0.1.0',
      ]);
      expect(c.env.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath])).toEqual([
        ['POD_NAME', 'metadata.name'],
        ['POD_NAMESPACE', 'metadata.namespace'],
      ]);
      expect(c.ports).toEqual([{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
      expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(Object.keys(c.resources.requests).sort()).toEqual(['cpu', 'memory']);
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        capabilities: { drop: ['ALL'] },
      });
    },
    TIMEOUT,
  );

  test(
    'the Service targets the metrics port of the operator pods',
    async () => {
      const { manifests } = await render();
      const service = spec(find(manifests, 'Service')) as {
        selector: Record<string, string>;
        ports: unknown[];
      };
      const template = (
        find(manifests, 'Deployment') as unknown as {
          spec: { template: { metadata: { labels: Record<string, string> } } };
        }
      ).spec.template.metadata.labels;
      expect(template).toMatchObject(service.selector);
      expect(service.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
    },
    TIMEOUT,
  );

  test(
    'the dashboard ConfigMap carries the sidecar label and the dashboard file unchanged',
    async () => {
      const { manifests } = await render();
      const cm = find(manifests, 'ConfigMap') as Manifest & { data: Record<string, string> };
      expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
      const file = readFileSync(`${CHART_DIR}/dashboards/runahead.json`, 'utf8');
      expect(JSON.parse(cm.data['runahead.json']!)).toEqual(JSON.parse(file));
    },
    TIMEOUT,
  );

  test(
    'the CRDs come from crds/ only with --include-crds (Helm installs it once, never upgrades it)',
    async () => {
      expect(kinds((await render()).manifests)).not.toContain('CustomResourceDefinition');
      const crds = (await render({ includeCrds: true })).manifests.filter(
        (m) => m.kind === 'CustomResourceDefinition',
      );
      expect(crds.map((c) => c.metadata.name).sort()).toEqual([
        'runaheadjobs.runahead.dev',
        'runaheadservers.runahead.dev',
      ]);
    },
    TIMEOUT,
  );
});

describe('helm template with non-default values', () => {
  test(
    'replicas, images by tag and digest, one watched namespace, extra args and env',
    async () => {
      const digest = `sha256:${'ab'.repeat(32)}`;
      const { manifests } = await render({
        values: JSON.stringify({
          replicaCount: 3,
          image: {
            repository: 'registry.example.com:5000/ml/runahead-operator',
            tag: '1.2.3',
            pullPolicy: 'Always',
          },
          workerImage: { repository: 'registry.example.com/ml/runahead-worker', digest },
          imagePullSecrets: [{ name: 'pull' }],
          operator: {
            watchNamespace: 'ml',
            extraArgs: ['--log-level=debug'],
            extraEnv: [{ name: 'X', value: '1' }],
          },
          podAnnotations: { 'example.com/a': 'b' },
          nodeSelector: { 'kubernetes.io/os': 'linux' },
        }),
      });
      const deployment = find(manifests, 'Deployment');
      expect(spec(deployment)['replicas']).toBe(3);
      const c = podSpec(deployment).containers[0]!;
      expect(c.image).toBe('registry.example.com:5000/ml/runahead-operator:1.2.3');
      expect(c.args).toEqual(
        expect.arrayContaining([
          '--namespace=ml',
          `--worker-image=registry.example.com/ml/runahead-worker@${digest}`,
          '--log-level=debug',
        ]),
      );
      expect(c.env.map((e) => e.name)).toEqual(['POD_NAME', 'POD_NAMESPACE', 'X']);
      // One watched namespace: the ClusterRole is bound there only.
      expect(kinds(manifests)).not.toContain('ClusterRoleBinding');
      const binding = manifests.find((m) => m.kind === 'RoleBinding' && m.metadata.namespace === 'ml');
      expect(binding).toMatchObject({ roleRef: { kind: 'ClusterRole', name: 'runahead-runahead-operator' } });
    },
    TIMEOUT,
  );

  test(
    'one replica without leader election; and more than one without it is refused',
    async () => {
      const { manifests } = await render({
        set: ['replicaCount=1', 'operator.leaderElection.enabled=false'],
      });
      const c = podSpec(find(manifests, 'Deployment')).containers[0]!;
      expect(c.args).toContain('--no-leader-election');
      expect(c.args.some((a) => a.startsWith('--lease-name'))).toBe(false);
      expect(kinds(manifests)).not.toContain('Role');
      expect(kinds(manifests)).not.toContain('PodDisruptionBudget');

      const r = await renderRaw({ set: ['operator.leaderElection.enabled=false'] });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/replicaCount is 2 but operator.leaderElection.enabled is false/);
    },
    TIMEOUT,
  );

  test(
    "ServiceMonitor on: scrapes the Service port with honorLabels (the job and namespace labels are the jobs')",
    async () => {
      const { manifests } = await render({
        set: ['serviceMonitor.enabled=true', 'serviceMonitor.labels.release=kube-prometheus-stack'],
      });
      const sm = find(manifests, 'ServiceMonitor');
      expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(sm.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
      expect(spec(sm)['endpoints']).toEqual([
        { port: 'http', path: '/metrics', interval: '30s', scrapeTimeout: '10s', honorLabels: true },
      ]);
      expect((spec(sm)['selector'] as { matchLabels: unknown }).matchLabels).toEqual(
        (spec(find(manifests, 'Service')) as { selector: unknown }).selector,
      );
    },
    TIMEOUT,
  );

  test(
    'PodMonitor on: scrapes the port of the fronts the operator creates, labelling series with their server and group',
    async () => {
      const serverSpec = RunaheadServerSpecSchema.parse({
        ranks: 2,
        model: { synthetic: { preset: 'tiny' } },
      });
      const server = { name: 'chat', namespace: 'ml', uid: 'uid-1', spec: serverSpec };
      const front = desiredFrontPod(server, 1, serverRevision(serverSpec), DEFAULT_OPERATOR_DEFAULTS);
      const { manifests } = await render({
        set: ['podMonitor.enabled=true', 'podMonitor.labels.release=kube-prometheus-stack'],
      });
      const pm = find(manifests, 'PodMonitor');
      expect(pm.apiVersion).toBe('monitoring.coreos.com/v1');
      expect(pm.metadata).toMatchObject({
        name: 'runahead-runahead-operator-fronts',
        namespace: 'runahead-system',
        labels: { release: 'kube-prometheus-stack' },
      });
      const podMonitor = spec(pm) as {
        selector: { matchLabels: Record<string, string> };
        namespaceSelector: unknown;
        podMetricsEndpoints: {
          port: string;
          path: string;
          relabelings: { sourceLabels: string[]; targetLabel: string }[];
        }[];
      };
      // The selector picks the front pods, and only them (not the ranks, which have no /metrics).
      expect(front.metadata!.labels).toMatchObject(podMonitor.selector.matchLabels);
      expect(podMonitor.namespaceSelector).toEqual({ any: true });
      const [endpoint] = podMonitor.podMetricsEndpoints;
      expect(endpoint).toMatchObject({ port: FRONT_PORT_NAME, path: '/metrics', interval: '30s' });
      expect(front.spec!.containers.flatMap((c) => c.ports ?? [])).toContainEqual(
        expect.objectContaining({ name: endpoint!.port, containerPort: FRONT_PORT }),
      );
      // Prometheus' pod label meta labels: the label name with every invalid character as `_`.
      const meta = (label: string) => `__meta_kubernetes_pod_label_${label.replace(/[^a-zA-Z0-9_]/g, '_')}`;
      expect(endpoint!.relabelings).toEqual([
        { sourceLabels: [meta(LABEL_SERVER)], targetLabel: 'server' },
        { sourceLabels: [meta(LABEL_SERVER_GROUP)], targetLabel: 'group' },
      ]);
      expect(front.metadata!.labels).toMatchObject({ [LABEL_SERVER]: 'chat', [LABEL_SERVER_GROUP]: '1' });

      // Its namespaces: those named, else the one watched namespace, else all.
      for (const [set, namespaceSelector] of [
        [['operator.watchNamespace=ml'], { matchNames: ['ml'] }],
        [
          ['operator.watchNamespace=ml', 'podMonitor.namespaces={team-a,team-b}'],
          { matchNames: ['team-a', 'team-b'] },
        ],
      ] as const) {
        const r = await render({ set: ['podMonitor.enabled=true', ...set] });
        expect(spec(find(r.manifests, 'PodMonitor'))['namespaceSelector']).toEqual(namespaceSelector);
      }
    },
    TIMEOUT,
  );

  test(
    'NetworkPolicy on: rank pods admit the rank and K/V ports from rank pods only, the rank port from fronts, in each job namespace',
    async () => {
      const { manifests } = await render({
        set: ['networkPolicy.enabled=true', 'networkPolicy.namespaces={team-a,team-b}'],
      });
      const policies = manifests.filter((m) => m.kind === 'NetworkPolicy');
      expect(policies.map((p) => p.metadata.namespace)).toEqual(['team-a', 'team-b']);
      const ranks = {
        'app.kubernetes.io/managed-by': 'runahead-operator',
        'app.kubernetes.io/component': 'worker',
      };
      for (const p of policies)
        expect(spec(p)).toEqual({
          podSelector: { matchLabels: ranks },
          policyTypes: ['Ingress'],
          ingress: [
            {
              from: [{ podSelector: { matchLabels: ranks } }],
              ports: [
                { protocol: 'TCP', port: RANK_PORT },
                { protocol: 'TCP', port: RANK_KV_PORT },
              ],
            },
            {
              from: [{ podSelector: { matchLabels: { ...ranks, 'app.kubernetes.io/component': 'front' } } }],
              ports: [{ protocol: 'TCP', port: RANK_PORT }],
            },
          ],
        });
      const single = await render({ set: ['networkPolicy.enabled=true'] });
      expect(find(single.manifests, 'NetworkPolicy').metadata.namespace).toBe('runahead-system');
    },
    TIMEOUT,
  );

  test(
    'dashboards off, into another namespace, with a folder annotation',
    async () => {
      expect(kinds((await render({ set: ['dashboards.enabled=false'] })).manifests)).not.toContain(
        'ConfigMap',
      );
      const { manifests } = await render({
        set: ['dashboards.namespace=monitoring', 'dashboards.annotations.grafana_folder=Runahead'],
      });
      const cm = find(manifests, 'ConfigMap');
      expect(cm.metadata.namespace).toBe('monitoring');
      expect(cm.metadata['annotations']).toEqual({ grafana_folder: 'Runahead' });
    },
    TIMEOUT,
  );
});

describe('values.schema.json refuses bad values, naming them', () => {
  // Helm names the offending value by its JSON pointer: "at '/image/pullPolicy': ...".
  const cases: [string, RenderArgs, string][] = [
    [
      'an unknown top-level key (a typo)',
      { set: ['replicas=3'] },
      "at '': additional properties 'replicas' not allowed",
    ],
    [
      'an unknown nested key',
      { set: ['serviceMonitor.enable=true'] },
      "at '/serviceMonitor': additional properties 'enable' not allowed",
    ],
    [
      'replicaCount as a string',
      { set: ['replicaCount=two'] },
      "at '/replicaCount': got string, want integer",
    ],
    ['a negative replicaCount', { set: ['replicaCount=-1'] }, "at '/replicaCount': minimum: got -1, want 0"],
    [
      'an unknown pull policy',
      { set: ['image.pullPolicy=Sometimes'] },
      "at '/image/pullPolicy': value must be one of",
    ],
    [
      'a tag inside the repository',
      { set: ['image.repository=runahead-operator:1.0'] },
      "at '/image/repository': 'runahead-operator:1.0' does not match pattern",
    ],
    [
      'a malformed digest',
      { set: ['workerImage.digest=sha256:xyz'] },
      "at '/workerImage/digest': 'sha256:xyz' does not match pattern",
    ],
    [
      'a port out of range',
      { set: ['operator.port=70000'] },
      "at '/operator/port': maximum: got 70,000, want 65,535",
    ],
    [
      'a namespace that is not a DNS label',
      { set: ['operator.watchNamespace=Team_A'] },
      "at '/operator/watchNamespace': 'Team_A' does not match pattern",
    ],
    [
      'a bad scrape interval',
      { set: ['serviceMonitor.interval=soon'] },
      "at '/serviceMonitor/interval': 'soon' does not match pattern",
    ],
    [
      'a PodMonitor namespace that is not a DNS label',
      { set: ['podMonitor.namespaces={Team_A}'] },
      "at '/podMonitor/namespaces/0': 'Team_A' does not match pattern",
    ],
    [
      'an unknown Service type',
      { set: ['service.type=Ingress'] },
      "at '/service/type': value must be one of",
    ],
    [
      'extraArgs that are not flags',
      { set: ['operator.extraArgs={debug}'] },
      "at '/operator/extraArgs/0': 'debug' does not match pattern '^--'",
    ],
    [
      'a NetworkPolicy namespace listed twice',
      { set: ['networkPolicy.namespaces={a,a}'] },
      "at '/networkPolicy/namespaces': items at 0 and 1 are equal",
    ],
  ];
  type RenderArgs = { set: string[] };

  test.each(cases)(
    '%s',
    async (_what, args, message) => {
      const r = await renderRaw(args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/values don't meet the specifications of the schema/);
      expect(r.stderr).toContain(message);
    },
    TIMEOUT,
  );
});

describe('NOTES.txt', () => {
  test('is in the chart and names the commands to run next', () => {
    const notes = readFileSync(`${CHART_DIR}/templates/NOTES.txt`, 'utf8');
    for (const next of [
      'rollout status',
      'kubectl apply -f examples/synthetic-2ranks.yaml',
      'kubectl get runaheadjobs -w',
      'port-forward',
      'kubectl apply --server-side',
    ])
      expect(notes).toContain(next);
  });
});
