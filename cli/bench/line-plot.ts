// A small standalone SVG line plot: x on a log₂ scale (context lengths), y linear or log₂, one
// polyline per series with a marker per point, horizontal guides, a legend on the right. Pure; no
// dependency.

export interface PlotPoint {
  readonly x: number;
  readonly y: number;
  /** Drawn as an open marker (e.g. a configuration that does not fit in memory). */
  readonly hollow?: boolean;
  /** Tooltip. */
  readonly note?: string;
}

export interface PlotSeries {
  readonly label: string;
  readonly color: string;
  /** SVG stroke-dasharray, e.g. "6 4". */
  readonly dash?: string;
  readonly points: readonly PlotPoint[];
}

export interface PlotGuide {
  readonly y: number;
  readonly label: string;
}

export interface LinePlot {
  readonly title: string;
  /** One line each. */
  readonly subtitle?: readonly string[];
  readonly xLabel: string;
  readonly yLabel: string;
  readonly xTicks: readonly number[];
  readonly xTickLabel?: (x: number) => string;
  readonly series: readonly PlotSeries[];
  readonly guides?: readonly PlotGuide[];
  /** Top of the y axis; default: the largest y or guide, rounded up (to a power of 2 on a log scale). */
  readonly yMax?: number;
  /** y on a log₂ scale, from the smallest y's power of 2 (never below yFloor) to yMax. */
  readonly yLog?: boolean;
  /** Lowest y a log scale shows; smaller values sit on the axis. Default 1/64. */
  readonly yFloor?: number;
}

/** Geometry, exported for the test. */
export const LINE_PLOT_LAYOUT = {
  width: 900,
  height: 500,
  left: 60,
  right: 260,
  top: 80,
  bottom: 52,
} as const;

export function escapeXml(s: string): string {
  return s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);
}

/** 1, 2, 5 × 10ⁿ steps: about `count` of them up to `max`. */
export function niceStep(max: number, count = 6): number {
  const raw = max / count;
  const unit = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * unit >= raw) return m * unit;
  return 10 * unit;
}

export function linePlotSvg(plot: LinePlot): string {
  const { width, height, left, right, top, bottom } = LINE_PLOT_LAYOUT;
  const xs = [...plot.xTicks, ...plot.series.flatMap((s) => s.points.map((p) => p.x))].filter((x) => x > 0);
  const minX = Math.log2(Math.min(...xs));
  const maxX = Math.max(Math.log2(Math.max(...xs)), minX + 1);
  const ys = [
    ...plot.series.flatMap((s) => s.points.map((p) => p.y)),
    ...(plot.guides ?? []).map((g) => g.y),
  ].filter(Number.isFinite);
  const step = niceStep(plot.yMax ?? Math.max(1, ...ys));
  const log = plot.yLog ?? false;
  const floor = plot.yFloor ?? 1 / 64;
  const maxY =
    plot.yMax ??
    (log ? 2 ** Math.ceil(Math.log2(Math.max(1, ...ys))) : Math.ceil(Math.max(1, ...ys) / step) * step);
  const minY = log
    ? Math.max(floor, 2 ** Math.floor(Math.log2(Math.min(maxY / 2, ...ys.filter((v) => v > 0)))))
    : 0;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const x = (v: number) => left + ((Math.log2(v) - minX) / (maxX - minX)) * plotW;
  const fraction = (v: number) => {
    const c = Math.min(Math.max(v, minY), maxY);
    return log ? (Math.log2(c) - Math.log2(minY)) / (Math.log2(maxY) - Math.log2(minY)) : c / maxY;
  };
  const y = (v: number) => top + plotH - fraction(v) * plotH;
  const yTicks: number[] = [];
  if (log) for (let v = minY; v <= maxY * (1 + 1e-9); v *= 2) yTicks.push(v);
  else for (let v = 0; v <= maxY + 1e-9; v += step) yTicks.push(v);
  const yTickLabel = (v: number) =>
    v >= 1 || !log ? String(Number(v.toFixed(6))) : `1/${Math.round(1 / v)}`;
  const f = (v: number) => v.toFixed(1);
  const tick = plot.xTickLabel ?? ((v: number) => String(v));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="22" font-size="14" font-weight="bold">${escapeXml(plot.title)}</text>`,
  ];
  (plot.subtitle ?? []).forEach((line, i) => {
    parts.push(`<text x="${left}" y="${40 + 15 * i}" fill="#555">${escapeXml(line)}</text>`);
  });
  for (const v of yTicks) {
    parts.push(
      `<line x1="${left}" y1="${f(y(v))}" x2="${width - right}" y2="${f(y(v))}" stroke="#e5e5e5"/>`,
      `<text x="${left - 6}" y="${f(y(v) + 4)}" text-anchor="end">${yTickLabel(v)}</text>`,
    );
  }
  for (const t of plot.xTicks) {
    parts.push(
      `<line x1="${f(x(t))}" y1="${top}" x2="${f(x(t))}" y2="${top + plotH}" stroke="#f0f0f0"/>`,
      `<text x="${f(x(t))}" y="${top + plotH + 16}" text-anchor="middle">${escapeXml(tick(t))}</text>`,
    );
  }
  for (const g of plot.guides ?? []) {
    parts.push(
      `<line x1="${left}" y1="${f(y(g.y))}" x2="${width - right}" y2="${f(y(g.y))}" stroke="#999" stroke-dasharray="2 3"/>`,
      `<text x="${left + 4}" y="${f(y(g.y) - 4)}" fill="#777">${escapeXml(g.label)}</text>`,
    );
  }
  parts.push(
    `<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#333"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`,
    `<text x="${left + plotW / 2}" y="${height - 12}" text-anchor="middle">${escapeXml(plot.xLabel)}</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(plot.yLabel)}</text>`,
  );
  plot.series.forEach((s, i) => {
    const stroke = `stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}`;
    const pts = s.points.filter((p) => Number.isFinite(p.y) && p.x > 0);
    if (pts.length > 1)
      parts.push(
        `<polyline fill="none" ${stroke} points="${pts.map((p) => `${f(x(p.x))},${f(y(p.y))}`).join(' ')}"/>`,
      );
    for (const p of pts) {
      const fill = p.hollow ? 'white' : s.color;
      const title = p.note ? `<title>${escapeXml(p.note)}</title>` : '';
      parts.push(
        `<circle cx="${f(x(p.x))}" cy="${f(y(p.y))}" r="3.5" fill="${fill}" stroke="${s.color}">${title}</circle>`,
      );
    }
    const lx = width - right + 16;
    const ly = top + 6 + i * 20;
    parts.push(
      `<line x1="${lx}" y1="${ly}" x2="${lx + 28}" y2="${ly}" ${stroke}/>`,
      `<text x="${lx + 34}" y="${ly + 4}">${escapeXml(s.label)}</text>`,
    );
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
