// A RunaheadServer as the operator leaves it once its groups are up, for the dashboard's tests: the
// status a reconcile writes (server-plan.ts), parsed through the API's schema so defaults apply.
import {
  RunaheadServerSchema,
  type RunaheadServer,
  type RunaheadServerStatus,
} from '../../core/api/v1alpha1/runahead-server.ts';

/** A RunaheadServer as the operator leaves it: `ready` of `replicas` groups serving, TTFT when given. */
export function servingServer(
  name: string,
  namespace: string,
  opts: { replicas?: number; ready?: number; ttftMs?: RunaheadServerStatus['ttftMs'] } = {},
): RunaheadServer {
  const replicas = opts.replicas ?? 2;
  const ready = opts.ready ?? replicas;
  return RunaheadServerSchema.parse({
    apiVersion: 'runahead.dev/v1alpha1',
    kind: 'RunaheadServer',
    metadata: { name, namespace, uid: `uid-${name}`, creationTimestamp: '2026-11-25T09:00:00Z' },
    spec: { ranks: 2, model: { synthetic: { preset: 'tiny' } }, replicas },
    status: {
      observedGeneration: 1,
      conditions: [
        {
          type: 'Available',
          status: ready > 0 ? 'True' : 'False',
          reason: ready > 0 ? 'GroupsReady' : 'NoGroupReady',
          message: `${ready} of ${replicas} group(s) ready`,
          lastTransitionTime: '2026-11-25T09:05:00Z',
        },
      ],
      replicas,
      readyReplicas: ready,
      updatedReplicas: ready,
      revision: '5d8f9c7b',
      endpoint: `http://${name}.${namespace}.svc.cluster.local:8000/v1/completions`,
      groups: Array.from({ length: replicas }, (_, group) => ({
        group,
        revision: '5d8f9c7b',
        ready: group < ready,
        restarts: group === 0 ? 2 : 0,
      })),
      ...(opts.ttftMs ? { ttftMs: opts.ttftMs } : {}),
    },
  });
}
