// spec.placement.gang: rank pods are created with the scheduling gate runahead.dev/gang, and the gate
// is lifted only once every rank pod of the group exists. Creating N pods takes N API calls (and a
// quota or webhook may refuse some for a while); without the gate the scheduler would bind the first
// ones while the rest do not exist yet — ranks holding GPUs that cannot run (lws #407, volcano #4005).
// The gate is checked on the pods, not on the spec, so a gate left by an earlier spec still goes.
import { GANG_SCHEDULING_GATE } from '../../core/api/v1alpha1/names.ts';
import type { ObservedPod } from '../observed-pods.ts';

/** The pods whose gang gate may be lifted now: all of them once all `ranks` exist, none before. */
export function podsToUngate(current: readonly ObservedPod[], ranks: number): ObservedPod[] {
  const live = current.filter((p) => !p.deleting);
  const complete = Array.from({ length: ranks }, (_, r) => r).every((r) => live.some((p) => p.rank === r));
  return complete ? live.filter((p) => p.schedulingGates.includes(GANG_SCHEDULING_GATE)) : [];
}

/**
 * Whether the group is released to the scheduler: every rank pod exists and carries no gate at all
 * (another controller's, such as Kueue's admission gate, holds it as much as ours).
 */
export function groupReleased(current: readonly ObservedPod[], ranks: number): boolean {
  const live = current.filter((p) => !p.deleting);
  return (
    Array.from({ length: ranks }, (_, r) => r).every((r) => live.some((p) => p.rank === r)) &&
    live.every((p) => p.schedulingGates.length === 0)
  );
}

/** What the RanksReady condition says while the gang's gate holds the group. */
export function gatedMessage(current: readonly ObservedPod[], ranks: number): string | null {
  const live = current.filter((p) => !p.deleting);
  const gated = live.filter((p) => p.schedulingGates.length > 0);
  if (gated.length === 0) return null;
  const gates = [...new Set(gated.flatMap((p) => p.schedulingGates))].join(', ');
  return live.length < ranks
    ? `${live.length} of ${ranks} rank pod(s) exist; the group is held at scheduling gate(s) ${gates} until all do`
    : `${gated.length} of ${ranks} rank pod(s) held at scheduling gate(s) ${gates}`;
}
