import { describe, expect, test } from '@jest/globals';
import { histogramBuckets, histogramQuantile, ttftPercentiles } from './ttft-percentiles.ts';

const front = (counts: Record<string, number>, ranks = '2') =>
  Object.entries(counts)
    .map(([le, n]) => `runahead_serve_ttft_seconds_bucket{le="${le}",ranks="${ranks}"} ${n}`)
    .join('\n');

describe('TTFT percentiles from the fronts’ histograms', () => {
  test('buckets are summed over label sets; other metrics are ignored', () => {
    const text = [
      '# TYPE runahead_serve_ttft_seconds histogram',
      front({ '0.1': 1, '0.5': 3, '+Inf': 3 }, '1'),
      front({ '0.1': 0, '0.5': 2, '+Inf': 4 }, '2'),
      'runahead_serve_ttft_seconds_sum{ranks="2"} 9',
      'runahead_serve_queue_seconds_bucket{le="0.1"} 50',
    ].join('\n');
    expect([...histogramBuckets(text)]).toEqual([
      [0.1, 1],
      [0.5, 5],
      [Infinity, 7],
    ]);
  });

  test('a quantile is linear inside its bucket, the last finite bound in +Inf, null when empty', () => {
    const b = new Map([
      [0.1, 10],
      [0.5, 90],
      [1, 100],
      [Infinity, 100],
    ]);
    expect(histogramQuantile(b, 0.05)).toBeCloseTo(0.05);
    expect(histogramQuantile(b, 0.5)).toBeCloseTo(0.1 + 0.4 * (40 / 80));
    expect(histogramQuantile(b, 0.95)).toBeCloseTo(0.75);
    expect(
      histogramQuantile(
        new Map([
          [0.1, 0],
          [Infinity, 4],
        ]),
        0.5,
      ),
    ).toBe(0.1);
    expect(histogramQuantile(new Map([[Infinity, 0]]), 0.5)).toBeNull();
  });

  test('p50/p90/p99 in ms over every front; null before the first request', () => {
    const a = front({ '0.05': 0, '0.1': 50, '0.25': 50, '+Inf': 50 });
    const b = front({ '0.05': 0, '0.1': 0, '0.25': 50, '+Inf': 50 });
    expect(ttftPercentiles([a, b])).toEqual({ p50: 100, p90: 220, p99: 247, requests: 100 });
    expect(ttftPercentiles([front({ '0.1': 0, '+Inf': 0 })])).toBeNull();
    expect(ttftPercentiles([])).toBeNull();
  });
});
