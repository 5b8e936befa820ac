// spec.activeDeadlineSeconds, as batch/v1 Job has it: counted from status.startTime, which is set
// when the group is (re)started and cleared while the job is suspended, so suspended time is free.

export interface DeadlineCheck {
  readonly exceeded: boolean;
  /** Milliseconds until the deadline (to requeue then); null when there is no deadline. */
  readonly remainingMs: number | null;
}

export function checkActiveDeadline(
  startTime: string | undefined,
  activeDeadlineSeconds: number | undefined,
  now: Date,
): DeadlineCheck {
  if (activeDeadlineSeconds === undefined || !startTime) return { exceeded: false, remainingMs: null };
  const remainingMs = new Date(startTime).getTime() + activeDeadlineSeconds * 1000 - now.getTime();
  return { exceeded: remainingMs <= 0, remainingMs: Math.max(0, remainingMs) };
}

export function deadlineMessage(activeDeadlineSeconds: number): string {
  return `the job was active longer than spec.activeDeadlineSeconds (${activeDeadlineSeconds} s); its pods were deleted`;
}
