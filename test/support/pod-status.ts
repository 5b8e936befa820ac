// The kubelet's side of a pod's life, for operator tests on a control plane without nodes: the test
// moves pods through their phases by writing pod status through the API, as a kubelet would.
import type { CoreV1Api, V1Pod } from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

async function patchStatus(core: CoreV1Api, pod: V1Pod, status: Record<string, unknown>): Promise<void> {
  await core.patchNamespacedPodStatus(
    { name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: { status } },
    setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
  );
}

/** Running; Ready when the model is loaded (the readiness probe passes). */
export function markRunning(core: CoreV1Api, pod: V1Pod, ready: boolean): Promise<void> {
  return patchStatus(core, pod, {
    phase: 'Running',
    podIP: '10.1.0.1',
    startTime: now(),
    conditions: [{ type: 'Ready', status: ready ? 'True' : 'False', lastTransitionTime: now() }],
    containerStatuses: [
      {
        name: 'worker',
        ready,
        restartCount: 0,
        image: pod.spec!.containers[0]!.image!,
        imageID: '',
        state: { running: { startedAt: now() } },
      },
    ],
  });
}

/** The worker container ended: Succeeded on exit 0, else Failed; `message` is its termination message. */
export function markTerminated(core: CoreV1Api, pod: V1Pod, exitCode: number, message = ''): Promise<void> {
  return patchStatus(core, pod, {
    phase: exitCode === 0 ? 'Succeeded' : 'Failed',
    conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: now() }],
    containerStatuses: [
      {
        name: 'worker',
        ready: false,
        restartCount: 0,
        image: pod.spec!.containers[0]!.image!,
        imageID: '',
        state: {
          terminated: {
            exitCode,
            reason: exitCode === 0 ? 'Completed' : 'Error',
            message,
            startedAt: now(),
            finishedAt: now(),
          },
        },
      },
    ],
  });
}
