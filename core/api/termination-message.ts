// What a rank's container leaves in its termination message (the pod's
// `terminationMessagePath`, read by the operator from the pod's status) — the only channel from a
// finished rank to the operator, so it needs no extra RBAC, no endpoint and no token. The kubelet
// keeps at most 4096 bytes per container: `encodeTerminationMessage` always fits, dropping detail
// (timeline resolution first, then text) rather than failing.
import { z } from 'zod';
import { MODES } from './v1alpha1/runahead-job.ts';

export const TERMINATION_MESSAGE_PATH = '/dev/termination-log';
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;
export const TERMINATION_MESSAGE_VERSION = 1;

/** How a worker process ends. The operator retries a group only after a retriable failure. */
export const WorkerExit = {
  Ok: 0,
  /** The run failed (a peer died, a timeout, a bad frame): restarting the group may succeed. */
  Failed: 1,
  /** The configuration is wrong (model path, flags, partition): restarting cannot help. */
  ConfigError: 2,
} as const;

const RankTiming = z.object({
  rank: z.int().min(0),
  chunk: z.tuple([z.int().min(0), z.int().min(0)]),
  computeMs: z.number(),
  waitMs: z.number(),
  sendMs: z.number(),
  bytesSent: z.int().min(0),
  bytesReceived: z.int().min(0),
  peakRssBytes: z.int().min(0),
  startMs: z.number(),
  endMs: z.number(),
  /** One letter per slot of `slotMs`: c compute, w waiting for K/V, s sending, . idle. */
  timeline: z.string(),
});
export type RankTiming = z.infer<typeof RankTiming>;

export const TerminationMessageSchema = z.discriminatedUnion('ok', [
  z.object({
    v: z.literal(TERMINATION_MESSAGE_VERSION),
    ok: z.literal(true),
    rank: z.int().min(0),
    /** Rank 0 (the coordinator) alone carries the run's result; other ranks leave `result` out. */
    result: z
      .object({
        mode: z.enum(MODES),
        partition: z.string(),
        ttftMs: z.number(),
        contextLength: z.int().min(0),
        boundaries: z.array(z.int().min(0)),
        firstToken: z.int().min(0),
        firstTokenText: z.string(),
        tokens: z.array(z.int().min(0)),
        text: z.string(),
        slotMs: z.number().positive(),
        ranks: z.array(RankTiming),
      })
      .optional(),
  }),
  z.object({
    v: z.literal(TERMINATION_MESSAGE_VERSION),
    ok: z.literal(false),
    rank: z.int().min(0),
    /** Retriable (a run failure) or not (a configuration error). */
    retriable: z.boolean(),
    /** What went wrong, naming the rank and the cause. */
    error: z.string(),
  }),
]);
export type TerminationMessage = z.infer<typeof TerminationMessageSchema>;
export type RunOutcome = NonNullable<Extract<TerminationMessage, { ok: true }>['result']>;

/** Parse a pod's termination message; null when it is absent or not one of ours. */
export function parseTerminationMessage(text: string | undefined): TerminationMessage | null {
  if (!text) return null;
  try {
    const r = TerminationMessageSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}
