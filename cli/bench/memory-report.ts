// Peak memory per rank against context length (issue 13, item 1): the arithmetic of the KV-cache a
// rank holds, the goal, and the report as a markdown table and an SVG plot. Pure: bench/memory-sweep.ts
// runs the prefills and writes what these functions return.
//
// K/V bytes per token = layers × 2 (K and V) × kvHeads × headDim × bytes per element.
// KV-Runahead rank i of chunk [s, e) keeps the K/V of [0, s) it received (kv-inbox.ts: one buffer per
// layer, filled as frames arrive, held until the run ends) and computes its own K/V of [s, e) one
// layer at a time (sent on, then garbage). Single mode fetches no K/V at all without decoding.
//
// Goal: at 32768 tokens every rank's peak RSS ≤ 1.5 × its peak at 1024 tokens (same mode and ranks)
// + the whole KV-cache of 32768 tokens (bytes per token × 32768); at 8192 tokens ≤ 2 GiB. The
// bound is also shown at the other lengths, as an envelope, without a verdict.
import type { ModelConfig } from '../../worker/model/config.ts';

export const GIB = 2 ** 30;
export const MIB = 2 ** 20;

/** The goal's parameters (issue 13, item 1). */
export const MEMORY_GOAL = {
  /** Context length of the reference figure. */
  referenceContext: 1024,
  /** Allowed growth of the reference figure, before the KV-cache. */
  factor: 1.5,
  /** At this context length, every rank ≤ factor × its reference figure + the whole KV-cache. */
  boundContext: 32768,
  /** At this context length, every rank ≤ capBytes. */
  capContext: 8192,
  capBytes: 2 * GIB,
} as const;

export type MemoryMode = 'runahead' | 'tsp' | 'single';

/** One measured prefill: each rank's peak resident set. */
export interface MemoryPoint {
  readonly mode: MemoryMode;
  readonly ranks: number;
  readonly context: number;
  /** Each rank's token range [start, end). */
  readonly chunks: readonly (readonly [number, number])[];
  /** Each rank's peak RSS (getrusage maxrss) in bytes, by rank. */
  readonly peakRssBytes: readonly number[];
  readonly ttftMs: number;
  /** Wall time of the whole command (model load included). */
  readonly wallMs: number;
}

export function kvBytesPerToken(
  config: Pick<ModelConfig, 'numLayers' | 'numKvHeads' | 'headDim'>,
  bytesPerElement: number,
): number {
  return config.numLayers * 2 * config.numKvHeads * config.headDim * bytesPerElement;
}

/** K/V a rank holds for the whole run: what it received, [0, s) in KV-Runahead, all others in TSP. */
export function heldKvTokens(mode: MemoryMode, chunk: readonly [number, number], context: number): number {
  switch (mode) {
    case 'runahead':
      return chunk[0];
    case 'tsp':
      return context - (chunk[1] - chunk[0]);
    case 'single':
      return 0;
  }
}

export const seriesKey = (p: Pick<MemoryPoint, 'mode' | 'ranks'>) => `${p.mode}-${p.ranks}`;

export function seriesLabel(p: Pick<MemoryPoint, 'mode' | 'ranks'>): string {
  const name = { runahead: 'KV-Runahead', tsp: 'TSP', single: 'single' }[p.mode];
  return `${name}, ${p.ranks} rank${p.ranks === 1 ? '' : 's'}`;
}

/** Points grouped by (mode, ranks), each group sorted by context; groups in first-seen order. */
export function seriesOf(points: readonly MemoryPoint[]): MemoryPoint[][] {
  const groups = new Map<string, MemoryPoint[]>();
  for (const p of points) {
    const g = groups.get(seriesKey(p)) ?? [];
    g.push(p);
    groups.set(seriesKey(p), g);
  }
  return [...groups.values()].map((g) => g.sort((a, b) => a.context - b.context));
}

export interface GoalCheck {
  readonly point: MemoryPoint;
  /**
   * Per rank: factor × its peak at the reference context + the whole KV-cache of this context, or
   * null at or below the reference context or without a reference point.
   */
  readonly boundBytes: readonly (number | null)[];
  /** Whether the goal holds; null at a context the goal does not name, or with nothing to compare. */
  readonly ok: boolean | null;
}

/** The goal applied to a point, its reference point found among `all` (same mode and ranks). */
export function checkGoal(point: MemoryPoint, all: readonly MemoryPoint[], kvPerToken: number): GoalCheck {
  const ref = all.find(
    (p) => seriesKey(p) === seriesKey(point) && p.context === MEMORY_GOAL.referenceContext,
  );
  const boundBytes = point.peakRssBytes.map((_, r) => {
    const base = ref?.peakRssBytes[r];
    if (base === undefined || point.context <= MEMORY_GOAL.referenceContext) return null;
    return MEMORY_GOAL.factor * base + kvPerToken * point.context;
  });
  let ok: boolean | null = null;
  if (point.context === MEMORY_GOAL.capContext)
    ok = point.peakRssBytes.every((b) => b <= MEMORY_GOAL.capBytes);
  else if (point.context === MEMORY_GOAL.boundContext && boundBytes.every((b) => b !== null))
    ok = point.peakRssBytes.every((b, r) => b <= boundBytes[r]!);
  return { point, boundBytes, ok };
}

