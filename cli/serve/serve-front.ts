// The serving front: one HTTP port with POST /v1/completions (OpenAI's shape), GET /v1/models,
// /metrics, /healthz and /readyz, in front of a rank group (rank-backend.ts). node:http, no
// framework, every limit visible here: body size, connections, header and body timeouts, a bounded
// admission queue, a deadline per request. Each completion:
//   read and check the body → tokens → route (one rank or the chain, core/length-routing.ts) →
//   wait for admission (429 when the queue is full) → run through rank 0, streamed → answer.
// The request's signal aborts when its client goes away or its deadline passes; the run then stops
// on every rank (RunStream's cancel), and a queued request leaves the queue.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { status as grpcStatus } from '@grpc/grpc-js';
import { Mode, type RunRequest } from '../../core/gen/runahead/v1/rank.ts';
import type { RouteDecision } from '../../core/length-routing.ts';
import { logger } from '../../core/log.ts';
import { HTTP_SERVER_DEFAULTS, probeResult } from '../../operator/platform/http-server.ts';
import { RankGroupError, type StreamOptions } from '../launcher/rank-group.ts';
import { AdmissionQueue, QueueFullError } from './admission-queue.ts';
import {
  ApiError,
  completionBody,
  completionChunk,
  parseCompletionRequest,
  promptTokenIds,
  type Completion,
  type CompletionLimits,
  type PromptCheck,
} from './completions-api.ts';
import type { RankBackend } from './rank-backend.ts';
import type { ServeMetrics } from './serve-metrics.ts';

export interface ServeFrontOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** The name clients give as `model`. */
  readonly model: string;
  readonly backend: RankBackend;
  readonly queue: AdmissionQueue;
  readonly metrics: ServeMetrics;
  readonly limits: CompletionLimits;
  readonly promptCheck: PromptCheck;
  /** A request not answered in this long (queue included) fails with 504 and its run stops. */
  readonly requestTimeoutMs: number;
  readonly encode: (text: string) => number[];
  readonly eosTokenIds: readonly number[];
  /** Where a prompt of this many tokens runs. */
  readonly route: (contextLength: number) => RouteDecision;
}

/** Status for a client that went away before its answer (nginx's convention; never sent). */
const CLIENT_CLOSED = 499;
/** How often a request asks rank 0 again while it is busy. */
const BUSY_RETRY_MS = 50;
/** Retry-After for a request whose group lost a rank: about a tiny model's restart. */
const RESTART_RETRY_AFTER_S = 5;

/** The deadline of a request passed (504). */
class DeadlineError extends Error {
  override readonly name = 'DeadlineError';
}

/** The client closed its connection before its answer. */
class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
}

export class ServeFront {
  private readonly options: ServeFrontOptions;
  private readonly server: Server;
  private readonly log = logger('serve');
  private port_ = 0;

