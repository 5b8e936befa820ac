// A run's result as rank 0 reports it to the operator (core/api/termination-message.ts): the
// summary with each rank's spans painted as a timeline of letters on rank 0's clock.
import { TIMELINE_SLOTS, type RankTiming, type RunOutcome } from '../core/api/termination-message.ts';
import { paintTimeline, type PaintSpan } from '../core/api/timeline.ts';
import { COMPUTE_KINDS, SEND_BLOCKED_KIND } from '../core/span-kinds.ts';
import type { RunSummary, TimelineSpan } from './run-report.ts';

function paintSpan(t: TimelineSpan): PaintSpan | null {
  if (t.kind === 'wait' || t.kind === 'send') return { state: t.kind, start: t.start, end: t.end };
  // Held back by its own links: the rank is sending, not computing.
  if (t.kind === SEND_BLOCKED_KIND) return { state: 'send', start: t.start, end: t.end };
  // embed and head are compute as much as the layers are: they keep the rank busy.
  if (COMPUTE_KINDS.includes(t.kind)) return { state: 'compute', start: t.start, end: t.end };
  return null;
}

/** The outcome of a run with `slots` timeline letters per rank, all over [0, the run's end). */
export function runOutcome(summary: RunSummary, slots: number = TIMELINE_SLOTS): RunOutcome {
  const end = Math.max(summary.ttftMs, ...summary.timeline.map((t) => t.end));
  const slotMs = end > 0 && slots > 0 ? end / slots : 1;
  const ranks = summary.ranks.map((r): RankTiming => {
    const spans = summary.timeline.filter((t) => t.rank === r.rank);
    const timing = {
      rank: r.rank,
      chunk: r.chunk,
      computeMs: r.computeMs,
      waitMs: r.waitMs,
      sendMs: r.sendMs,
      ...(r.criticalSendMs !== undefined ? { criticalSendMs: r.criticalSendMs } : {}),
      bytesSent: r.bytesSent,
      bytesReceived: r.bytesReceived,
      peakRssBytes: r.peakRssBytes,
      timeline: paintTimeline(
        spans.map(paintSpan).filter((s) => s !== null),
        slotMs,
        slots,
      ),
    };
    return spans.length === 0
      ? timing
      : {
          ...timing,
          startMs: Math.min(...spans.map((t) => t.start)),
          endMs: Math.max(...spans.map((t) => t.end)),
        };
  });
  return {
    mode: summary.mode,
    partition: summary.partition,
    ttftMs: summary.ttftMs,
    contextLength: summary.contextLength,
    boundaries: [...summary.boundaries],
    firstToken: summary.firstToken,
    firstTokenText: summary.firstTokenText,
    tokens: [...summary.tokens],
    text: summary.text,
    slotMs,
    ranks,
  };
}
