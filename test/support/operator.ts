// Test support for the operator: install the CRDs into a control plane, paths in the repo.
import { fileURLToPath } from 'node:url';
import { CRD_NAME } from '../../core/api/v1alpha1/names.ts';
import type { ControlPlane } from './control-plane.ts';
import { eventually } from './eventually.ts';

export function repoPath(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url));
}

/** `kubectl apply --server-side -f crds/` and wait until the API serves RunaheadJobs. */
export async function installCrds(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['apply', '--server-side', '-f', repoPath('crds')]);
  // Polled rather than `kubectl wait --for=condition=Established`, which fails at once ("accessor
  // error: <nil>") when it reads the CRD before the API server has written any condition.
  await eventually(
    `CRD ${CRD_NAME} Established`,
    async () =>
      (await cp.kubectl([
        'get',
        `crd/${CRD_NAME}`,
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Established")].status}',
      ])) === 'True',
    60_000,
    100,
  );
}
