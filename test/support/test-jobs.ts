// RunaheadJobs the integration tests create through the API server: a small CPU job of two ranks
// unless the test says otherwise (its spec fields go over these).
import type { CustomObjectsApi } from '@kubernetes/client-node';
import { GROUP, PLURAL, VERSION } from '../../core/api/v1alpha1/names.ts';
import type { RunaheadJobSpecInput } from '../../core/api/v1alpha1/runahead-job.ts';

export const TEST_JOB_SPEC = {
  ranks: 2,
  model: { synthetic: { preset: 'tiny' } },
  prompt: { syntheticTokens: 64 },
  executionProvider: 'cpu',
  image: 'runahead-worker:test',
} as const satisfies Partial<RunaheadJobSpecInput>;

/** Creates the job and resolves with what the API server returned. */
export async function createTestJob(
  custom: CustomObjectsApi,
  ns: string,
  name: string,
  spec: Partial<RunaheadJobSpecInput> = {},
  labels: Record<string, string> = {},
): Promise<unknown> {
  return custom.createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: PLURAL,
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'RunaheadJob',
      metadata: { name, labels },
      spec: { ...TEST_JOB_SPEC, ...spec },
    },
  });
}
