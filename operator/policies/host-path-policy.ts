// What a cluster admin allows: a hostPath volume reads the node's own files, so a RunaheadJob may
// name one only under a prefix the operator was started with (--allowed-host-paths; the chart's
// policy.allowedHostPaths). None by default: checkpoints then come from PersistentVolumeClaims.
// The CRD already refuses system directories for everyone; this is the admin's narrower list.
import type { RunaheadJobSpec } from '../../core/api/v1alpha1/runahead-job.ts';

export interface HostPathPolicy {
  /** Absolute directories a job's hostPath may be at or under; empty: no hostPath at all. */
  readonly allowedHostPaths: readonly string[];
}

export const DEFAULT_HOST_PATH_POLICY: HostPathPolicy = { allowedHostPaths: [] };

const under = (path: string, prefix: string) =>
  prefix === '/' || path === prefix || path.startsWith(`${prefix.replace(/\/+$/, '')}/`);

/** Why the policy refuses the job (the message names the field, the policy and the fix), or null. */
export function hostPathProblem(spec: RunaheadJobSpec, policy: HostPathPolicy): string | null {
  const path = spec.model.checkpoint?.volume.hostPath?.path;
  if (path === undefined || policy.allowedHostPaths.some((p) => under(path, p))) return null;
  const allowed = policy.allowedHostPaths.length ? policy.allowedHostPaths.join(', ') : 'none';
  return (
    `spec.model.checkpoint.volume.hostPath.path ${path} is not allowed by the operator's hostPath policy ` +
    `(--allowed-host-paths: ${allowed}): use a persistentVolumeClaim, or ask a cluster admin to allow the directory`
  );
}

/** Parse --allowed-host-paths: comma-separated absolute directories without "..". */
export function parseAllowedHostPaths(text: string): string[] {
  const paths = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  const bad = paths.find((p) => !p.startsWith('/') || p.split('/').includes('..'));
  if (bad !== undefined)
    throw new Error(`--allowed-host-paths: ${JSON.stringify(bad)} is not an absolute directory without ".."`);
  return paths;
}