const gib = (bytes: number) => (bytes / GIB).toFixed(2);
const mib = (bytes: number) => (bytes / MIB).toFixed(0);

/** The measured points as a markdown table, one row per (mode, ranks, context). */
export function memoryTable(points: readonly MemoryPoint[], kvPerToken: number): string {
  const head = [
    'mode',
    'ranks',
    'tokens',
    'peak RSS per rank (GiB)',
    'whole KV-cache (MiB)',
    'received K/V held per rank (MiB)',
    '1.5 × 1k + KV-cache per rank (GiB)',
    'goal',
    'TTFT (s)',
    'wall (s)',
  ];
  const rows = seriesOf(points)
    .flat()
    .map((p) => {
      const goal = checkGoal(p, points, kvPerToken);
      const bound = goal.boundBytes.every((b) => b === null)
        ? ''
        : goal.boundBytes.map((b) => (b === null ? '–' : gib(b))).join(', ');
      const verdict =
        goal.ok === null
          ? ''
          : `${goal.ok ? 'met' : '**missed**'} (${p.context === MEMORY_GOAL.capContext ? `≤ ${gib(MEMORY_GOAL.capBytes)} GiB` : 'bound'})`;
      return [
        p.mode,
        String(p.ranks),
        String(p.context),
        p.peakRssBytes.map(gib).join(', '),
        mib(kvPerToken * p.context),
        p.chunks.map((c) => mib(kvPerToken * heldKvTokens(p.mode, c, p.context))).join(', '),
        bound,
        verdict,
        (p.ttftMs / 1000).toFixed(1),
        (p.wallMs / 1000).toFixed(0),
      ];
    });
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i === 1 || i === 2 || i > 7 ? '---:' : '---')).join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** Geometry of the plot, exported for its test. */
export const PLOT_LAYOUT = {
  width: 860,
  /** Height of the plotting area; the legend below it adds a row per two entries. */
  plotHeight: 380,
  left: 64,
  right: 30,
  top: 48,
  /** Axis labels under the plot, then the legend. */
  bottom: 52,
  legendColumnWidth: 380,
  legendRowHeight: 20,
} as const;

const SERIES_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2'];
const SINGLE_COLOR = '#555';

const tokensLabel = (t: number) => (t >= 1024 && t % 1024 === 0 ? `${t / 1024}k` : String(t));

/**
 * Peak RSS against context length as a standalone SVG: x in log2 of the context, y in GiB from 0.
 * Per (mode, ranks) a line through the largest rank's peak and a dot for every rank; dashed in the
 * same colour, the goal bound (factor × the largest rank at the reference context + the whole
 * KV-cache); grey, the whole KV-cache alone and the cap at capContext.
 */