  private constructor(options: ServeFrontOptions) {
    this.options = options;
    const d = HTTP_SERVER_DEFAULTS;
    this.server = createServer({
      headersTimeout: d.headersTimeoutMs,
      requestTimeout: d.requestTimeoutMs,
      keepAliveTimeout: d.keepAliveTimeoutMs,
      maxHeaderSize: d.maxHeaderBytes,
    });
    this.server.maxConnections = d.maxConnections;
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void this.handle(req, res).catch((err: unknown) => {
        this.log.error({ err: (err as Error).message, path: req.url }, 'request handler failed');
        if (!res.headersSent)
          sendJson(res, 500, new ApiError(500, 'internal error (see the server log)').body());
        else res.destroy();
      });
    });
  }

  static async start(options: ServeFrontOptions): Promise<ServeFront> {
    const front = new ServeFront(options);
    await new Promise<void>((resolve, reject) => {
      front.server.once('error', reject);
      front.server.listen(options.port, options.host, () => {
        front.server.off('error', reject);
        resolve();
      });
    });
    front.port_ = (front.server.address() as AddressInfo).port;
    return front;
  }

  get port(): number {
    return this.port_;
  }

  /** Stop accepting; cut what is still open after `graceMs`. */
  close(graceMs = HTTP_SERVER_DEFAULTS.closeGraceMs): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.closeAllConnections();
      }, graceMs);
      this.server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.server.closeIdleConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const method = req.method ?? 'GET';
    const read = method === 'GET' || method === 'HEAD';
    const allow = (methods: string) => {
      res.setHeader('Allow', methods);
      sendJson(res, 405, new ApiError(405, `${method} is not allowed on ${path}`).body());
    };
    switch (path) {
      case '/healthz':
      case '/readyz': {
        if (!read) {
          allow('GET, HEAD');
          return;
        }
        const checks =
          path === '/readyz' ? [{ name: 'ranks-serving', check: () => this.options.backend.ready() }] : [];
        const probe = probeResult(
          checks,
          new URL(req.url ?? '/', 'http://localhost').searchParams.has('verbose'),
        );
        sendText(res, probe.status, probe.body);
        return;
      }
      case '/metrics': {
        if (!read) {
          allow('GET, HEAD');
          return;
        }
        res.setHeader('Content-Type', this.options.metrics.contentType);
        res.setHeader('Cache-Control', 'no-store');
        res.end(await this.options.metrics.text());
        return;
      }
      case '/v1/models':
        if (!read) {
          allow('GET, HEAD');
          return;
        }
        sendJson(res, 200, {
          object: 'list',
          data: [{ id: this.options.model, object: 'model', created: 0, owned_by: 'runahead' }],
        });
        return;
      case '/v1/completions':
        if (method !== 'POST') {
          allow('POST');
          return;
        }
        await this.complete(req, res);
        return;
      default:
        sendJson(
          res,
          404,
          new ApiError(
            404,
            `no route for ${path}; try POST /v1/completions, /v1/models, /metrics, /healthz, /readyz`,
          ).body(),
        );
    }
  }

  private async complete(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const arrived = performance.now();
    const o = this.options;
    const abort = new AbortController();
    // 'close' also comes after a full answer: only one before it means the client went away.
    res.on('close', () => {
      if (!res.writableFinished) abort.abort(new ClientGoneError('the client closed its connection'));
    });
    const deadline = setTimeout(() => {
      abort.abort(new DeadlineError(`no answer within ${o.requestTimeoutMs} ms (--request-timeout-ms)`));
    }, o.requestTimeoutMs);
    let release: (() => void) | null = null;
    /** Set once the first token went out: the status line is sent, errors go into the stream. */
    const sent = { streaming: false };
    try {
      const request = parseCompletionRequest(await readJson(req, o.limits.maxBodyBytes), o.model, o.limits);
      const ids = promptTokenIds(request, o.encode, o.promptCheck);
      const route = o.route(ids.length);
      release = await o.queue.acquire(abort.signal);
      const queueMs = performance.now() - arrived;
      o.metrics.queued(queueMs / 1000);
      const head = { id: `cmpl-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model: o.model };
      /** The text streamed so far: the result's text starts with it. */
      let streamedText = '';
      const result = await this.runWhenFree(runRequestOf(ids, route, request.maxTokens), {
        signal: abort.signal,
        onFirstToken: (first) => {
          o.metrics.firstToken(route.ranks, first.ttftMs);
          if (!request.stream || res.destroyed) return;
          // The first token goes out the moment rank 0 has it, each later one as it comes.
          sent.streaming = true;
          streamedText = first.text;
          res.writeHead(200, {
            'Content-Type': 'text/event-stream',
            'Cache-Control': 'no-store',
            Connection: 'keep-alive',
          });
          writeEvent(res, completionChunk(head, first.text, null, first));
        },
        onToken: (token) => {
          if (!sent.streaming || res.destroyed) return;
          streamedText += token.text;
          if (token.text) writeEvent(res, completionChunk(head, token.text, null));
        },
      });
      release();
      release = null;
      const completion: Completion = {
        ...head,
        text: result.text,
        tokens: result.tokens,
        promptTokens: ids.length,
        maxTokens: request.maxTokens,
        eosTokenIds: o.eosTokenIds,
        runahead: {
          ranks: route.ranks,
          mode: route.mode,
          boundaries: result.boundaries,
          partition: route.partition,
          route_reason: route.reason,
          ttft_ms: result.ttftMs,
          queue_ms: queueMs,
          token_ids: result.tokens,
          ...(route.predictedSingleMs !== undefined ? { predicted_single_ms: route.predictedSingleMs } : {}),
          ...(route.predictedSplitMs !== undefined ? { predicted_split_ms: route.predictedSplitMs } : {}),
        },
      };
      o.metrics.completed(route.ranks, ids.length, result.tokens.length, result.ranks);
      if (sent.streaming) {
        const rest = result.text.startsWith(streamedText) ? result.text.slice(streamedText.length) : '';
        writeEvent(res, completionChunk(head, rest, completion));
        res.end('data: [DONE]\n\n');
      } else sendJson(res, 200, completionBody(completion));
      o.metrics.answered(200);
      this.log.info(
        { id: head.id, promptTokens: ids.length, ranks: route.ranks, ttftMs: result.ttftMs, queueMs },
        'completion',
      );
    } catch (err) {
      const e = abort.signal.aborted ? (abort.signal.reason as unknown) : err;
      const answer = this.failure(e);
      o.metrics.answered(answer ? answer.status : CLIENT_CLOSED);
      if (!answer) return; // nobody to tell
      if (answer.status >= 500)
        this.log.warn({ status: answer.status, reason: answer.message }, 'completion failed');
      if (sent.streaming) {
        // The status line went out with the first token: the stream ends with the error instead.
        writeEvent(res, answer.body());
        res.end('data: [DONE]\n\n');
        return;
      }
      if (answer.retryAfterSeconds !== null) res.setHeader('Retry-After', String(answer.retryAfterSeconds));
      sendJson(res, answer.status, answer.body());
    } finally {
      clearTimeout(deadline);
      release?.();
    }
  }

  /**
   * Run on the group; while rank 0 answers UNAVAILABLE (still finishing a run whose client went
   * away, or not reachable yet), try again every BUSY_RETRY_MS until the request's signal aborts.
   * Nothing has run then: no first token was sent.
   */
  private async runWhenFree(request: RunRequest, options: StreamOptions & { readonly signal: AbortSignal }) {
    for (;;) {
      try {
        return await this.options.backend.run(request, options);
      } catch (err) {
        const busy =
          err instanceof RankGroupError &&
          err.failure.kind === 'run' &&
          err.failure.code === grpcStatus.UNAVAILABLE;
        if (!busy || options.signal.aborted) throw err;
        await new Promise((r) => setTimeout(r, BUSY_RETRY_MS));
      }
    }
  }

  /** The answer to a failed completion (null: the client is gone, nobody to answer). */
  private failure(err: unknown): ApiError | null {
    if (err instanceof ClientGoneError) return null;
    if (err instanceof ApiError) return err;
    if (err instanceof QueueFullError)
      return new ApiError(429, `${err.message}; try again later`, {
        type: 'rate_limit_error',
        code: 'queue_full',
        retryAfterSeconds: err.retryAfterSeconds,
      });
    if (err instanceof DeadlineError)
      return new ApiError(504, err.message, { type: 'timeout', code: 'deadline_exceeded' });
    if (err instanceof RankGroupError) {
      const f = err.failure;
      if (f.kind === 'rank-exited')
        return new ApiError(503, `${err.message.split('\n')[0]}; the rank group is starting again`, {
          code: 'rank_exited',
          retryAfterSeconds: RESTART_RETRY_AFTER_S,
        });
      if (f.code === grpcStatus.ABORTED)
        return new ApiError(503, `the run failed: ${err.message}`, {
          code: 'run_failed',
          retryAfterSeconds: 1,
        });
      if (f.code === grpcStatus.DEADLINE_EXCEEDED)
        return new ApiError(504, `the run failed: ${err.message}`, {
          type: 'timeout',
          code: 'deadline_exceeded',
        });
    }
    return new ApiError(500, `the run failed: ${(err as Error).message}`);
  }
}

/** The rank protocol's request for a routed prompt: its split explicit, decoding on the last rank. */
export function runRequestOf(ids: readonly number[], route: RouteDecision, maxTokens: number): RunRequest {
  return {
    prompt: { source: { $case: 'tokenIds', value: { ids: [...ids] } } },
    mode: route.mode === 'single' ? Mode.MODE_SINGLE : Mode.MODE_RUNAHEAD,
    boundaries: route.boundaries,
    partition: '',
    // max_tokens counts the first token; the chain's max_new_tokens the ones after it.
    maxNewTokens: maxTokens - 1,
    debugState: false,
  };
}

/** The body as JSON, at most `maxBytes` (413 beyond, 400 when not JSON). */
async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const tooLarge = () =>
    new ApiError(413, `the request body is over ${maxBytes} bytes (--max-body-bytes)`, {
      code: 'body_too_large',
    });
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new ApiError(400, `the request body is not JSON: ${(err as Error).message}`);
  }
}

function writeEvent(res: ServerResponse, data: object): void {
  res.write(`data: ${JSON.stringify(data)}\n\n`);
}

function sendJson(res: ServerResponse, status: number, body: object): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`${JSON.stringify(body)}\n`);
}

function sendText(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}
