// TTFT percentiles of a server from its fronts' /metrics (runahead_serve_ttft_seconds, a Prometheus
// histogram per front): the buckets of every front and label set are added, and each percentile is
// read off the sum as Prometheus' histogram_quantile does — linear within the bucket it falls in,
// the highest finite bound when it falls in +Inf. Pure: text in, numbers out.

export const TTFT_HISTOGRAM = 'runahead_serve_ttft_seconds';

/** Cumulative counts by upper bound (seconds; Infinity for +Inf), summed over label sets. */
export function histogramBuckets(text: string, name: string = TTFT_HISTOGRAM): Map<number, number> {
  const buckets = new Map<number, number>();
  const line = new RegExp(`^${name}_bucket\\{(.*)\\}\\s+(\\S+)`);
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (!m) continue;
    const le = /(?:^|,)le="([^"]+)"/.exec(m[1]!)?.[1];
    const count = Number(m[2]);
    if (le === undefined || !Number.isFinite(count)) continue;
    const bound = le === '+Inf' ? Infinity : Number(le);
    if (Number.isNaN(bound)) continue;
    buckets.set(bound, (buckets.get(bound) ?? 0) + count);
  }
  return buckets;
}

/** The q-quantile (0..1) of cumulative `buckets`, in the buckets' unit; null without observations. */
export function histogramQuantile(buckets: ReadonlyMap<number, number>, q: number): number | null {
  const sorted = [...buckets.entries()].sort(([a], [b]) => a - b);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, count] of sorted) {
    if (count >= rank) {
      if (bound === Infinity) return lower;
      return count === below ? bound : lower + ((bound - lower) * (rank - below)) / (count - below);
    }
    lower = bound;
    below = count;
  }
  return lower;
}

export interface TtftPercentiles {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly requests: number;
}

/** p50/p90/p99 in milliseconds over every front's histogram; null when no request was served. */
export function ttftPercentiles(metricsTexts: readonly string[]): TtftPercentiles | null {
  const sum = new Map<number, number>();
  for (const text of metricsTexts)
    for (const [bound, count] of histogramBuckets(text)) sum.set(bound, (sum.get(bound) ?? 0) + count);
  const ms = (q: number) => {
    const s = histogramQuantile(sum, q);
    return s === null ? null : Math.round(s * 1000 * 100) / 100;
  };
  const [p50, p90, p99] = [ms(0.5), ms(0.9), ms(0.99)];
  if (p50 === null || p90 === null || p99 === null) return null;
  return { p50, p90, p99, requests: Math.max(0, ...sum.values()) };
}
