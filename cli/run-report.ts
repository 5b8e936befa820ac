// A run's result as people and programs read it: the JSON summary (`--json`), the per-rank table
// and the chain's timeline, as text and as SVG (`--plot`). Pure functions of a RunResult.
import type { RunResult, Span } from '../core/gen/runahead/v1/rank.ts';
import { criticalPath, type PathKind } from '../core/critical-path.ts';
import { modeName, type ModeName } from '../core/protocol.ts';
import { COMPUTE_KINDS, SEND_BLOCKED_KIND } from '../core/span-kinds.ts';

const r2 = (x: number) => Math.round(x * 100) / 100;

export interface RankSummary {
  readonly rank: number;
  readonly chunk: readonly [number, number];
  readonly computeMs: number;
  readonly waitMs: number;
  /** Time its links were busy with K/V: most of it overlaps compute. */
  readonly sendMs: number;
  /**
   * Send time that delayed the first token: on the critical path, a receiver waiting for K/V this
   * rank already had (core/critical-path.ts). Absent from runs recorded before it was measured.
   */
  readonly criticalSendMs?: number;
  readonly bytesSent: number;
  readonly bytesReceived: number;
  readonly framesSent: number;
  readonly peakRssBytes: number;
}

export interface TimelineSpan {
  readonly rank: number;
  readonly kind: string;
  readonly layer: number;
  /** Milliseconds after the prompt was released (coordinator clock). */
  readonly start: number;
  readonly end: number;
}

/** A stretch of the critical path to the first token (core/critical-path.ts). */
export interface PathSummary {
  readonly rank: number;
  readonly kind: PathKind;
  /** Milliseconds after the prompt was released (coordinator clock). */
  readonly start: number;
  readonly end: number;
}

export interface RunSummary {
  readonly mode: ModeName;
  /** How the split was chosen: explicit, even or balanced. */
  readonly partition: string;
  readonly firstToken: number;
  readonly firstTokenText: string;
  readonly tokens: readonly number[];
  readonly text: string;
  readonly ttftMs: number;
  readonly contextLength: number;
  readonly boundaries: readonly number[];
  readonly ranks: readonly RankSummary[];
  readonly timeline: readonly TimelineSpan[];
  /** The critical path to the first token, earliest first (absent from older runs). */
  readonly criticalPath?: readonly PathSummary[];
}

