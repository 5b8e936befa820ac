// When a job has succeeded: rank 0, the coordinator, ended with a result in its termination
// message. The result (TTFT, first token, the split and every rank's timings) becomes the status.
import type { RunOutcome } from '../../core/api/termination-message.ts';
import type { ObservedPod } from '../observed-pods.ts';

export function successfulOutcome(rank0: ObservedPod | undefined): RunOutcome | null {
  if (rank0?.phase !== 'Succeeded') return null;
  const report = rank0.report;
  return report?.ok && report.result ? report.result : null;
}

export function successMessage(outcome: RunOutcome): string {
  return `TTFT ${outcome.ttftMs.toFixed(1)} ms for ${outcome.contextLength} prompt tokens on ${outcome.ranks.length} rank(s) (${outcome.mode}, ${outcome.partition} split); first token ${outcome.firstToken} ${JSON.stringify(outcome.firstTokenText)}`;
}
