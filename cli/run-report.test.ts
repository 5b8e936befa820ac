import { describe, expect, it } from '@jest/globals';
import { SVG_LAYOUT, svgTimeline, timelineTitle, type RunSummary, type TimelineSpan } from './run-report.ts';

/** A KV-Runahead run of `ranks` ranks whose last span ends at `ttftMs`. */
function summary(ranks: number, ttftMs: number, mode: RunSummary['mode'] = 'runahead'): RunSummary {
  const chunk = 1024 / ranks;
  const timeline: TimelineSpan[] = [];
  for (let r = 0; r < ranks; r++) {
    const begin = (r * ttftMs) / (ranks + 1);
    timeline.push(
      { rank: r, kind: 'wait', layer: 0, start: 0, end: begin },
      { rank: r, kind: 'project', layer: 0, start: begin, end: begin + 5 },
      { rank: r, kind: 'attend', layer: 0, start: begin + 5, end: ttftMs - 10 },
      { rank: r, kind: 'send', layer: 0, start: begin + 6, end: begin + 8 },
    );
  }
  return {
    mode,
    partition: 'even',
    firstToken: 7,
    firstTokenText: 'x',
    tokens: [7],
    text: 'x',
    ttftMs,
    contextLength: 1024,
    boundaries: Array.from({ length: ranks + 1 }, (_, i) => i * chunk),
    ranks: Array.from({ length: ranks }, (_, r) => ({
      rank: r,
      chunk: [r * chunk, (r + 1) * chunk] as const,
      computeMs: 1,
      waitMs: 1,
      sendMs: 1,
      bytesSent: 0,
      bytesReceived: 0,
      framesSent: 0,
      peakRssBytes: 0,
    })),
    timeline,
  };
}

const texts = (svg: string) =>
  [...svg.matchAll(/<text x="([\d.]+)"[^>]*?(?: text-anchor="(\w+)")?>([^<]*)<\/text>/g)].map((m) => ({
    x: Number(m[1]),
    anchor: m[2] ?? 'start',
    text: m[3]!,
  }));

/** Width of a 12 px sans-serif label, generously: 7.5 px a character. */
const labelWidth = (text: string) => text.length * 7.5;

describe('timelineTitle', () => {
  it.each(['runahead', 'tsp', 'single'] as const)('says %s once and repeats no word', (mode) => {
    const title = timelineTitle(summary(4, 500, mode), 'synthetic:small');
    const words = title.toLowerCase().split(/[\s,]+/);
    expect(new Set(words).size).toBe(words.length);
    expect(title).toContain('4 ranks');
    expect(title).toContain('synthetic:small');
  });

  it('KV-Runahead, 1 rank', () => {
    expect(timelineTitle(summary(1, 500), 'm')).toBe('KV-Runahead, 1 rank, m');
  });
});

describe('svgTimeline', () => {
  it.each([
    [2, 0.4],
    [4, 1234.5],
    [8, 98765.4],
  ])('%i ranks, TTFT %f ms: every axis label lies within the picture', (ranks, ttftMs) => {
    const svg = svgTimeline(summary(ranks, ttftMs), 'title');
    const width = Number(/<svg [^>]*width="(\d+)"/.exec(svg)![1]);
    expect(width).toBe(SVG_LAYOUT.width);
    const axis = texts(svg).filter((t) => /^\d+ ms$/.test(t.text));
    expect(axis).toHaveLength(6);
    for (const t of axis) {
      const w = labelWidth(t.text);
      const [from, to] = t.anchor === 'middle' ? [t.x - w / 2, t.x + w / 2] : [t.x, t.x + w];
      expect(from).toBeGreaterThanOrEqual(0);
      expect(to).toBeLessThanOrEqual(width);
    }
  });

  it('names every mark in the legend: the kinds drawn, idle and the first-token line', () => {
    const svg = svgTimeline(summary(3, 500), 'title');
    const labels = texts(svg).map((t) => t.text);
    for (const label of [
      'Q/K/V projection',
      'attention + MLP',
      'waiting for K/V',
      'sending K/V',
      'idle (no span)',
      'first token (TTFT)',
    ])
      expect(labels).toContain(label);
    // Only the compute kinds that occur: this run has no multi-layer graphs.
    expect(labels).not.toContain('several layers (one graph)');
    // The legend fits the picture, in width and height.
    const height = Number(/<svg [^>]*height="(\d+)"/.exec(svg)![1]);
    for (const t of texts(svg)) {
      expect(t.x + (t.anchor === 'middle' ? labelWidth(t.text) / 2 : labelWidth(t.text))).toBeLessThanOrEqual(
        SVG_LAYOUT.width,
      );
    }
    const ys = [...svg.matchAll(/<text [^>]*y="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(Math.max(...ys)).toBeLessThan(height);
  });

  it('names a span kind it has no colour for by its own name', () => {
    const s = summary(2, 100);
    const svg = svgTimeline(
      { ...s, timeline: [...s.timeline, { rank: 0, kind: 'embed', layer: -1, start: 0, end: 1 }] },
      'title',
    );
    expect(texts(svg).map((t) => t.text)).toContain('embed');
  });

  it('escapes the title and draws it as given', () => {
    const svg = svgTimeline(summary(2, 100), timelineTitle(summary(2, 100), 'a<b>&c'));
    expect(svg).toContain('KV-Runahead, 2 ranks, a&lt;b&gt;&amp;c');
  });
});
