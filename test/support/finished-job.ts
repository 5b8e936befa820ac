// A RunaheadJob as the operator leaves it once the chain has run: the status built from what rank 0
// reported, through the same path as a real pod (spans → runOutcome → termination message → parse).
// The spans come from a small model of the KV-Runahead chain, so the picture is the real one:
// projection and attention cost grow with the chunk and its prefix, rank i waits for rank i−1's K/V
// of each layer, and sends its extended cache on while it attends.
import {
  encodeTerminationMessage,
  parseTerminationMessage,
  type RunOutcome,
} from '../../core/api/termination-message.ts';
import {
  RunaheadJobSpecSchema,
  type RankStatus,
  type RunaheadJob,
  type RunaheadJobSpecInput,
  type RunaheadJobStatus,
} from '../../core/api/v1alpha1/runahead-job.ts';
import { API_VERSION, KIND } from '../../core/api/v1alpha1/names.ts';
import { runOutcome } from '../../cli/run-outcome.ts';
import type { RunSummary, TimelineSpan } from '../../cli/run-report.ts';

export interface ChainModel {
  readonly layers: number;
  /** ms per token of a chunk, per layer (projection, MLP). */
  readonly perToken: number;
  /** ms per (query token × key token), per layer (attention). */
  readonly perPair: number;
  /** ms per token of K/V sent, per layer. */
  readonly perTokenSent: number;
}

// Chosen so that an even split of 8192 tokens shows the staircase (rank 0 done at 43% of TTFT) and
// BALANCED_4 brings TTFT down 1.3×, the order of the paper's gains.
const DEFAULT_MODEL: ChainModel = { layers: 32, perToken: 0.003, perPair: 1e-6, perTokenSent: 0.0025 };

export function simulatedRun(
  boundaries: readonly number[],
  partition: 'even' | 'balanced' | 'explicit',
  model: ChainModel = DEFAULT_MODEL,
): RunSummary {
  const ranks = boundaries.length - 1;
  const spans: TimelineSpan[] = [];
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const span = (rank: number, kind: string, layer: number, start: number, end: number) =>
    spans.push({ rank, kind, layer, start: r2(start), end: r2(end) });
  // arrives[l]: when the previous rank's K/V of layer l is here.
  let arrives: number[] = [];
  let ttftMs = 0;
  const totals: { compute: number; wait: number; send: number }[] = [];
  for (let r = 0; r < ranks; r++) {
    const lo = boundaries[r]!;
    const hi = boundaries[r + 1]!;
    const chunk = hi - lo;
    const next: number[] = [];
    const total = { compute: 0, wait: 0, send: 0 };
    let t = 0.2 * r; // the Start reaches later ranks a little later
    const embed = 0.0005 * chunk;
    span(r, 'embed', -1, t, (t += embed));
    total.compute += embed;
    for (let l = 0; l < model.layers; l++) {
      const project = model.perToken * chunk * 0.4;
      span(r, 'project', l, t, (t += project));
      total.compute += project;
      const ready = r === 0 ? t : Math.max(t, arrives[l]!);
      if (ready > t) {
        span(r, 'wait', l, t, ready);
        total.wait += ready - t;
      }
      t = ready;
      if (r < ranks - 1) {
        const send = model.perTokenSent * hi;
        span(r, 'send', l, t, t + send);
        total.send += send;
        next.push(t + send);
      }
      const attend = model.perPair * chunk * hi + model.perToken * chunk * 0.6;
      span(r, 'attend', l, t, (t += attend));
      total.compute += attend;
    }
    if (r === ranks - 1) {
      span(r, 'head', model.layers, t, (t += 0.8));
      total.compute += 0.8;
      ttftMs = t;
    }
    arrives = next;
    totals.push(total);
  }
  return {
    mode: 'runahead',
    partition,
    firstToken: 791,
    firstTokenText: ' Paris',
    tokens: [791],
    text: ' Paris',
    ttftMs: r2(ttftMs),
    contextLength: boundaries.at(-1)!,
    boundaries,
    ranks: totals.map((x, r) => ({
      rank: r,
      chunk: [boundaries[r]!, boundaries[r + 1]!] as const,
      computeMs: r2(x.compute),
      waitMs: r2(x.wait),
      sendMs: r2(x.send),
      bytesSent: r < ranks - 1 ? boundaries[r + 1]! * model.layers * 2 * 8 * 128 * 2 : 0,
      bytesReceived: r > 0 ? boundaries[r]! * model.layers * 2 * 8 * 128 * 2 : 0,
      framesSent: 0,
      peakRssBytes: 17_000_000_000 + r * 100_000_000,
    })),
    timeline: spans,
  };
}

