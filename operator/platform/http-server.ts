// The operator's one HTTP port: Prometheus metrics, the kubelet's probes, and routes other parts
// mount (the dashboard at `/`, `/api/jobs` and `/api/servers`). node:http with no framework: six
// routes do not need one, and every limit is visible here.
//
// Probes follow the API server's own (/livez, /readyz): one named check per line, `?verbose` lists
// them all. Liveness is "restarting the process would help" (an informer that has failed for minutes);
// readiness is "caches synced". A standby replica is ready: readiness gates traffic to the dashboard
// and metrics, not leadership.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger } from '../../core/log.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

/** A named probe check; `check` returns true when fine (it must be cheap: probes run every few seconds). */
export interface Check {
  readonly name: string;
  readonly check: () => boolean;
}

/** What /metrics serves (OperatorMetrics fits). */
export interface MetricsSource {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface RouteOptions {
  /** Also match every path below `path` (`/api/jobs` matches `/api/jobs/ns/name`). Default false. */
  readonly prefix?: boolean;
  /** Allowed methods. Default GET and HEAD. */
  readonly methods?: readonly string[];
}

export interface HttpServerOptions {
  /** Port to listen on; 0 picks a free one (tests). */
  readonly port: number;
  /** Address to bind. Default: all interfaces (the kubelet probes the pod IP). */
  readonly host?: string | undefined;
  readonly metrics: MetricsSource;
  /** /healthz checks. */
  readonly liveness?: readonly Check[] | undefined;
  /** /readyz checks (e.g. every informer's hasSynced). */
  readonly readiness?: readonly Check[] | undefined;
  /** A handler that has not answered in this long gets a 503. Default 10 s. */
  readonly handlerTimeoutMs?: number | undefined;
  /** Largest request body accepted (no route reads one; bodies are drained). Default 64 KiB. */
  readonly maxBodyBytes?: number | undefined;
  /** Most connections at once. Default 128. */
  readonly maxConnections?: number | undefined;
  /** close() waits this long for requests in flight, then cuts connections. Default 5 s. */
  readonly closeGraceMs?: number | undefined;
}

export const HTTP_SERVER_DEFAULTS = {
  handlerTimeoutMs: 10_000,
  maxBodyBytes: 64 * 1024,
  maxConnections: 128,
  closeGraceMs: 5_000,
  /** Time to receive the request headers (slowloris). */
  headersTimeoutMs: 10_000,
  /** Time to receive the whole request. */
  requestTimeoutMs: 15_000,
  /** Idle keep-alive connections close after this (Prometheus scrapes every 15-60 s and reconnects). */
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 16 * 1024,
} as const;

interface Route {
  readonly path: string;
  readonly handler: RouteHandler;
  readonly prefix: boolean;
  readonly methods: readonly string[];
}

const BUILT_IN = ['/metrics', '/healthz', '/readyz'] as const;
const READ_METHODS = ['GET', 'HEAD'] as const;

/** The probe result: status and body (`ok`, or the failed checks; every check with `verbose`). */
export function probeResult(checks: readonly Check[], verbose: boolean): { status: number; body: string } {
  const lines: string[] = [];
  let failed = false;
  for (const { name, check } of checks) {
    let ok: boolean;
    try {
      ok = check();
    } catch {
      ok = false;
    }
    if (!ok) failed = true;
    if (verbose || !ok) lines.push(`[${ok ? '+' : '-'}]${name} ${ok ? 'ok' : 'failed'}`);
  }
  if (!failed) return { status: 200, body: verbose ? `${lines.join('\n')}\nok\n` : 'ok\n' };
  return { status: 503, body: `${lines.join('\n')}\nnot ok\n` };
}

export class HttpServer {
  readonly #server: Server;
  readonly #options: HttpServerOptions;
  readonly #routes = new Map<string, Route>();
  readonly #log = logger('http-server');
  #closing: Promise<void> | null = null;
  #port = 0;

