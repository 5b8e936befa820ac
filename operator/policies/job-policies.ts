// The cluster admin's limits on a job's spec, checked in one place before anything is planned: the
// first one a job breaks fails it with reason PolicyViolation and that policy's message. Each
// policy is its own file; this only orders them.
import type { RunaheadJobSpec } from '../../core/api/v1alpha1/runahead-job.ts';
import { hostPathProblem, type HostPathPolicy } from './host-path-policy.ts';
import { imageProblem, type ImagePolicy } from './image-policy.ts';
import { passThroughProblem, type PassThroughPolicy } from './pass-through-policy.ts';

export interface JobPolicies {
  /** The image of jobs that name none (the image policy applies to it too). */
  readonly workerImage: string;
  readonly hostPathPolicy: HostPathPolicy;
  readonly imagePolicy: ImagePolicy;
  readonly passThroughPolicy: PassThroughPolicy;
}

/** The first policy the job breaks, as the message of its Failed condition; null: none. */
export function jobPolicyProblem(spec: RunaheadJobSpec, policies: JobPolicies): string | null {
  return (
    imageProblem(spec, policies.workerImage, policies.imagePolicy) ??
    hostPathProblem(spec, policies.hostPathPolicy) ??
    passThroughProblem(spec, policies.passThroughPolicy)
  );
}
