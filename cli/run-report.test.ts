import { describe, expect, it } from '@jest/globals';
import type { RankReport, RunResult, Span } from '../core/gen/runahead/v1/rank.ts';
import { Mode } from '../core/gen/runahead/v1/rank.ts';
import {
  SVG_LAYOUT,
  rankTable,
  runSummary,
  svgTimeline,
  textTimeline,
  timelineTitle,
  type RunSummary,
  type TimelineSpan,
} from './run-report.ts';

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

/** A two-rank KV-Runahead result, released at 1000 ms: rank 1 waits 55–80 for layer 1, which rank 0 had at 40. */
function twoRankResult(): RunResult {
  const at = (ms: number) => 1000 + ms;
  const span = (kind: string, layer: number, start: number, end: number): Span => ({
    kind,
    layer,
    startMs: at(start),
    endMs: at(end),
  });
  const report = (rank: number, spans: Span[], extra: Partial<RankReport> = {}): RankReport => ({
    from: { protocolVersion: 1, modelFingerprint: 'm', runId: 'r', rank, worldSize: 2 },
    error: '',
    computeMs: 0,
    waitMs: 0,
    sendMs: 0,
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    peakRssBytes: 0,
    spans,
    tokens: [],
    startReceivedMs: at(0),
    finishedMs: at(100),
    debugState: new Uint8Array(),
    sends: [],
    criticalSendMs: 0,
    ...extra,
  });
  return {
    runId: 'r',
    mode: Mode.MODE_RUNAHEAD,
    boundaries: [0, 8, 16],
    firstToken: 1,
    firstTokenText: 'x',
    tokens: [1],
    text: 'x',
    ttftMs: 105,
    contextLength: 16,
    releasedAtMs: at(0),
    partition: 'even',
    ranks: [
      report(
        0,
        [
          span('project', 0, 0, 10),
          span('attend', 0, 10, 30),
          span('project', 1, 30, 40),
          span('send', 1, 40, 80),
        ],
        {
          sendMs: 55,
          criticalSendMs: 40,
          sends: [
            { layer: 0, toRank: 1, bytes: 64, readyMs: at(10), startMs: at(10), endMs: at(25), idleMs: 0 },
            { layer: 1, toRank: 1, bytes: 64, readyMs: at(40), startMs: at(40), endMs: at(80), idleMs: 0 },
          ],
        },
      ),
      report(1, [
        span('project', 0, 2, 10),
        span('wait', 0, 10, 25),
        span('attend', 0, 25, 45),
        span('project', 1, 45, 55),
        span('wait', 1, 55, 80),
        span('attend', 1, 80, 100),
      ]),
    ],
  };
}

describe('send time that delayed the first token', () => {
  it('runSummary: each rank’s critical send, and the critical path from release to first token', () => {
    const s = runSummary(twoRankResult());
    expect(s.ranks.map((r) => [r.sendMs, r.criticalSendMs])).toEqual([
      [55, 40],
      [0, 0],
    ]);
    const path = s.criticalPath!;
    expect(path[0]).toMatchObject({ start: 0 });
    expect(path.at(-1)).toMatchObject({ rank: 1, kind: 'other', end: 105 });
    expect(path.filter((p) => p.kind === 'send')).toEqual([
      { rank: 0, kind: 'send', start: 10, end: 25 },
      { rank: 0, kind: 'send', start: 55, end: 80 },
    ]);
  });

  it('the table shows it beside the total send time; runs recorded before it say so', () => {
    const s = runSummary(twoRankResult());
    const [head, row0] = rankTable(s).split('\n');
    expect(head).toMatch(/send ms {2}send on TTFT path ms/);
    expect(row0).toMatch(/ 55\.0 +40\.0 /);
    const old = {
      ...s,
      ranks: s.ranks.map((r) => {
        const { criticalSendMs, ...rest } = r;
        expect(criticalSendMs).toBeDefined();
        return rest;
      }),
    };
    expect(rankTable(old).split('\n')[1]).toMatch(/ 55\.0 +— /);
  });

  it('the timelines mark it: ▓ in the text, a dark bar with its own legend entry in the SVG', () => {
    const s = runSummary(twoRankResult());
    const lines = textTimeline(s, 21).split('\n');
    // Rank 0's send row: ▓ from 55 to 80 ms (columns 11–16 of 21 over 105 ms).
    expect(lines[1]).toContain('▓▓▓▓▓');
    expect(lines[3]).not.toContain('▓');
    // A hand-off of a tenth of a millisecond on the path is no delay worth a mark.
    const tiny = { ...s, criticalPath: [{ rank: 1, kind: 'send' as const, start: 50, end: 50.1 }] };
    expect(textTimeline(tiny, 21).split('\n')[3]).not.toContain('▓');
    const svg = svgTimeline(s, 'title');
    expect(
      svg.match(/<title>rank 0 sending that delayed the first token: [\d.]+–[\d.]+ ms<\/title>/g),
    ).toHaveLength(2);
    expect(texts(svg).map((t) => t.text)).toContain('send delaying TTFT');
    expect(texts(svgTimeline(summary(2, 100), 'title')).map((t) => t.text)).not.toContain(
      'send delaying TTFT',
    );
  });
});
