// What a cluster admin allows: pod fields a job passes through to its rank pods that decide where
// and before whom they run. `tolerations` (an `operator: Exists` toleration lets ranks onto every
// tainted node: control-plane nodes, nodes reserved for other teams) and `priorityClassName`
// (`system-node-critical` preempts other workloads) are off by default — the operator creates the
// pods, so a user allowed only to create RunaheadJobs would otherwise get pods they could not
// create themselves. --allow-tolerations and --allow-priority-class (chart:
// operator.allowTolerations, operator.allowPriorityClass) turn them on. nodeSelector and affinity
// only narrow where a pod may go and are always passed through.
import type { RunaheadJobSpec } from '../../core/api/v1alpha1/runahead-job.ts';

export interface PassThroughPolicy {
  /** Rank pods get the job's `tolerations`; off: a job that sets any fails. */
  readonly allowTolerations: boolean;
  /** Rank pods get the job's `priorityClassName`; off: a job that sets one fails. */
  readonly allowPriorityClass: boolean;
}

export const DEFAULT_PASS_THROUGH_POLICY: PassThroughPolicy = {
  allowTolerations: false,
  allowPriorityClass: false,
};

/** Why the policy refuses the job (the message names the field, the switch and the fix), or null. */
export function passThroughProblem(spec: RunaheadJobSpec, policy: PassThroughPolicy): string | null {
  // An empty list gives the pods nothing, so it is no reason to refuse.
  if (!policy.allowTolerations && (spec.tolerations?.length ?? 0) > 0)
    return refusal(
      'spec.tolerations',
      `${spec.tolerations!.length} toleration(s)`,
      '--allow-tolerations',
      'operator.allowTolerations',
    );
  if (!policy.allowPriorityClass && spec.priorityClassName !== undefined)
    return refusal(
      'spec.priorityClassName',
      spec.priorityClassName,
      '--allow-priority-class',
      'operator.allowPriorityClass',
    );
  return null;
}

function refusal(field: string, value: string, flag: string, chartValue: string): string {
  return (
    `${field} (${value}) is not allowed by the operator's pass-through policy (${flag} is off): ` +
    `remove ${field}, or ask a cluster admin to start the operator with ${flag} (chart: ${chartValue}=true)`
  );
}
