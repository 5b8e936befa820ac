// The writes to rank pods that jobs and servers make alike, each on the pod the plan saw (its uid):
// a pod recreated under the same name meanwhile is left alone, and the write answers 409.
import { ApiException, PatchStrategy, setHeaderOptions, type CoreV1Api } from '@kubernetes/client-node';
import { FIELD_MANAGER, GANG_SCHEDULING_GATE } from '../core/api/v1alpha1/names.ts';

export async function deleteSeenPod(
  core: CoreV1Api,
  namespace: string,
  name: string,
  uid: string,
): Promise<void> {
  await core.deleteNamespacedPod({ namespace, name, body: { preconditions: { uid } } });
}

/** Strategic merge on the gates' list key: only our gate goes (Kueue's, say, stays). */
export async function liftGangGate(
  core: CoreV1Api,
  namespace: string,
  name: string,
  uid: string,
): Promise<void> {
  await core.patchNamespacedPod(
    {
      namespace,
      name,
      fieldManager: FIELD_MANAGER,
      body: {
        metadata: { uid },
        spec: { schedulingGates: [{ name: GANG_SCHEDULING_GATE, $patch: 'delete' }] },
      },
    },
    setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch),
  );
}

/**
 * A write whose goal was reached anyway: a create that found its object there (409, one the cache
 * had not seen yet), a delete or gate lift whose object is gone (404) or is another one now (409).
 */
export function goalReached(
  kind: `create${string}` | `delete${string}` | 'ungatePod',
  err: unknown,
): boolean {
  if (!(err instanceof ApiException)) return false;
  return kind.startsWith('create') ? err.code === 409 : err.code === 404 || err.code === 409;
}
