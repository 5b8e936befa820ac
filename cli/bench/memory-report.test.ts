import { describe, expect, it } from '@jest/globals';
import { presetConfig } from '../../worker/model/presets.ts';
import {
  GIB,
  MIB,
  checkGoal,
  heldKvTokens,
  kvBytesPerToken,
  memoryPlot,
  memoryTable,
  seriesOf,
  type MemoryPoint,
} from './memory-report.ts';

const SMALL = kvBytesPerToken(presetConfig('small'), 4);

function point(
  ranks: number,
  context: number,
  gibPerRank: readonly number[],
  mode: MemoryPoint['mode'] = 'runahead',
): MemoryPoint {
  const chunk = context / ranks;
  return {
    mode,
    ranks,
    context,
    chunks: Array.from({ length: ranks }, (_, r) => [r * chunk, (r + 1) * chunk] as const),
    peakRssBytes: gibPerRank.map((g) => g * GIB),
    ttftMs: 1000,
    wallMs: 5000,
  };
}

describe('KV arithmetic', () => {
  it("synthetic:small's whole KV-cache: 12 layers × K,V × 4 heads × 64 × float32", () => {
    expect(SMALL).toBe(24576);
    expect((SMALL * 8192) / MIB).toBe(192);
    expect((SMALL * 32768) / GIB).toBe(0.75);
  });

  it('a KV-Runahead rank holds what it received, [0, s); TSP every other chunk; single nothing', () => {
    expect(heldKvTokens('runahead', [0, 16384], 32768)).toBe(0);
    expect(heldKvTokens('runahead', [16384, 32768], 32768)).toBe(16384);
    expect(heldKvTokens('tsp', [8192, 16384], 32768)).toBe(24576);
    expect(heldKvTokens('single', [0, 32768], 32768)).toBe(0);
  });
});

describe('checkGoal', () => {
  const ref = point(2, 1024, [0.8, 0.9]);

  it('at 32768 tokens bounds each rank by 1.5 × its own 1k figure + the whole KV-cache', () => {
    const p = point(2, 32768, [1.9, 2.1]);
    const g = checkGoal(p, [ref, p], SMALL);
    expect(g.boundBytes.map((b) => b! / GIB)).toEqual([1.5 * 0.8 + 0.75, 1.5 * 0.9 + 0.75]);
    expect(g.ok).toBe(true);
    const over = point(2, 32768, [1.96, 1.0]);
    expect(checkGoal(over, [ref, over], SMALL).ok).toBe(false);
  });

  it('at 8192 tokens holds only under 2 GiB, whatever the bound', () => {
    const under = point(2, 8192, [1.2, 1.25]);
    expect(checkGoal(under, [ref, under], SMALL).ok).toBe(true);
    const over = point(2, 8192, [1.2, 2.01]);
    expect(checkGoal(over, [ref, over], SMALL).ok).toBe(false);
  });

  it('gives the bound at other lengths without a verdict', () => {
    const p = point(2, 16384, [5, 5]);
    const g = checkGoal(p, [ref, p], SMALL);
    expect(g.boundBytes.map((b) => b! / GIB)).toEqual([1.5 * 0.8 + 0.375, 1.5 * 0.9 + 0.375]);
    expect(g.ok).toBeNull();
  });

  it('says nothing without a reference point of the same mode and ranks', () => {
    const p = point(4, 32768, [1, 1, 1, 1]);
    expect(checkGoal(p, [ref, p], SMALL)).toMatchObject({ ok: null, boundBytes: [null, null, null, null] });
    expect(checkGoal(ref, [ref], SMALL).ok).toBeNull();
  });
});

describe('report', () => {
  const points = [
    point(2, 32768, [1.5, 1.9]),
    point(2, 1024, [0.8, 0.8]),
    point(4, 1024, [0.8, 0.8, 0.8, 0.8]),
    point(1, 1024, [0.7], 'single'),
  ];

  it('groups points by mode and ranks, sorted by context', () => {
    expect(seriesOf(points).map((s) => s.map((p) => `${p.mode}-${p.ranks}-${p.context}`))).toEqual([
      ['runahead-2-1024', 'runahead-2-32768'],
      ['runahead-4-1024'],
      ['single-1-1024'],
    ]);
  });

  it('tables every point with its goal', () => {
    const table = memoryTable(points, SMALL).split('\n');
    expect(table).toHaveLength(2 + points.length);
    expect(table[3]).toBe(
      '| runahead | 2 | 32768 | 1.50, 1.90 | 768 | 0, 384 | 1.95, 1.95 | met (bound) | 1.0 | 5 |',
    );
  });

  it('plots one line per series, a dot per rank, and a goal line where a 1k point exists', () => {
    const svg = memoryPlot(points, SMALL, 'a <title> & more');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;title&gt; &amp; more');
    expect(svg.match(/<circle /g)).toHaveLength(2 + 2 + 4 + 1);
    // per series its line and its goal; plus the whole KV-cache
    expect(svg.match(/<polyline /g)).toHaveLength(3 * 2 + 1);
    expect(svg).toContain('>32k<');
    for (const [, v] of svg.matchAll(/(?:cx|cy|x1|y1|x2|y2)="([^"]+)"/g))
      expect(Number.isFinite(Number(v))).toBe(true);
  });
});