  private constructor(options: HttpServerOptions) {
    this.#options = options;
    const d = HTTP_SERVER_DEFAULTS;
    this.#server = createServer({
      headersTimeout: d.headersTimeoutMs,
      requestTimeout: d.requestTimeoutMs,
      keepAliveTimeout: d.keepAliveTimeoutMs,
      maxHeaderSize: d.maxHeaderBytes,
    });
    this.#server.maxConnections = options.maxConnections ?? d.maxConnections;
    // Malformed requests and header timeouts get node's default answers (400, 408, 431) and a close.
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void this.#handle(req, res);
    });
  }

  /** Listens; resolves once bound (the port is then `port`). */
  static async start(options: HttpServerOptions): Promise<HttpServer> {
    const server = new HttpServer(options);
    await new Promise<void>((resolve, reject) => {
      server.#server.once('error', reject);
      server.#server.listen(options.port, options.host, () => {
        server.#server.off('error', reject);
        resolve();
      });
    });
    server.#port = (server.#server.address() as AddressInfo).port;
    server.#server.on('error', (err) => {
      server.#log.error({ err }, 'http server error');
    });
    server.#log.info({ port: server.port }, `serving /metrics, /healthz, /readyz on port ${server.port}`);
    return server;
  }

  /** The port listened on (the one picked when started with port 0). */
  get port(): number {
    return this.#port;
  }

  /** Mounts `handler` at `path` (exact, or with everything below it if `prefix`). */
  addRoute(path: string, handler: RouteHandler, options: RouteOptions = {}): void {
    if (!path.startsWith('/')) throw new Error(`route ${JSON.stringify(path)} must start with /`);
    if ((BUILT_IN as readonly string[]).includes(path) || this.#routes.has(path))
      throw new Error(`route ${path} is already mounted`);
    this.#routes.set(path, {
      path,
      handler,
      prefix: options.prefix ?? false,
      methods: options.methods ?? READ_METHODS,
    });
  }

  /**
   * Stops accepting connections, lets requests in flight finish for up to closeGraceMs, then cuts
   * what is left. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      const grace = this.#options.closeGraceMs ?? HTTP_SERVER_DEFAULTS.closeGraceMs;
      const timer = setTimeout(() => {
        this.#server.closeAllConnections();
      }, grace);
      this.#server.close(() => {
        clearTimeout(timer);
        resolve();
      });
      this.#server.closeIdleConnections();
    });
    return this.#closing;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.#limitBody(req, res)) return;
    if (this.#closing) res.setHeader('Connection', 'close');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      send(res, 400, 'bad request URL\n');
      return;
    }
    const route = this.#route(url.pathname);
    if (!route) {
      send(res, 404, `no route for ${url.pathname}; try /metrics, /healthz, /readyz\n`);
      return;
    }
    const method = req.method ?? 'GET';
    if (!route.methods.includes(method)) {
      res.setHeader('Allow', route.methods.join(', '));
      send(res, 405, `${method} is not allowed on ${route.path}\n`);
      return;
    }
    const timeoutMs = this.#options.handlerTimeoutMs ?? HTTP_SERVER_DEFAULTS.handlerTimeoutMs;
    const timer = setTimeout(() => {
      this.#log.error(
        { path: url.pathname, timeoutMs },
        `handler for ${route.path} did not answer in ${timeoutMs} ms`,
      );
      if (!res.headersSent) send(res, 503, `no answer in ${timeoutMs} ms\n`);
      else res.destroy();
    }, timeoutMs);
    try {
      await route.handler(req, res, url);
    } catch (err) {
      this.#log.error({ err, path: url.pathname }, `handler for ${route.path} failed`);
      if (!res.headersSent) send(res, 500, 'internal error (see the operator log)\n');
      else res.destroy();
    } finally {
      clearTimeout(timer);
    }
  }

  #route(pathname: string): Route | undefined {
    switch (pathname) {
      case '/metrics':
        return {
          path: pathname,
          prefix: false,
          methods: READ_METHODS,
          handler: (_, res) => this.#metrics(res),
        };
      case '/healthz':
      case '/readyz': {
        const checks = (pathname === '/healthz' ? this.#options.liveness : this.#options.readiness) ?? [];
        return {
          path: pathname,
          prefix: false,
          methods: READ_METHODS,
          handler: (_, res, url) => {
            const { status, body } = probeResult(checks, url.searchParams.has('verbose'));
            send(res, status, body);
          },
        };
      }
    }
    const exact = this.#routes.get(pathname);
    if (exact) return exact;
    // The longest prefix route wins (`/api/jobs` before `/`).
    let best: Route | undefined;
    for (const route of this.#routes.values()) {
      if (!route.prefix) continue;
      const base = route.path.endsWith('/') ? route.path : `${route.path}/`;
      if (pathname.startsWith(base) && (!best || route.path.length > best.path.length)) best = route;
    }
    return best;
  }

  async #metrics(res: ServerResponse): Promise<void> {
    const text = await this.#options.metrics.text();
    res.setHeader('Content-Type', this.#options.metrics.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.end(text);
  }

  /**
   * Drains the request body (no route reads one). A body over the limit gets a 413 and a closed
   * connection; what the client still sends is discarded up to 4× the limit (closing a socket with
   * unread data resets it, and the client would see the reset instead of the 413), then cut.
   */
  #limitBody(req: IncomingMessage, res: ServerResponse): boolean {
    const max = this.#options.maxBodyBytes ?? HTTP_SERVER_DEFAULTS.maxBodyBytes;
    const tooLarge = (): void => {
      if (res.headersSent) return;
      res.setHeader('Connection', 'close');
      send(res, 413, `request body over ${max} bytes\n`);
    };
    let received = 0;
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > max) tooLarge();
      if (received > 5 * max) req.destroy();
    });
    req.resume();
    if (Number(req.headers['content-length'] ?? 0) > max) {
      tooLarge();
      return false;
    }
    return true;
  }
}

function send(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}