/** What rank 0's pod delivers to the operator for that run. */
export function reportedOutcome(summary: RunSummary): RunOutcome {
  const parsed = parseTerminationMessage(
    encodeTerminationMessage({ v: 1, ok: true, rank: 0, result: runOutcome(summary) }),
  );
  if (!parsed?.ok || !parsed.result) throw new Error('the termination message did not parse back');
  return parsed.result;
}

/** The status of a job that succeeded with `outcome`, in the shape the operator writes. */
export function succeededStatus(
  name: string,
  outcome: RunOutcome,
  times: { start: Date; end: Date },
): RunaheadJobStatus {
  const iso = (d: Date) => d.toISOString().replace(/\.\d+Z$/, 'Z');
  const ranks: RankStatus[] = outcome.ranks.map((r) => ({
    rank: r.rank,
    pod: `${name}-${r.rank}`,
    node: `gpu-node-${r.rank}`,
    phase: 'Succeeded',
    ready: false,
    chunk: [...r.chunk],
    ...Object.fromEntries(
      (
        [
          'computeMs',
          'waitMs',
          'sendMs',
          'bytesSent',
          'bytesReceived',
          'peakRssBytes',
          'startMs',
          'endMs',
          'timeline',
        ] as const
      ).flatMap((k) => (r[k] === undefined ? [] : [[k, r[k]]])),
    ),
  }));
  return {
    phase: 'Succeeded',
    observedGeneration: 1,
    restarts: 0,
    startTime: iso(times.start),
    completionTime: iso(times.end),
    contextLength: outcome.contextLength,
    boundaries: outcome.boundaries,
    partition: outcome.partition,
    ttftMs: outcome.ttftMs,
    firstToken: outcome.firstToken,
    firstTokenText: outcome.firstTokenText,
    tokens: outcome.tokens,
    text: outcome.text,
    ranks,
    conditions: [
      {
        type: 'RanksReady',
        status: 'False',
        reason: 'AllRanksReady',
        message: `all ${outcome.ranks.length} ranks were ready`,
        lastTransitionTime: iso(times.start),
        observedGeneration: 1,
      },
      {
        type: 'Complete',
        status: 'True',
        reason: 'FirstTokenProduced',
        message: `TTFT ${outcome.ttftMs.toFixed(1)} ms for ${outcome.contextLength} prompt tokens on ${outcome.ranks.length} rank(s)`,
        lastTransitionTime: iso(times.end),
        observedGeneration: 1,
      },
    ],
  };
}

/** Earlier ranks get longer chunks: their prefixes are shorter (PAPER.md, load balancing). */
export const BALANCED_4 = [0, 2900, 4950, 6700, 8192];
export const EVEN_4 = [0, 2048, 4096, 6144, 8192];

/** A 4-rank KV-Runahead job over 8192 synthetic tokens: an even split, or explicit boundaries. */
export function jobManifest(
  name: string,
  namespace: string,
  boundaries: readonly number[] | null,
): {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: RunaheadJobSpecInput;
} {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    metadata: { name, namespace },
    spec: {
      ranks: 4,
      mode: 'runahead',
      model: { synthetic: { preset: 'llama3-8b' } },
      prompt: { syntheticTokens: 8192 },
      partition: boundaries ? { strategy: 'explicit', boundaries: [...boundaries] } : { strategy: 'even' },
    },
  };
}

/** The status of that job once it ran: what the operator writes from rank 0's report. */
export function finishedStatus(
  name: string,
  boundaries: readonly number[] | null,
  times: { start: Date; end: Date },
): RunaheadJobStatus {
  const outcome = reportedOutcome(simulatedRun(boundaries ?? EVEN_4, boundaries ? 'explicit' : 'even'));
  return succeededStatus(name, outcome, times);
}

/** A finished job object, for renderer tests that need no API server. */
export function finishedJob(
  name: string,
  namespace: string,
  now: Date,
  boundaries: readonly number[] | null = BALANCED_4,
): RunaheadJob {
  const start = new Date(now.getTime() - 95_000);
  const m = jobManifest(name, namespace, boundaries);
  return {
    ...m,
    metadata: { ...m.metadata, creationTimestamp: start.toISOString(), generation: 1 },
    spec: RunaheadJobSpecSchema.parse(m.spec),
    status: finishedStatus(name, boundaries, { start, end: new Date(now.getTime() - 60_000) }),
  };
}
