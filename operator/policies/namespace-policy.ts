// What a cluster admin allows: which namespaces the operator serves. `all` (the default) serves
// RunaheadJobs wherever they are created; `labelled` serves only namespaces that opted in with the
// label runahead.dev/enabled=true, so that granting someone RunaheadJobs in a namespace gives them
// rank pods only where an admin agreed to it. A job elsewhere is left alone — no status, no
// children — except for one Warning event that says why (a job nobody answers looks like a broken
// operator); labelling the namespace later starts it.
import { LABEL_NAMESPACE_ENABLED } from '../../core/api/v1alpha1/names.ts';

export const NAMESPACE_MODES = ['all', 'labelled'] as const;
export type NamespaceMode = (typeof NAMESPACE_MODES)[number];

export interface NamespacePolicy {
  readonly namespaces: NamespaceMode;
}

export const DEFAULT_NAMESPACE_POLICY: NamespacePolicy = { namespaces: 'all' };

/** The label selector of the namespaces served in `labelled` mode. */
export const ENABLED_NAMESPACE_SELECTOR = `${LABEL_NAMESPACE_ENABLED}=true`;

/**
 * Why the operator does not serve a job in `namespace` (the message names the namespace, the label,
 * the flag and the fix), or null. `labels`: the namespace's labels, undefined when unknown.
 */
export function namespaceProblem(
  namespace: string,
  labels: Readonly<Record<string, string>> | undefined,
  policy: NamespacePolicy,
): string | null {
  if (policy.namespaces === 'all' || labels?.[LABEL_NAMESPACE_ENABLED] === 'true') return null;
  return (
    `namespace ${namespace} is not served by this operator (--namespaces labelled): ` +
    `the job waits until a cluster admin labels the namespace ${ENABLED_NAMESPACE_SELECTOR}`
  );
}