export function memoryPlot(points: readonly MemoryPoint[], kvPerToken: number, title: string): string {
  const { width, plotHeight, left, right, top, bottom, legendColumnWidth, legendRowHeight } = PLOT_LAYOUT;
  const series = seriesOf(points);
  const contexts = [...new Set(points.map((p) => p.context))].sort((a, b) => a - b);
  const minX = Math.log2(contexts[0] ?? 1024);
  const maxX = Math.max(Math.log2(contexts.at(-1) ?? 32768), minX + 1);
  const goalOf = (s: readonly MemoryPoint[]) => {
    const ref = s.find((p) => p.context === MEMORY_GOAL.referenceContext);
    return ref ? MEMORY_GOAL.factor * Math.max(...ref.peakRssBytes) : null;
  };
  const topBytes = Math.max(
    MEMORY_GOAL.capBytes,
    ...points.flatMap((p) => p.peakRssBytes),
    ...series.map((s) => {
      const g = goalOf(s);
      return g === null ? 0 : g + kvPerToken * 2 ** maxX;
    }),
  );
  const maxY = Math.ceil((1.05 * topBytes) / GIB / 0.5) * 0.5;
  const plotW = width - left - right;
  const plotH = plotHeight;
  const x = (context: number) => left + ((Math.log2(context) - minX) / (maxX - minX)) * plotW;
  const y = (bytes: number) => top + plotH - (bytes / GIB / maxY) * plotH;
  const xy = (c: number, b: number) => `${x(c).toFixed(1)},${y(b).toFixed(1)}`;
  const line = (pts: readonly [number, number][], attrs: string) =>
    `<polyline fill="none" ${attrs} points="${pts.map(([c, b]) => xy(c, b)).join(' ')}"/>`;
  const span = contexts.length > 0 ? [contexts[0]!, contexts.at(-1)!] : [2 ** minX, 2 ** maxX];
  const curve = (f: (c: number) => number) => {
    const pts: [number, number][] = [];
    for (let i = 0; i <= 32; i++) {
      const c = 2 ** (Math.log2(span[0]!) + ((Math.log2(span[1]!) - Math.log2(span[0]!)) * i) / 32);
      pts.push([c, f(c)]);
    }
    return pts;
  };

  const parts: string[] = [
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    `<text x="${left}" y="36" fill="#555">peak RSS per rank (GiB) against prompt tokens; whole KV-cache ${(kvPerToken / 1024).toFixed(0)} KiB per token</text>`,
  ];
  for (let g = 0; g <= maxY + 1e-9; g += 0.5) {
    parts.push(
      `<line x1="${left}" y1="${y(g * GIB).toFixed(1)}" x2="${width - right}" y2="${y(g * GIB).toFixed(1)}" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${(y(g * GIB) + 4).toFixed(1)}" text-anchor="end">${g.toFixed(1)}</text>`,
    );
  }
  for (const c of contexts) {
    parts.push(
      `<line x1="${x(c).toFixed(1)}" y1="${top}" x2="${x(c).toFixed(1)}" y2="${top + plotH}" stroke="#f0f0f0"/>`,
      `<text x="${x(c).toFixed(1)}" y="${top + plotH + 16}" text-anchor="middle">${tokensLabel(c)}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`,
    `<text x="${left + plotW / 2}" y="${top + plotH + 34}" text-anchor="middle">prompt tokens (log scale)</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">GiB</text>`,
  );

  const legend: { swatch: string; label: string }[] = [];
  const kvLine = `stroke="#999" stroke-dasharray="2 3"`;
  parts.push(
    line(
      curve((c) => kvPerToken * c),
      kvLine,
    ),
  );
  legend.push({ swatch: kvLine, label: 'whole KV-cache' });
  const capLine = `stroke="#c0392b" stroke-dasharray="6 4"`;
  parts.push(
    `<line x1="${left}" y1="${y(MEMORY_GOAL.capBytes).toFixed(1)}" x2="${width - right}" y2="${y(MEMORY_GOAL.capBytes).toFixed(1)}" ${capLine} stroke-opacity="0.5"/>`,
  );
  legend.push({
    swatch: capLine,
    label: `${gib(MEMORY_GOAL.capBytes)} GiB (goal at ${tokensLabel(MEMORY_GOAL.capContext)})`,
  });

  let colorIndex = 0;
  for (const s of series) {
    const first = s[0]!;
    const color =
      first.mode === 'single' ? SINGLE_COLOR : SERIES_COLORS[colorIndex++ % SERIES_COLORS.length]!;
    const goal = goalOf(s);
    let goalLegend: { swatch: string; label: string } | null = null;
    if (goal !== null) {
      const attrs = `stroke="${color}" stroke-dasharray="7 4" stroke-opacity="0.7"`;
      parts.push(
        line(
          curve((c) => goal + kvPerToken * c),
          attrs,
        ),
      );
      goalLegend = { swatch: attrs, label: `1.5 × 1k + KV-cache, ${seriesLabel(first)}` };
    }
    const solid = `stroke="${color}" stroke-width="2"`;
    parts.push(
      line(
        s.map((p) => [p.context, Math.max(...p.peakRssBytes)]),
        solid,
      ),
    );
    for (const p of s) {
      p.peakRssBytes.forEach((b, r) => {
        parts.push(
          `<circle cx="${x(p.context).toFixed(1)}" cy="${y(b).toFixed(1)}" r="3" fill="${color}" fill-opacity="0.6"><title>${escapeXml(seriesLabel(p))}, rank ${r}, ${p.context} tokens: ${gib(b)} GiB</title></circle>`,
        );
      });
    }
    legend.push({ swatch: solid, label: `${seriesLabel(first)} (largest rank; dots: every rank)` });
    if (goalLegend) legend.push(goalLegend);
  }
  const perRow = Math.max(1, Math.floor((width - left) / legendColumnWidth));
  const legendTop = top + plotH + bottom;
  legend.forEach((item, i) => {
    const lx = left + (i % perRow) * legendColumnWidth;
    const ly = legendTop + Math.floor(i / perRow) * legendRowHeight;
    parts.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" ${item.swatch}/>`,
      `<text x="${lx + 30}" y="${ly + 4}">${escapeXml(item.label)}</text>`,
    );
  });
  const height = legendTop + Math.ceil(legend.length / perRow) * legendRowHeight;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}
