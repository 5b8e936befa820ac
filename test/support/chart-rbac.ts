// Runs integration tests as the operator would run in a cluster: a ServiceAccount bound only to the
// RBAC objects the chart renders (ClusterRole, Role for the Lease, their bindings), with a token from
// the TokenRequest API. A call the chart does not allow fails with 403, so a test that passes with
// this kubeconfig proves the chart's rules sufficient for what it exercised.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ControlPlane } from './control-plane.ts';
import { render, type Manifest } from './chart.ts';

const RBAC_KINDS = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);

export interface ChartIdentity {
  /** Kubeconfig that authenticates as the chart's ServiceAccount. */
  readonly kubeconfigPath: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The RBAC objects applied. */
  readonly manifests: readonly Manifest[];
}

export interface ChartIdentityOptions {
  /** The operator's namespace (the release namespace; the Lease lives there). Default runahead-system. */
  readonly namespace?: string;
  /** More `--set` values for the chart (e.g. operator.watchNamespace=...). */
  readonly set?: readonly string[];
  /**
   * Helm release name: it prefixes the cluster-scoped ClusterRole and binding, so two identities (or
   * one next to a `helm install`) need different ones. Default `rbac-<namespace>`.
   */
  readonly release?: string;
  /** Token lifetime (kubectl create token --duration). Default 1h. */
  readonly duration?: string;
}

/** Applies the chart's RBAC to `cp` and returns a kubeconfig for its ServiceAccount. */
export async function chartIdentity(
  cp: ControlPlane,
  opts: ChartIdentityOptions = {},
): Promise<ChartIdentity> {
  const namespace = opts.namespace ?? 'runahead-system';
  const { manifests } = await render({
    release: opts.release ?? `rbac-${namespace}`,
    namespace,
    set: opts.set ?? [],
  });
  const rbac = manifests.filter((m) => RBAC_KINDS.has(m.kind));
  const sa = rbac.find((m) => m.kind === 'ServiceAccount');
  if (!sa) throw new Error('the chart rendered no ServiceAccount');
  const namespaces = new Set(
    rbac.map((m) => m.metadata.namespace).filter((n): n is string => n !== undefined),
  );
  for (const ns of namespaces)
    await cp
      .kubectl(['create', 'namespace', ns, '--dry-run=client', '-o', 'yaml'])
      .then((y) => cp.kubectl(['apply', '-f', '-'], y));
  await cp.kubectl(
    ['apply', '--server-side', '--field-manager=chart-identity', '-f', '-'],
    rbac.map((m) => stringify(m)).join('---\n'),
  );
  const token = (
    await cp.kubectl([
      'create',
      'token',
      sa.metadata.name,
      '-n',
      namespace,
      `--duration=${opts.duration ?? '1h'}`,
    ])
  ).trim();
  const config = JSON.parse((await cp.kubectl(['config', 'view', '--raw', '-o', 'json'])) || '{}') as {
    users: { name: string; user: Record<string, unknown> }[];
    contexts: { context: Record<string, unknown> }[];
  };
  config.users = [{ name: 'admin', user: { token } }];
  for (const c of config.contexts) c.context['namespace'] = namespace;
  const kubeconfigPath = join(cp.dir, `kubeconfig-${sa.metadata.name}`);
  writeFileSync(kubeconfigPath, JSON.stringify(config, null, 2), { mode: 0o600 });
  return { kubeconfigPath, namespace, serviceAccount: sa.metadata.name, manifests: rbac };
}
