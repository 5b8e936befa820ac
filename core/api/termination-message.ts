// What a rank's container leaves in its termination message (the pod's
// `terminationMessagePath`, read by the operator from the pod's status) — the only channel from a
// finished rank to the operator, so it needs no extra RBAC, no endpoint and no token. The kubelet
// keeps at most 4096 bytes per container: `encodeTerminationMessage` always fits, dropping detail
// (timeline resolution first, then text, then per-rank figures) rather than failing.
//
// On the wire the per-rank figures are columns (`ranks.computeMs[i]` is rank i's), each rank's chunk
// comes from `boundaries` and its number from its position: 64 ranks as one object each would not
// fit 4096 bytes even without their timelines. Parsing expands the columns into `RankTiming`s.
import { z } from 'zod';
import { MODES } from './v1alpha1/runahead-job.ts';
import { downsampleTimeline } from './timeline.ts';

export const TERMINATION_MESSAGE_PATH = '/dev/termination-log';
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;
export const TERMINATION_MESSAGE_VERSION = 1;
/** Timeline resolution a result starts from; encoding halves it while the message is too long. */
export const TIMELINE_SLOTS = 64;

/** How a worker process ends. The operator retries a group only after a retriable failure. */
export const WorkerExit = {
  Ok: 0,
  /** The run failed (a peer died, a timeout, a bad frame): restarting the group may succeed. */
  Failed: 1,
  /** The configuration is wrong (model path, flags, partition): restarting cannot help. */
  ConfigError: 2,
} as const;

/** One rank's part of the run. Every figure but the rank and its chunk may be left out for room. */
export interface RankTiming {
  readonly rank: number;
  /** [start, end) token offsets of the rank's chunk. */
  readonly chunk: readonly [number, number];
  readonly computeMs?: number;
  readonly waitMs?: number;
  readonly sendMs?: number;
  /** The part of the send time that delayed the first token (core/critical-path.ts). */
  readonly criticalSendMs?: number;
  readonly bytesSent?: number;
  readonly bytesReceived?: number;
  readonly peakRssBytes?: number;
  /** Start and end of the rank's work, ms after the prompt was released (rank 0's clock). */
  readonly startMs?: number;
  readonly endMs?: number;
  /** One letter per slot of `slotMs` (core/api/timeline.ts): c compute, w wait for K/V, s send, . idle. */
  readonly timeline?: string;
}

const MS_COLUMNS = ['startMs', 'endMs', 'computeMs', 'waitMs', 'sendMs', 'criticalSendMs'] as const;
const BYTE_COLUMNS = ['bytesSent', 'bytesReceived', 'peakRssBytes'] as const;
type Column = 'timeline' | (typeof MS_COLUMNS)[number] | (typeof BYTE_COLUMNS)[number];
const COLUMNS: readonly Column[] = ['timeline', ...MS_COLUMNS, ...BYTE_COLUMNS];

const msColumn = z.array(z.number()).optional();
const bytesColumn = z.array(z.int().min(0)).optional();
const RankColumns = z.object({
  timeline: z.array(z.string().max(512)).optional(),
  startMs: msColumn,
  endMs: msColumn,
  computeMs: msColumn,
  waitMs: msColumn,
  sendMs: msColumn,
  criticalSendMs: msColumn,
  bytesSent: bytesColumn,
  bytesReceived: bytesColumn,
  peakRssBytes: bytesColumn,
});
type RankColumns = z.infer<typeof RankColumns>;

