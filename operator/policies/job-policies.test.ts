import { describe, expect, test } from '@jest/globals';
import { RunaheadJobSpecSchema } from '../../core/api/v1alpha1/runahead-job.ts';
import { jobPolicyProblem, type JobPolicies } from './job-policies.ts';

const OPEN: JobPolicies = {
  workerImage: 'ghcr.io/runahead/worker:0.1.0',
  hostPathPolicy: { allowedHostPaths: ['/'] },
  imagePolicy: { allowedImagePrefixes: [] },
  passThroughPolicy: { allowTolerations: true, allowPriorityClass: true },
};

describe('the admin policies together', () => {
  const job = RunaheadJobSpecSchema.parse({
    ranks: 1,
    mode: 'single',
    model: { checkpoint: { volume: { hostPath: { path: '/data/models' } } } },
    prompt: { text: 'hi' },
    image: 'docker.io/x/y:1',
    priorityClassName: 'high',
  });

  test('a job breaking none passes; the first one broken is the message', () => {
    expect(jobPolicyProblem(job, OPEN)).toBeNull();
    expect(
      jobPolicyProblem(job, {
        ...OPEN,
        passThroughPolicy: { allowTolerations: true, allowPriorityClass: false },
      }),
    ).toMatch(/^spec\.priorityClassName/);
    expect(jobPolicyProblem(job, { ...OPEN, hostPathPolicy: { allowedHostPaths: [] } })).toMatch(
      /^spec\.model\.checkpoint\.volume\.hostPath\.path/,
    );
    expect(
      jobPolicyProblem(job, {
        ...OPEN,
        hostPathPolicy: { allowedHostPaths: [] },
        imagePolicy: { allowedImagePrefixes: ['ghcr.io/'] },
      }),
    ).toMatch(/^spec\.image docker\.io\/x\/y:1/);
  });
});
