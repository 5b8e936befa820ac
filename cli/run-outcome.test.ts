import { describe, expect, it } from '@jest/globals';
import {
  TERMINATION_MESSAGE_MAX_BYTES,
  encodeTerminationMessage,
  parseTerminationMessage,
} from '../core/api/termination-message.ts';
import type { RunSummary, TimelineSpan } from './run-report.ts';
import { runOutcome } from './run-outcome.ts';

/**
 * A KV-Runahead run as the chain records it: per layer each rank projects its chunk, waits for the
 * K/V of the ranks before it (rank 0 never does), sends the extended cache on, and attends; the last
 * rank ends with the head. Figures are in the ranges of a long prompt on many GPUs.
 */
function chainSummary(ranks: number, layers = 32, context = 1_000_000): RunSummary {
  const boundaries = Array.from({ length: ranks + 1 }, (_, i) => Math.round((i * context) / ranks));
  const timeline: TimelineSpan[] = [];
  let ttftMs = 0;
  for (let r = 0; r < ranks; r++) {
    let t = 0.5 * r;
    timeline.push({ rank: r, kind: 'embed', layer: -1, start: t, end: (t += 1.25) });
    for (let l = 0; l < layers; l++) {
      timeline.push({ rank: r, kind: 'project', layer: l, start: t, end: (t += 3.137) });
      if (r > 0) timeline.push({ rank: r, kind: 'wait', layer: l, start: t, end: (t += 0.731 * r) });
      if (r < ranks - 1) timeline.push({ rank: r, kind: 'send', layer: l, start: t, end: t + 2.5 });
      timeline.push({ rank: r, kind: 'attend', layer: l, start: t, end: (t += 9.871 + r) });
    }
    if (r === ranks - 1)
      timeline.push({ rank: r, kind: 'head', layer: layers, start: t, end: (ttftMs = t + 2) });
  }
  return {
    mode: 'runahead',
    partition: 'balanced',
    firstToken: 128_000,
    firstTokenText: ' the',
    tokens: Array.from({ length: 64 }, (_, i) => 127_000 + i),
    text: ' the quick brown fox jumps over the lazy dog'.repeat(8),
    ttftMs,
    contextLength: context,
    boundaries,
    ranks: boundaries.slice(1).map((end, r) => ({
      rank: r,
      chunk: [boundaries[r]!, end] as const,
      computeMs: 12345.67,
      waitMs: 2345.67,
      sendMs: 345.67,
      bytesSent: 17_179_869_184,
      bytesReceived: 17_179_869_184,
      framesSent: 4096,
      peakRssBytes: 68_719_476_736,
    })),
    timeline,
  };
}

describe('runOutcome', () => {
  it('paints each rank over [0, the run’s end) with the right letters', () => {
    // Rank 0: compute 0–4 ms, sends 4–6 ms while computing 4–5, idle after. Rank 1: waits 0–2,
    // computes 2–7 (graphs of several layers count as compute), sends 7–8. 8 slots of 1 ms.
    const summary: RunSummary = {
      ...chainSummary(2),
      ttftMs: 7,
      timeline: [
        { rank: 0, kind: 'layers', layer: 0, start: 0, end: 1 },
        { rank: 0, kind: 'project', layer: 0, start: 1, end: 4 },
        { rank: 0, kind: 'send', layer: 0, start: 4, end: 6 },
        { rank: 0, kind: 'attend', layer: 0, start: 4, end: 5 },
        { rank: 1, kind: 'wait', layer: 0, start: 0, end: 2 },
        { rank: 1, kind: 'project', layer: 0, start: 2, end: 3 },
        { rank: 1, kind: 'attend', layer: 0, start: 3, end: 6 },
        { rank: 1, kind: 'layers', layer: 1, start: 6, end: 7 },
        { rank: 1, kind: 'send', layer: 0, start: 7, end: 8 },
      ],
    };
    const o = runOutcome(summary, 8);
    expect(o.slotMs).toBe(1);
    expect(o.ranks.map((r) => r.timeline)).toEqual(['cccccs..', 'wwcccccs']);
    expect(o.ranks.map((r) => [r.startMs, r.endMs])).toEqual([
      [0, 6],
      [0, 8],
    ]);
    expect(o.ranks[1]).toMatchObject({ rank: 1, chunk: [500_000, 1_000_000], bytesSent: 17_179_869_184 });
  });

  it.each([1, 4, 16, 64])(
    '%i rank(s) × 32 layers: the termination message fits 4096 bytes and parses back',
    (ranks) => {
      const summary = chainSummary(ranks);
      const outcome = runOutcome(summary);
      expect(outcome.ranks[0]?.timeline).toHaveLength(64);
      const json = encodeTerminationMessage({ v: 1, ok: true, rank: 0, result: outcome });
      expect(Buffer.byteLength(json, 'utf8')).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
      const back = parseTerminationMessage(json);
      if (!back?.ok || !back.result) throw new Error(`did not parse: ${json.slice(0, 300)}`);
      const r = back.result;
      expect(r).toMatchObject({
        ttftMs: summary.ttftMs,
        firstToken: 128_000,
        boundaries: summary.boundaries,
      });
      expect(r.ranks.map((x) => x.chunk)).toEqual(summary.ranks.map((x) => x.chunk));
      const slots = r.ranks[0]?.timeline?.length ?? 0;
      // Few ranks keep the full picture; 64 keep a coarser one, but still one.
      expect(slots).toBeGreaterThanOrEqual(ranks <= 16 ? 16 : 4);
      if (ranks <= 4) expect(r.text).toBe(summary.text);
      // The last rank finishes last and its chart ends at the first token's slot.
      expect(r.ranks.at(-1)?.timeline?.at(-1)).toBe('c');
      expect(r.slotMs * slots).toBeCloseTo(summary.ttftMs, 1);
    },
  );
});
