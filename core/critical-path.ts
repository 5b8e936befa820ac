// The run's critical path to the first token, and how much of it was sending.
//
// Every rank sends K/V while it computes (worker/chain/rank-run.ts), so most send time is hidden:
// it costs the first token nothing. A send delays the first token only where the chain waited for
// it, and only by the part of the wait during which the sender already had the K/V:
//
//   Walk backwards from the first token, on the rank that chose it, through that rank's spans:
//   - a compute span [s, e] is compute on the path; the walk goes on before s on the same rank;
//   - a wait for layer l, [w0, w1], ended when the last sender q of layer l had delivered (TSP: the
//     sender whose link finished that layer last). q had every byte of it from ready_q(l)
//     (LayerSend.ready_ms) on. [max(w0, ready_q(l)), w1] is **send on the path, charged to q**: the
//     receiver was waiting, the K/V existed, only the link stood between them. If ready_q(l) > w0
//     the receiver had been waiting for q itself, and the walk goes on on q from ready_q(l);
//     otherwise it goes on before w0 on the same rank (the link had a backlog);
//   - a send-blocked span (the rank loop held back by its own full outbox) is send on the path,
//     charged to the rank itself;
//   - time between spans (thread hand-offs, release, the head, the FirstToken call) is "other".
// The path's segments tile [release, first token], so TTFT = Σ compute + Σ send + other.
//
// A rank's critical send time is the send on the path charged to it. Its total send time (union of
// its links' busy spans) is what it spent sending at all; the difference was hidden behind compute.
// Pure: the coordinator fills RankReport.critical_send_ms, the CLI draws the segments.
import { COMPUTE_KINDS, SEND_BLOCKED_KIND, WAIT_KIND } from './span-kinds.ts';

export interface PathSpan {
  readonly kind: string;
  readonly layer: number;
  readonly startMs: number;
  readonly endMs: number;
}

export interface PathSend {
  readonly layer: number;
  readonly toRank: number;
  readonly readyMs: number;
  readonly endMs: number;
}

/** One rank's timeline, every time on one clock (the coordinator's). */
export interface PathRank {
  readonly rank: number;
  readonly spans: readonly PathSpan[];
  readonly sends: readonly PathSend[];
}

export type PathKind = 'compute' | 'send' | 'other';

export interface PathSegment {
  /** compute: the rank computing; send: the rank whose K/V were awaited; other: where the walk was. */
  readonly rank: number;
  readonly kind: PathKind;
  readonly startMs: number;
  readonly endMs: number;
}

export interface CriticalPath {
  /** Earliest first; together they cover [release, first token] without overlap. */
  readonly segments: readonly PathSegment[];
  /** Per rank number: compute on the path. */
  readonly computeMs: readonly number[];
  /** Per rank number: send on the path charged to that rank (its critical send time). */
  readonly sendMs: readonly number[];
  readonly otherMs: number;
}

/**
 * The critical path of a run whose prompt was released at `releasedMs` and whose first token, chosen
 * by `lastRank`, reached the coordinator at `firstTokenMs`.
 */
export function criticalPath(
  ranks: readonly PathRank[],
  releasedMs: number,
  firstTokenMs: number,
  lastRank: number,
): CriticalPath {
  const byRank = new Map<number, PathSpan[]>();
  for (const r of ranks) {
    const onPath = r.spans.filter(
      (s) => COMPUTE_KINDS.includes(s.kind) || s.kind === WAIT_KIND || s.kind === SEND_BLOCKED_KIND,
    );
    byRank.set(
      r.rank,
      onPath.sort((a, b) => a.endMs - b.endMs),
    );
  }
  const size = Math.max(0, ...ranks.map((r) => r.rank + 1));
  const computeMs = new Array<number>(size).fill(0);
  const sendMs = new Array<number>(size).fill(0);
  let otherMs = 0;
  const reversed: PathSegment[] = [];
  const add = (rank: number, kind: PathKind, start: number, end: number) => {
    const from = Math.max(start, releasedMs);
    if (!(end > from)) return;
    const ms = end - from;
    if (kind === 'compute') computeMs[rank] = (computeMs[rank] ?? 0) + ms;
    else if (kind === 'send') sendMs[rank] = (sendMs[rank] ?? 0) + ms;
    else otherMs += ms;
    const prev = reversed.at(-1);
    if (prev && prev.rank === rank && prev.kind === kind && prev.startMs === end)
      reversed[reversed.length - 1] = { ...prev, startMs: from };
    else reversed.push({ rank, kind, startMs: from, endMs: end });
  };
  /** Who delivered layer `layer` to `rank` last. */
  const lastSender = (rank: number, layer: number) => {
    let best: { rank: number; send: PathSend } | null = null;
    for (const r of ranks) {
      for (const send of r.sends) {
        if (send.toRank !== rank || send.layer !== layer) continue;
        if (!best || send.endMs > best.send.endMs) best = { rank: r.rank, send };
      }
    }
    return best;
  };

  let rank = lastRank;
  let t = firstTokenMs;
  // Each step moves back over one span; the bound only guards against clocks that disagree.
  let steps = 4 * ranks.reduce((n, r) => n + r.spans.length, 0) + 8;
  while (t > releasedMs && steps-- > 0) {
    const spans = byRank.get(rank) ?? [];
    let span: PathSpan | undefined;
    for (let i = spans.length - 1; i >= 0; i--) {
      const s = spans[i]!;
      if (s.endMs <= t && s.startMs < t) {
        span = s;
        break;
      }
    }
    if (!span) break;
    add(rank, 'other', span.endMs, t);
    const start = Math.min(span.startMs, span.endMs);
    if (span.kind === WAIT_KIND) {
      const from = lastSender(rank, span.layer);
      if (!from) {
        add(rank, 'other', start, span.endMs);
        t = start;
        continue;
      }
      const sendFrom = Math.min(span.endMs, Math.max(start, from.send.readyMs));
      add(from.rank, 'send', sendFrom, span.endMs);
      if (sendFrom > start) {
        rank = from.rank;
        t = sendFrom;
      } else t = start;
      continue;
    }
    add(rank, span.kind === SEND_BLOCKED_KIND ? 'send' : 'compute', start, span.endMs);
    t = start;
  }
  add(rank, 'other', releasedMs, t);
  return { segments: reversed.reverse(), computeMs, sendMs, otherMs };
}
