// The pure half of `runahead bench serve`: the prompt-length mix (parsed from its flag, drawn with a
// seeded generator so every policy gets the same prompts in the same order), percentiles, and the
// per-policy summary the report prints. No I/O.
import { z } from 'zod';

/** One part of the mix: `weight` of the requests, lengths uniform in [min, max] tokens. */
export interface MixPart {
  readonly weight: number;
  readonly min: number;
  readonly max: number;
}

export const MixSchema = z.string().transform((s, ctx) => {
  const parts: MixPart[] = [];
  for (const item of s.split(',')) {
    const m = /^\s*(\d+(?:\.\d+)?)%?:(\d+)-(\d+)\s*$/.exec(item);
    if (!m) {
      ctx.addIssue({
        code: 'custom',
        message: `--mix: "${item}" is not <weight>:<min>-<max> (e.g. 70:16-256,30:1024-2048)`,
      });
      return z.NEVER;
    }
    const [weight, min, max] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (weight <= 0 || min < 1 || max < min) {
      ctx.addIssue({ code: 'custom', message: `--mix: "${item}" needs weight > 0 and 1 ≤ min ≤ max` });
      return z.NEVER;
    }
    parts.push({ weight, min, max });
  }
  return parts;
});

/** mulberry32: a small seeded generator; the same seed gives every policy the same prompts. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DrawnPrompt {
  /** Which part of the mix it came from. */
  readonly part: number;
  readonly tokens: number;
}

/** `count` prompt lengths from `mix`, in the order they are sent. */
export function drawPrompts(mix: readonly MixPart[], count: number, seed: number): DrawnPrompt[] {
  const random = seeded(seed);
  const total = mix.reduce((s, p) => s + p.weight, 0);
  return Array.from({ length: count }, () => {
    let r = random() * total;
    let part = 0;
    while (part < mix.length - 1 && r >= mix[part]!.weight) r -= mix[part++]!.weight;
    const { min, max } = mix[part]!;
    return { part, tokens: min + Math.floor(random() * (max - min + 1)) };
  });
}

/** The nearest-rank percentile `p` (0–100) of `values`. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** One answered request, as the load generator saw it. */
export interface ServedRequest {
  readonly part: number;
  readonly tokens: number;
  /** Send → first streamed token, on the client's clock (queue and HTTP included). */
  readonly clientTtftMs: number;
  /** Rank 0's TTFT (the chain's own clock). */
  readonly ttftMs: number;
  readonly queueMs: number;
  /** Send → the end of the answer. */
  readonly durationMs: number;
  /** Ranks the server ran it on. */
  readonly ranks: number;
}

export interface PartSummary {
  readonly part: number;
  readonly requests: number;
  readonly clientP50: number;
  readonly clientP99: number;
  readonly ttftP50: number;
  readonly ttftP99: number;
  /** Requests of this part the server split over the chain. */
  readonly split: number;
}

export interface PolicySummary {
  readonly policy: string;
  readonly requests: number;
  /** The time its requests took, end to end, summed. */
  readonly busyMs: number;
  readonly requestsPerSecond: number;
  readonly promptTokensPerSecond: number;
  readonly clientP50: number;
  readonly clientP99: number;
  readonly parts: readonly PartSummary[];
}

export function summarizePolicy(
  policy: string,
  served: readonly ServedRequest[],
  busyMs: number,
  parts: number,
): PolicySummary {
  const client = served.map((s) => s.clientTtftMs);
  return {
    policy,
    requests: served.length,
    busyMs,
    requestsPerSecond: (1000 * served.length) / busyMs,
    promptTokensPerSecond: (1000 * served.reduce((s, r) => s + r.tokens, 0)) / busyMs,
    clientP50: percentile(client, 50),
    clientP99: percentile(client, 99),
    parts: Array.from({ length: parts }, (_, part) => {
      const mine = served.filter((s) => s.part === part);
      return {
        part,
        requests: mine.length,
        clientP50: percentile(
          mine.map((s) => s.clientTtftMs),
          50,
        ),
        clientP99: percentile(
          mine.map((s) => s.clientTtftMs),
          99,
        ),
        ttftP50: percentile(
          mine.map((s) => s.ttftMs),
          50,
        ),
        ttftP99: percentile(
          mine.map((s) => s.ttftMs),
          99,
        ),
        split: mine.filter((s) => s.ranks > 1).length,
      };
    }),
  };
}
