// The serving front's Prometheus metrics, in a registry of its own (like the operator's). Labels
// stay bounded: `ranks` is 1 or the group's size, `rank` one of the group's, `code` an HTTP status.
// TTFT is rank 0's (the chain's own clock, from the prompt's release to the first token), queue time
// the front's (arrival to admission); the two add up to what a client waits before its first byte.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { RankReport } from '../../core/gen/runahead/v1/rank.ts';
import { LATENCY_BUCKETS_SECONDS } from '../../operator/platform/metrics.ts';

export const SERVE_METRIC_NAMES = {
  requestsTotal: 'runahead_serve_requests_total',
  ttftSeconds: 'runahead_serve_ttft_seconds',
  queueSeconds: 'runahead_serve_queue_seconds',
  promptTokensTotal: 'runahead_serve_prompt_tokens_total',
  generatedTokensTotal: 'runahead_serve_generated_tokens_total',
  rankSeconds: 'runahead_serve_rank_seconds',
  queueDepth: 'runahead_serve_queue_depth',
  inFlight: 'runahead_serve_in_flight',
  ready: 'runahead_serve_ready',
  groupRestartsTotal: 'runahead_serve_group_restarts_total',
} as const;

/** Queue times start at zero (an idle server): the latency buckets, with three below 10 ms. */
const QUEUE_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, ...LATENCY_BUCKETS_SECONDS];

export interface QueueState {
  readonly depth: number;
  readonly inFlight: number;
}

export class ServeMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'code'>;
  private readonly ttft: Histogram<'ranks'>;
  private readonly queue: Histogram;
  private readonly promptTokens: Counter<'ranks'>;
  private readonly generatedTokens: Counter;
  private readonly rankSeconds: Histogram<'rank' | 'kind'>;
  private readonly restarts: Counter;

  constructor(state: { queue: () => QueueState; ready: () => boolean }, processMetrics = true) {
    const registers = [this.registry];
    const n = SERVE_METRIC_NAMES;
    this.requests = new Counter({
      name: n.requestsTotal,
      help: 'Completion requests answered, by HTTP status (200, 400, 429, 503, 504, 499: client went away).',
      labelNames: ['code'],
      registers,
    });
    this.ttft = new Histogram({
      name: n.ttftSeconds,
      help: 'Time to first token on rank 0’s clock, by ranks used (1: routed to one rank).',
      labelNames: ['ranks'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.queue = new Histogram({
      name: n.queueSeconds,
      help: 'Time a request waited for the rank group, from arrival to admission.',
      buckets: QUEUE_BUCKETS_SECONDS,
      registers,
    });
    this.promptTokens = new Counter({
      name: n.promptTokensTotal,
      help: 'Prompt tokens prefilled, by ranks used.',
      labelNames: ['ranks'],
      registers,
    });
    this.generatedTokens = new Counter({
      name: n.generatedTokensTotal,
      help: 'Tokens generated (the first token included).',
      registers,
    });
    this.rankSeconds = new Histogram({
      name: n.rankSeconds,
      help: 'Per request and rank: time computing, waiting for K/V, and with its links busy sending.',
      labelNames: ['rank', 'kind'],
      buckets: [...LATENCY_BUCKETS_SECONDS],
      registers,
    });
    this.restarts = new Counter({
      name: n.groupRestartsTotal,
      help: 'Times the rank group was started again after a rank exited.',
      registers,
    });
    new Gauge({
      name: n.queueDepth,
      help: 'Requests waiting for the rank group.',
      registers,
      collect() {
        this.set(state.queue().depth);
      },
    });
    new Gauge({
      name: n.inFlight,
      help: 'Requests holding the rank group.',
      registers,
      collect() {
        this.set(state.queue().inFlight);
      },
    });
    new Gauge({
      name: n.ready,
      help: '1 when every rank answers its health check with SERVING.',
      registers,
      collect() {
        this.set(state.ready() ? 1 : 0);
      },
    });
    if (processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'runahead_serve_' });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  answered(code: number): void {
    this.requests.inc({ code: String(code) });
  }

  queued(seconds: number): void {
    this.queue.observe(seconds);
  }

  firstToken(ranks: number, ttftMs: number): void {
    this.ttft.observe({ ranks: String(ranks) }, ttftMs / 1000);
  }

  completed(ranks: number, promptTokens: number, generated: number, reports: readonly RankReport[]): void {
    this.promptTokens.inc({ ranks: String(ranks) }, promptTokens);
    this.generatedTokens.inc(generated);
    for (const r of reports) {
      const rank = String(r.from?.rank ?? 0);
      this.rankSeconds.observe({ rank, kind: 'compute' }, r.computeMs / 1000);
      this.rankSeconds.observe({ rank, kind: 'wait' }, r.waitMs / 1000);
      this.rankSeconds.observe({ rank, kind: 'send' }, r.sendMs / 1000);
    }
  }

  restarted(): void {
    this.restarts.inc();
  }
}