const ResultWire = z
  .object({
    mode: z.enum(MODES),
    partition: z.string(),
    ttftMs: z.number(),
    contextLength: z.int().min(0),
    boundaries: z.array(z.int().min(0)).min(2),
    firstToken: z.int().min(0),
    firstTokenText: z.string(),
    /** The first token followed by the generated ones (only the first when the rest did not fit). */
    tokens: z.array(z.int().min(0)),
    text: z.string(),
    slotMs: z.number().positive(),
    ranks: RankColumns,
  })
  .superRefine((r, ctx) => {
    const n = r.boundaries.length - 1;
    for (const c of COLUMNS) {
      const col = r.ranks[c];
      if (col && col.length !== n)
        ctx.addIssue({
          code: 'custom',
          path: ['ranks', c],
          message: `${c} has ${col.length} entries for ${n} ranks`,
        });
    }
  })
  .transform(({ ranks, ...rest }) => ({ ...rest, ranks: expandRanks(rest.boundaries, ranks) }));

function expandRanks(boundaries: readonly number[], columns: RankColumns): RankTiming[] {
  return boundaries.slice(1).map((end, i) => {
    const timing: Record<string, unknown> = { rank: i, chunk: [boundaries[i]!, end] };
    for (const c of COLUMNS) if (columns[c] !== undefined) timing[c] = columns[c][i];
    return timing as unknown as RankTiming;
  });
}

