// The chart's RBAC is exactly what the operator calls: these lists are the operator's API calls, verb
// by verb. A rule added to the chart without a use, or a call added to the operator without a rule
// (caught by the operator's tests run as the chart's ServiceAccount, test/support/chart-rbac.ts),
// fails a test.
import { describe, expect, test } from '@jest/globals';
import { find, kinds, render, type Manifest } from '../support/chart.ts';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/** The operator's cluster-wide permissions, one resource at a time. */
export const OPERATOR_RULES: readonly Rule[] = [
  { apiGroups: ['runahead.dev'], resources: ['runaheadjobs'], verbs: ['get', 'list', 'watch', 'delete'] },
  { apiGroups: ['runahead.dev'], resources: ['runaheadjobs/status'], verbs: ['get', 'update', 'patch'] },
  { apiGroups: ['runahead.dev'], resources: ['runaheadservers'], verbs: ['list', 'watch'] },
  { apiGroups: ['runahead.dev'], resources: ['runaheadservers/status'], verbs: ['update'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['services'], verbs: ['get', 'list', 'watch', 'create'] },
  { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
];

/** Leader election, in the operator's own namespace only. */
export const LEADER_ELECTION_RULES: readonly Rule[] = [
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
];

/** Rules flattened to "group/resource verb" strings: equal sets mean equal permissions. */
export function permissions(rules: readonly Rule[]): string[] {
  return rules
    .flatMap((r) =>
      r.apiGroups.flatMap((g) =>
        r.resources.flatMap((res) => r.verbs.map((v) => `${g || 'core'}/${res} ${v}`)),
      ),
    )
    .sort();
}

const rulesOf = (m: Manifest): Rule[] => (m as unknown as { rules: Rule[] }).rules;

describe('chart RBAC', () => {
  test("the ClusterRole grants exactly the operator's calls, and no wildcard", async () => {
    const { manifests } = await render();
    const rules = rulesOf(find(manifests, 'ClusterRole'));
    expect(permissions(rules)).toEqual(permissions(OPERATOR_RULES));
    expect(JSON.stringify(rules)).not.toContain('*');
    for (const r of rules) expect(Object.keys(r).sort()).toEqual(['apiGroups', 'resources', 'verbs']);
  });

  test('--namespaces labelled adds exactly list and watch of namespaces', async () => {
    const { manifests } = await render({ set: ['operator.namespaces=labelled'] });
    expect(permissions(rulesOf(find(manifests, 'ClusterRole')))).toEqual(
      permissions([
        ...OPERATOR_RULES,
        { apiGroups: [''], resources: ['namespaces'], verbs: ['list', 'watch'] },
      ]),
    );
  });

  test("operator.podGroups adds exactly create and delete on the named schedulers' podgroups", async () => {
    const { manifests } = await render({ set: ['operator.podGroups={Coscheduling,Volcano}'] });
    expect(permissions(rulesOf(find(manifests, 'ClusterRole')))).toEqual(
      permissions([
        ...OPERATOR_RULES,
        { apiGroups: ['scheduling.x-k8s.io'], resources: ['podgroups'], verbs: ['create', 'delete'] },
        { apiGroups: ['scheduling.volcano.sh'], resources: ['podgroups'], verbs: ['create', 'delete'] },
      ]),
    );
    const volcano = await render({ set: ['operator.podGroups={Volcano}'] });
    expect(permissions(rulesOf(find(volcano.manifests, 'ClusterRole')))).toContain(
      'scheduling.volcano.sh/podgroups create',
    );
    expect(permissions(rulesOf(find(volcano.manifests, 'ClusterRole')))).not.toContain(
      'scheduling.x-k8s.io/podgroups create',
    );
  });

  test('operator.gangCapacityCheck adds exactly list and watch of nodes, and the flag', async () => {
    const { manifests } = await render({ set: ['operator.gangCapacityCheck=true'] });
    expect(permissions(rulesOf(find(manifests, 'ClusterRole')))).toEqual(
      permissions([...OPERATOR_RULES, { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] }]),
    );
    expect(JSON.stringify(find(manifests, 'Deployment'))).toContain('--gang-capacity-check');
  });

  test('only the operator gets runaheadjobs/status: no role aggregates into user roles, every binding is its own', async () => {
    // A user who could write a job's status could mark it Succeeded, or fake its TTFT.
    for (const set of [[], ['operator.namespaces=labelled'], ['operator.watchNamespace=ml']]) {
      const { manifests } = await render({ namespace: 'ops', set });
      const sa = find(manifests, 'ServiceAccount');
      for (const m of manifests.filter((x) => /^(Cluster)?Role$/.test(x.kind))) {
        expect(m).not.toHaveProperty('aggregationRule');
        expect(Object.keys(m.metadata.labels ?? {}).filter((k) => k.includes('aggregate-to'))).toEqual([]);
      }
      for (const b of manifests.filter((x) => /RoleBinding$/.test(x.kind)))
        expect((b as unknown as { subjects: unknown[] }).subjects).toEqual([
          { kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'ops' },
        ]);
    }
  });

  test('the Lease is a Role in the release namespace, bound to the ServiceAccount', async () => {
    const { manifests } = await render({ namespace: 'ops' });
    const role = find(manifests, 'Role');
    expect(role.metadata.namespace).toBe('ops');
    expect(permissions(rulesOf(role))).toEqual(permissions(LEADER_ELECTION_RULES));
    const binding = find(manifests, 'RoleBinding');
    const sa = find(manifests, 'ServiceAccount');
    expect(binding).toMatchObject({
      metadata: { namespace: 'ops' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name },
      subjects: [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'ops' }],
    });
    expect(find(manifests, 'ClusterRoleBinding')).toMatchObject({
      roleRef: { kind: 'ClusterRole', name: find(manifests, 'ClusterRole').metadata.name },
      subjects: [{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'ops' }],
    });
  });

  test('no Lease permission without leader election; no RBAC at all with rbac.create=false', async () => {
    const single = await render({ set: ['replicaCount=1', 'operator.leaderElection.enabled=false'] });
    expect(kinds(single.manifests)).not.toContain('Role');
    const none = await render({
      set: ['rbac.create=false', 'serviceAccount.create=false', 'serviceAccount.name=ops'],
    });
    expect(kinds(none.manifests).filter((k) => /Role|ServiceAccount/.test(k))).toEqual([]);
    expect(
      (
        find(none.manifests, 'Deployment') as unknown as {
          spec: { template: { spec: { serviceAccountName: string } } };
        }
      ).spec.template.spec.serviceAccountName,
    ).toBe('ops');
  });
});
