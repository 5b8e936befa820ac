// Conditions the Kubernetes way: one entry per type, lastTransitionTime changes only when the status
// does, and a transition is what emits an Event (the caller compares before and after).
import type { Condition } from '../core/api/v1alpha1/runahead-job.ts';
import type { ConditionTypeName, ReasonName } from '../core/api/v1alpha1/names.ts';

export type ConditionStatus = 'True' | 'False' | 'Unknown';

/** The longest message kept on a condition or an event: a failure may echo a megabyte of input. */
export const MAX_MESSAGE = 1024;

export function clipMessage(text: string): string {
  return text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;
}

/** RFC 3339 to the second, as metav1.Time writes it. */
export function timestamp(now: Date): string {
  return now.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function findCondition(
  conditions: readonly Condition[] | undefined,
  type: ConditionTypeName,
): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: ConditionTypeName): boolean {
  return findCondition(conditions, type)?.status === 'True';
}

/** The conditions with `type` set; returns whether its status changed (a transition). */
export function setCondition(
  conditions: Condition[],
  type: ConditionTypeName,
  status: ConditionStatus,
  reason: ReasonName,
  message: string,
  now: Date,
  observedGeneration?: number,
): boolean {
  const i = conditions.findIndex((c) => c.type === type);
  const old = i >= 0 ? conditions[i] : undefined;
  const transitioned = old?.status !== status;
  const next: Condition = {
    type,
    status,
    reason,
    message,
    lastTransitionTime: old && !transitioned ? old.lastTransitionTime : timestamp(now),
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  if (i >= 0) conditions[i] = next;
  else conditions.push(next);
  return transitioned;
}