export const TerminationMessageSchema = z.discriminatedUnion('ok', [
  z.object({
    v: z.literal(TERMINATION_MESSAGE_VERSION),
    ok: z.literal(true),
    rank: z.int().min(0),
    /** Rank 0 (the coordinator) alone carries the run's result; other ranks leave `result` out. */
    result: ResultWire.optional(),
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
export type TerminationMessage = z.output<typeof TerminationMessageSchema>;
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

// ------------------------------------------------------------------------------------------ encode

const utf8Bytes = (s: string) => new TextEncoder().encode(s).byteLength;
const ELLIPSIS = '…';
/** A token's text is a few characters; more is junk not worth the room. */
const MAX_TOKEN_TEXT = 32;
const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * `text` cut to its first `keep` code points, with an ellipsis when anything was cut. Cutting by
 * code point never splits a surrogate pair, so the JSON stays valid UTF-8.
 */
function cut(text: string, keep: number): string {
  const points = Array.from(text);
  return points.length <= keep ? text : points.slice(0, keep).join('') + ELLIPSIS;
}

/** The largest keep in [0, max] for which fits(keep) holds (fits is monotone), or -1. */
function largest(max: number, fits: (keep: number) => boolean): number {
  if (!fits(0)) return -1;
  let lo = 0;
  let hi = max;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

interface Level {
  /** Most timeline slots per rank (0: no timelines). */
  readonly slots: number;
  readonly truncateText: boolean;
  readonly allTokens: boolean;
  readonly drop: readonly Column[];
}

const DURATIONS = ['computeMs', 'waitMs', 'sendMs', 'criticalSendMs'] as const;
// From full detail to the least that still says what the run did. The timeline keeps 16 slots
// before text is cut (a coarser chart no longer shows who ran ahead); generated token ids go before
// the per-rank figures, which the dashboard and `kubectl get -o yaml` show.
const LEVELS: readonly Level[] = [
  { slots: 64, truncateText: false, allTokens: true, drop: [] },
  { slots: 32, truncateText: false, allTokens: true, drop: [] },
  { slots: 16, truncateText: false, allTokens: true, drop: [] },
  { slots: 16, truncateText: true, allTokens: true, drop: [] },
  { slots: 16, truncateText: true, allTokens: false, drop: [] },
  { slots: 16, truncateText: true, allTokens: false, drop: BYTE_COLUMNS },
  { slots: 8, truncateText: true, allTokens: false, drop: BYTE_COLUMNS },
  { slots: 8, truncateText: true, allTokens: false, drop: [...BYTE_COLUMNS, ...DURATIONS] },
  { slots: 4, truncateText: true, allTokens: false, drop: [...BYTE_COLUMNS, ...DURATIONS] },
  { slots: 0, truncateText: true, allTokens: false, drop: [...BYTE_COLUMNS, ...DURATIONS] },
  { slots: 0, truncateText: true, allTokens: false, drop: COLUMNS },
];

/** A column only when every rank has the figure: a partial column would misplace the others. */
function column<T>(ranks: readonly RankTiming[], get: (r: RankTiming) => T | undefined): T[] | undefined {
  const values = ranks.map(get);
  return values.every((v) => v !== undefined) ? values : undefined;
}

function columnsOf(ranks: readonly RankTiming[], level: Level, slots: number): RankColumns {
  const out: Record<string, unknown[]> = {};
  const keep = (c: Column) => !level.drop.includes(c);
  const timeline = column(ranks, (r) => r.timeline);
  if (keep('timeline') && slots > 0 && timeline)
    out.timeline = timeline.map((t) => downsampleTimeline(t, slots));
  for (const c of MS_COLUMNS) {
    const values = column(ranks, (r) => r[c]);
    if (keep(c) && values) out[c] = values.map(round1);
  }
  for (const c of BYTE_COLUMNS) {
    const values = column(ranks, (r) => r[c]);
    if (keep(c) && values) out[c] = values;
  }
  return out;
}

function resultAt(r: RunOutcome, level: Level, textKeep: number | null): Record<string, unknown> {
  const inputSlots = Math.max(0, ...r.ranks.map((x) => x.timeline?.length ?? 0));
  const slots = Math.min(level.slots, inputSlots);
  // Halving from 64 keeps every slot boundary where it was: the same picture, coarser.
  const slotMs = slots > 0 ? (r.slotMs * inputSlots) / slots : r.slotMs;
  return {
    mode: r.mode,
    partition: r.partition,
    ttftMs: r.ttftMs,
    contextLength: r.contextLength,
    boundaries: r.boundaries,
    firstToken: r.firstToken,
    firstTokenText: level.truncateText ? cut(r.firstTokenText, MAX_TOKEN_TEXT) : r.firstTokenText,
    tokens: level.allTokens ? r.tokens : r.tokens.slice(0, 1),
    text: textKeep === null ? r.text : cut(r.text, textKeep),
    slotMs: Number(slotMs.toPrecision(6)),
    ranks: columnsOf(r.ranks, level, slots),
  };
}

/**
 * The message as JSON of at most `maxBytes` UTF-8 bytes (the kubelet's limit), dropping detail in
 * the order of LEVELS when it must. `msg.result`'s timelines are read as painted at full resolution
 * (`TIMELINE_SLOTS`), with `slotMs` for that resolution.
 */
export function encodeTerminationMessage(
  msg: TerminationMessage,
  maxBytes: number = TERMINATION_MESSAGE_MAX_BYTES,
): string {
  const fits = (json: string) => utf8Bytes(json) <= maxBytes;
  if (!msg.ok) {
    const head = { v: msg.v, ok: false, rank: msg.rank, retriable: msg.retriable };
    const json = (keep: number) => JSON.stringify({ ...head, error: cut(msg.error, keep) });
    const full = JSON.stringify({ ...head, error: msg.error });
    if (fits(full)) return full;
    const keep = largest(msg.error.length, (k) => fits(json(k)));
    if (keep >= 0) return json(keep);
    throw new RangeError(`a termination message needs more than ${maxBytes} bytes`);
  }
  const bare = JSON.stringify({ v: msg.v, ok: true, rank: msg.rank });
  const result = msg.result;
  if (result) {
    const json = (level: Level, textKeep: number | null) =>
      JSON.stringify({ v: msg.v, ok: true, rank: msg.rank, result: resultAt(result, level, textKeep) });
    const textLength = Array.from(result.text).length;
    for (const level of LEVELS) {
      const full = json(level, null);
      if (fits(full)) return full;
      if (!level.truncateText) continue;
      const keep = largest(textLength, (k) => fits(json(level, k)));
      if (keep >= 0) return json(level, keep);
    }
  }
  if (fits(bare)) return bare;
  throw new RangeError(`a termination message needs more than ${maxBytes} bytes`);
}
