// A gang scheduler's PodGroups on the API server (spec.placement.podGroup), for jobs and servers:
// created and deleted by name in the scheduler's own API group (core/api/v1alpha1/placement.ts), never
// read — no informer waits on a CRD that may not be installed.
import { ApiException, type CustomObjectsApi } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../core/api/v1alpha1/names.ts';
import { POD_GROUP_APIS, type PodGroupScheduler } from '../core/api/v1alpha1/placement.ts';
import type { PodGroupObject } from './desired-children.ts';

export async function createPodGroup(
  custom: CustomObjectsApi,
  namespace: string,
  scheduler: PodGroupScheduler,
  body: PodGroupObject,
): Promise<void> {
  const api = POD_GROUP_APIS[scheduler];
  await custom.createNamespacedCustomObject({
    group: api.group,
    version: api.version,
    namespace,
    plural: api.plural,
    body,
    fieldManager: FIELD_MANAGER,
  });
}

export async function deletePodGroup(
  custom: CustomObjectsApi,
  namespace: string,
  scheduler: PodGroupScheduler,
  name: string,
): Promise<void> {
  const api = POD_GROUP_APIS[scheduler];
  await custom.deleteNamespacedCustomObject({
    group: api.group,
    version: api.version,
    namespace,
    plural: api.plural,
    name,
  });
}

/**
 * A create the API server does not serve (404: the scheduler's CRD is not installed) or the operator
 * may not make (403: the chart's operator.podGroups does not name it): no retry alone helps.
 */
export const isPodGroupUnavailable = (err: unknown): boolean =>
  err instanceof ApiException && (err.code === 404 || err.code === 403);

/** What to install or allow, said after a PodGroup create refused as unavailable. */
export const podGroupUnavailableHint = (scheduler: PodGroupScheduler, apiVersion: string): string =>
  ` (spec.placement.podGroup ${scheduler} needs ${apiVersion} PodGroups installed and the operator allowed to create them, chart value operator.podGroups; or remove spec.placement.podGroup)`;
