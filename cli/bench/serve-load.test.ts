import { describe, expect, it } from '@jest/globals';
import { renderServeReport } from './serve-bench.ts';
import { drawPrompts, MixSchema, percentile, summarizePolicy, type ServedRequest } from './serve-load.ts';

describe('the prompt-length mix', () => {
  it('parses weight:min-max parts, and refuses what is not one by its text', () => {
    expect(MixSchema.parse('70:32-256,30%:1024-2048')).toEqual([
      { weight: 70, min: 32, max: 256 },
      { weight: 30, min: 1024, max: 2048 },
    ]);
    const bad = MixSchema.safeParse('70:32-256,lots');
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toMatch(/"lots" is not <weight>:<min>-<max>/);
    expect(MixSchema.safeParse('1:10-5').error?.issues[0]?.message).toMatch(/1 ≤ min ≤ max/);
  });

  it('draws the same prompts for the same seed, within their parts, in proportion', () => {
    const mix = MixSchema.parse('70:10-20,30:100-200');
    const a = drawPrompts(mix, 2000, 7);
    expect(drawPrompts(mix, 2000, 7)).toEqual(a);
    expect(drawPrompts(mix, 2000, 8)).not.toEqual(a);
    for (const p of a) {
      const { min, max } = mix[p.part]!;
      expect(p.tokens).toBeGreaterThanOrEqual(min);
      expect(p.tokens).toBeLessThanOrEqual(max);
    }
    const short = a.filter((p) => p.part === 0).length / a.length;
    expect(short).toBeGreaterThan(0.65);
    expect(short).toBeLessThan(0.75);
  });
});

describe('summaries', () => {
  it('takes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(xs, 50), percentile(xs, 99), percentile(xs, 100), percentile([5], 99)]).toEqual([
      50, 99, 100, 5,
    ]);
    expect(percentile([], 50)).toBeNaN();
  });

  it('summarizes a policy per part, and the report compares length-aware with the others', () => {
    const req = (part: number, clientTtftMs: number, ranks: number): ServedRequest => ({
      part,
      tokens: part === 0 ? 10 : 1000,
      clientTtftMs,
      ttftMs: clientTtftMs - 1,
      queueMs: 0,
      durationMs: clientTtftMs,
      ranks,
    });
    const single = summarizePolicy('one rank', [req(0, 10, 1), req(1, 100, 1)], 1000, 2);
    const aware = summarizePolicy('length-aware', [req(0, 10.2, 1), req(1, 50, 2)], 500, 2);
    expect(aware).toMatchObject({ requests: 2, requestsPerSecond: 4, promptTokensPerSecond: 2020 });
    expect(aware.parts[1]).toMatchObject({ requests: 1, split: 1, clientP50: 50, ttftP50: 49 });
    const report = renderServeReport(
      'runahead bench serve …',
      ['machine: test'],
      MixSchema.parse('70:1-10,30:900-1000'),
      [single, aware],
    );
    expect(report).toContain('- prompt-length mix: 70% 1–10 tokens, 30% 900–1000 tokens');
    expect(report).toContain('| 900–1000 | length-aware | 1 | 1 | 50.0 | 50.0 | 49.0 | 49.0 |');
    expect(report).toContain('- 1–10 tokens: 1.02× one rank');
    expect(report).toContain('- 900–1000 tokens: 0.50× one rank');
  });
});
