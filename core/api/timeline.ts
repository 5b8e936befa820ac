// A rank's run drawn in letters, one per time slot of `slotMs` from the prompt's release (rank 0's
// clock): the compact form that fits a pod's termination message and `status.ranks[].timeline`, and
// that the operator's dashboard draws. Pure functions, shared by the worker side (which paints the
// letters from its spans) and the operator side (which reads them).

export const SLOT = { compute: 'c', wait: 'w', send: 's', idle: '.' } as const;
export type SlotState = keyof typeof SLOT;
export type SlotLetter = (typeof SLOT)[SlotState];

// When one slot saw several things, the one that explains the chain wins: computing, then waiting
// for K/V (the cost KV-Runahead exists to hide), then sending (sends overlap compute by design).
const PRIORITY: readonly SlotLetter[] = [SLOT.compute, SLOT.wait, SLOT.send, SLOT.idle];
const STATE_OF: Readonly<Record<string, SlotState>> = { c: 'compute', w: 'wait', s: 'send', '.': 'idle' };

const priorityOf = (letter: string): number => {
  const p = PRIORITY.indexOf(letter as SlotLetter);
  return p < 0 ? PRIORITY.length : p;
};

/** The letter of higher priority (an unknown letter loses to every known one). */
function stronger(a: string, b: string): string {
  return priorityOf(a) <= priorityOf(b) ? a : b;
}

export interface PaintSpan {
  readonly state: Exclude<SlotState, 'idle'>;
  /** Milliseconds after the prompt's release. */
  readonly start: number;
  readonly end: number;
}

/**
 * Slot k covers [k·slotMs, (k+1)·slotMs); a span marks every slot it overlaps (an instant span, the
 * slot it falls in), so a short send or wait never vanishes between two slots.
 */
export function paintTimeline(spans: readonly PaintSpan[], slotMs: number, slots: number): string {
  const row: string[] = Array<string>(slots).fill(SLOT.idle);
  if (slots === 0 || !(slotMs > 0)) return row.join('');
  const clamp = (k: number) => Math.min(slots - 1, Math.max(0, k));
  for (const s of spans) {
    const first = clamp(Math.floor(s.start / slotMs));
    const last = s.end > s.start ? clamp(Math.ceil(s.end / slotMs) - 1) : first;
    for (let k = first; k <= last; k++) row[k] = stronger(row[k]!, SLOT[s.state]);
  }
  return row.join('');
}

/**
 * The same timeline with fewer, longer slots: new slot j covers the old slots it overlaps, and keeps
 * the strongest of their letters. From n to n/2^k slots this equals painting the spans again at the
 * coarser resolution.
 */
export function downsampleTimeline(timeline: string, slots: number): string {
  const n = timeline.length;
  if (slots >= n) return timeline;
  if (slots <= 0) return '';
  let out = '';
  for (let j = 0; j < slots; j++) {
    const from = Math.floor((j * n) / slots);
    const to = Math.max(from + 1, Math.ceil(((j + 1) * n) / slots));
    let letter: string = SLOT.idle;
    for (let k = from; k < to; k++) letter = stronger(letter, timeline[k]!);
    out += letter;
  }
  return out;
}

export interface TimelineRun {
  readonly state: SlotState;
  /** First slot of the run. */
  readonly from: number;
  /** One past its last slot. */
  readonly to: number;
}

/** Consecutive slots of one state, left to right (what a chart draws as one bar). */
export function timelineRuns(timeline: string): TimelineRun[] {
  const runs: TimelineRun[] = [];
  let from = 0;
  for (let k = 1; k <= timeline.length; k++) {
    if (k < timeline.length && timeline[k] === timeline[from]) continue;
    runs.push({ state: STATE_OF[timeline[from]!] ?? 'idle', from, to: k });
    from = k;
  }
  return runs;
}
