// Test support for the operator: install the CRDs into a control plane, paths in the repo.
import { fileURLToPath } from 'node:url';
import { CRD_NAME } from '../../core/api/v1alpha1/names.ts';
import type { ControlPlane } from './control-plane.ts';

export function repoPath(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url));
}

/** `kubectl apply --server-side -f crds/` and wait until the API serves RunaheadJobs. */
export async function installCrds(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['apply', '--server-side', '-f', repoPath('crds')]);
  await cp.kubectl(['wait', '--for=condition=Established', '--timeout=60s', `crd/${CRD_NAME}`]);
}