export function runSummary(result: RunResult): RunSummary {
  const t0 = result.releasedAtMs;
  const path = criticalPath(
    result.ranks.map((r, i) => ({ rank: r.from?.rank ?? i, spans: r.spans, sends: r.sends })),
    t0,
    t0 + result.ttftMs,
    result.ranks.length - 1,
  );
  return {
    mode: modeName(result.mode),
    partition: result.partition,
    firstToken: result.firstToken,
    firstTokenText: result.firstTokenText,
    tokens: result.tokens,
    text: result.text,
    ttftMs: r2(result.ttftMs),
    contextLength: result.contextLength,
    boundaries: result.boundaries,
    ranks: result.ranks.map((r, i) => ({
      rank: r.from?.rank ?? i,
      chunk: [result.boundaries[i] ?? 0, result.boundaries[i + 1] ?? 0] as const,
      computeMs: r2(r.computeMs),
      waitMs: r2(r.waitMs),
      sendMs: r2(r.sendMs),
      criticalSendMs: r2(r.criticalSendMs),
      bytesSent: r.bytesSent,
      bytesReceived: r.bytesReceived,
      framesSent: r.framesSent,
      peakRssBytes: r.peakRssBytes,
    })),
    timeline: result.ranks.flatMap((r, i) =>
      r.spans.map((s: Span) => ({
        rank: r.from?.rank ?? i,
        kind: s.kind,
        layer: s.layer,
        start: r2(s.startMs - t0),
        end: r2(s.endMs - t0),
      })),
    ),
    criticalPath: path.segments.map((p) => ({
      rank: p.rank,
      kind: p.kind,
      start: r2(p.startMs - t0),
      end: r2(p.endMs - t0),
    })),
  };
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

export function rankTable(s: RunSummary): string {
  const head = [
    'rank',
    'chunk',
    'tokens',
    'compute ms',
    'wait ms',
    'send ms',
    'send on TTFT path ms',
    'sent MiB',
    'received MiB',
    'peak RSS MiB',
  ];
  const rows = s.ranks.map((r) => [
    String(r.rank),
    `[${r.chunk[0]}, ${r.chunk[1]})`,
    String(r.chunk[1] - r.chunk[0]),
    r.computeMs.toFixed(1),
    r.waitMs.toFixed(1),
    r.sendMs.toFixed(1),
    r.criticalSendMs === undefined ? '—' : r.criticalSendMs.toFixed(1),
    mib(r.bytesSent),
    mib(r.bytesReceived),
    mib(r.peakRssBytes),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => cell.padStart(widths[c]!)).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/**
 * One row per rank, time left to right: █ computing, ░ waiting for K/V, ▒ held back by its links,
 * · idle; a second row marks ▀ where that rank was sending and ▓ where its sending delayed the first
 * token (on the critical path). The last column is the first token.
 */
export function textTimeline(s: RunSummary, width = 72): string {
  const end = Math.max(s.ttftMs, ...s.timeline.map((t) => t.end), 1);
  const col = (t: number) => Math.min(width - 1, Math.max(0, Math.floor((t / end) * width)));
  const lines: string[] = [];
  for (const r of s.ranks) {
    const busy = Array<string>(width).fill('·');
    const send = Array<string>(width).fill(' ');
    const spans = s.timeline.filter((t) => t.rank === r.rank);
    const paint = (row: string[], kind: string, ch: string) => {
      for (const t of spans.filter((x) => x.kind === kind))
        for (let c = col(t.start); c <= col(t.end); c++) row[c] = ch;
    };
    paint(busy, 'wait', '░');
    paint(busy, SEND_BLOCKED_KIND, '▒');
    for (const kind of COMPUTE_KINDS) paint(busy, kind, '█');
    paint(send, 'send', '▀');
    // ▓ where this rank's sending delayed the first token for a tenth of the column or more: the
    // many sub-millisecond hand-offs on the path would otherwise look like real delays.
    const delayed = Array<number>(width).fill(0);
    const colMs = end / width;
    for (const p of s.criticalPath ?? []) {
      if (p.kind !== 'send' || p.rank !== r.rank) continue;
      for (let c = col(p.start); c <= col(p.end); c++)
        delayed[c]! += Math.max(0, Math.min(p.end, (c + 1) * colMs) - Math.max(p.start, c * colMs));
    }
    delayed.forEach((ms, c) => {
      if (ms >= colMs / 10) send[c] = '▓';
    });
    lines.push(`rank ${String(r.rank).padEnd(2)} │${busy.join('')}│`, `        │${send.join('')}│`);
  }
  lines.push(`        0 ms${' '.repeat(Math.max(1, width - 14))}${s.ttftMs.toFixed(0)} ms (first token)`);
  lines.push(
    '        █ compute  ░ waiting for K/V  ▒ held back by its links  · idle  ▀ sending K/V  ▓ sending that delayed the first token',
  );
  return lines.join('\n');
}

const COLORS: Record<string, string> = {
  project: '#7aa6dd',
  attend: '#2f5d9e',
  layers: '#2f5d9e',
  wait: '#c9c9c9',
  send: '#e8903a',
  [SEND_BLOCKED_KIND]: '#a04000',
};
const SPAN_LABELS: Record<string, string> = {
  project: 'Q/K/V projection',
  attend: 'attention + MLP',
  layers: 'several layers (one graph)',
  wait: 'waiting for K/V',
  send: 'sending K/V',
  [SEND_BLOCKED_KIND]: 'held back by links',
};
/** Over the send bar: the sending that delayed the first token (the critical path's send). */
const CRITICAL_SEND_COLOR = '#7b1010';
const UNKNOWN_COLOR = '#888';
const FIRST_TOKEN_COLOR = '#c0392b';
const MODE_TITLES: Record<ModeName, string> = { runahead: 'KV-Runahead', tsp: 'TSP', single: 'Single' };

/** The picture's title: what ran, on how many ranks, with which model — each said once. */
export function timelineTitle(s: RunSummary, model: string): string {
  const n = s.ranks.length;
  return `${MODE_TITLES[s.mode]}, ${n} rank${n === 1 ? '' : 's'}, ${model}`;
}

/** Geometry of the SVG timeline, exported for its test. */
export const SVG_LAYOUT = {
  width: 900,
  left: 70,
  /** Room right of the axis for half of its last label ("12345 ms") at 12 px. */
  right: 40,
  rowHeight: 34,
  top: 46,
  legendItemWidth: 170,
  legendRowHeight: 18,
} as const;

/**
 * The timeline as a standalone SVG picture: one row per rank (compute and waits above, sends in a
 * thin bar below, darker where they delayed the first token), white where the rank was idle, and a
 * dashed line at the first token.
 */
export function svgTimeline(s: RunSummary, title: string): string {
  const { width, left, right, rowHeight, top, legendItemWidth, legendRowHeight } = SVG_LAYOUT;
  const end = Math.max(s.ttftMs, ...s.timeline.map((t) => t.end), 1);
  const x = (t: number) => left + (Math.max(0, t) / end) * (width - left - right);
  const axisY = top + s.ranks.length * rowHeight + 8;

  // Every colour drawn gets a name: the compute kinds that occur (all of them for an empty
  // timeline), any other kind by its own name, then waits, sends, idle and the first token.
  const present = COMPUTE_KINDS.filter((k) => s.timeline.some((t) => t.kind === k));
  const unknown = [...new Set(s.timeline.map((t) => t.kind))].filter((k) => COLORS[k] === undefined);
  const blocked = s.timeline.some((t) => t.kind === SEND_BLOCKED_KIND) ? [SEND_BLOCKED_KIND] : [];
  const critical = (s.criticalPath ?? []).filter((p) => p.kind === 'send' && p.end > p.start);
  const legendItems = [
    ...[...(present.length > 0 ? present : COMPUTE_KINDS), ...unknown, 'wait', ...blocked, 'send'].map(
      (k) => ({
        label: SPAN_LABELS[k] ?? k,
        swatch: (lx: number, ly: number) =>
          `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${COLORS[k] ?? UNKNOWN_COLOR}"/>`,
      }),
    ),
    ...(critical.length > 0
      ? [
          {
            label: 'send delaying TTFT',
            swatch: (lx: number, ly: number) =>
              `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${CRITICAL_SEND_COLOR}"/>`,
          },
        ]
      : []),
    {
      label: 'idle (no span)',
      swatch: (lx: number, ly: number) =>
        `<rect x="${lx + 0.5}" y="${ly + 0.5}" width="11" height="11" fill="white" stroke="#999"/>`,
    },
    {
      label: 'first token (TTFT)',
      swatch: (lx: number, ly: number) =>
        `<line x1="${lx + 6}" y1="${ly - 1}" x2="${lx + 6}" y2="${ly + 13}" stroke="${FIRST_TOKEN_COLOR}" stroke-dasharray="4 3" stroke-width="2"/>`,
    },
  ];
  const perRow = Math.max(1, Math.floor((width - left) / legendItemWidth));
  const legendTop = axisY + 26;
  const height = legendTop + Math.ceil(legendItems.length / perRow) * legendRowHeight + 8;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${left}" y="36" fill="#555">TTFT ${s.ttftMs.toFixed(1)} ms · ${s.mode} · ${s.contextLength} tokens · split ${s.boundaries.join(',')}</text>`,
  ];
  s.ranks.forEach((r, i) => {
    const y = top + i * rowHeight;
    parts.push(`<text x="8" y="${y + 17}">rank ${r.rank}</text>`);
    for (const t of s.timeline.filter((t) => t.rank === r.rank)) {
      const [yy, h] = t.kind === 'send' ? [y + 24, 6] : [y + 4, 18];
      const w = Math.max(0.5, x(t.end) - x(t.start));
      parts.push(
        `<rect x="${x(t.start).toFixed(2)}" y="${yy}" width="${w.toFixed(2)}" height="${h}" fill="${COLORS[t.kind] ?? UNKNOWN_COLOR}"><title>rank ${r.rank} ${t.kind} layer ${t.layer}: ${t.start}–${t.end} ms</title></rect>`,
      );
    }
    for (const p of critical.filter((p) => p.rank === r.rank)) {
      const w = Math.max(0.5, x(p.end) - x(p.start));
      parts.push(
        `<rect x="${x(p.start).toFixed(2)}" y="${y + 24}" width="${w.toFixed(2)}" height="6" fill="${CRITICAL_SEND_COLOR}"><title>rank ${r.rank} sending that delayed the first token: ${p.start}–${p.end} ms</title></rect>`,
      );
    }
  });
  parts.push(`<line x1="${left}" y1="${axisY}" x2="${width - right}" y2="${axisY}" stroke="#333"/>`);
  for (let i = 0; i <= 5; i++) {
    const t = (end * i) / 5;
    parts.push(
      `<text x="${x(t).toFixed(1)}" y="${axisY + 16}" text-anchor="middle">${t.toFixed(0)} ms</text>`,
    );
  }
  parts.push(
    `<line x1="${x(s.ttftMs).toFixed(1)}" y1="${top - 4}" x2="${x(s.ttftMs).toFixed(1)}" y2="${axisY}" stroke="${FIRST_TOKEN_COLOR}" stroke-dasharray="4 3"/>`,
  );
  legendItems.forEach((item, i) => {
    const lx = left + (i % perRow) * legendItemWidth;
    const ly = legendTop + Math.floor(i / perRow) * legendRowHeight;
    parts.push(`${item.swatch(lx, ly)}<text x="${lx + 16}" y="${ly + 10}">${escapeXml(item.label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
