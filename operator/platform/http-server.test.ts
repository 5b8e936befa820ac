import { afterEach, describe, expect, it } from '@jest/globals';
import { request } from 'node:http';
import { connect } from 'node:net';
import { HttpServer, probeResult, type HttpServerOptions } from './http-server.ts';
import { OperatorMetrics } from './metrics.ts';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(port: number, path: string, init: { method?: string; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers = init.body === undefined ? {} : { 'Content-Length': Buffer.byteLength(init.body) };
    const req = request(
      { host: '127.0.0.1', port, path, method: init.method ?? 'GET', agent: false, headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('HttpServer', () => {
  const servers: HttpServer[] = [];

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  async function start(options: Partial<HttpServerOptions> = {}): Promise<HttpServer> {
    const s = await HttpServer.start({
      port: 0,
      host: '127.0.0.1',
      metrics: new OperatorMetrics({ processMetrics: false }),
      ...options,
    });
    servers.push(s);
    return s;
  }

  it('serves the metrics registry in the Prometheus text format', async () => {
    const metrics = new OperatorMetrics();
    metrics.setLeader(true);
    const s = await start({ metrics });
    const r = await call(s.port, '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r.body).toMatch(/^runahead_is_leader 1$/m);
    expect(r.body).toContain('runahead_operator_process_cpu_seconds_total');
    const head = await call(s.port, '/metrics', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });

  it('/healthz and /readyz report their checks, with the failing ones named', async () => {
    let live = true;
    let synced = false;
    const s = await start({
      liveness: [{ name: 'informer-runaheadjobs', check: () => live }],
      readiness: [
        { name: 'informer-runaheadjobs-synced', check: () => synced },
        { name: 'informer-pods-synced', check: () => true },
      ],
    });
    expect(await call(s.port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    let ready = await call(s.port, '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body).toBe('[-]informer-runaheadjobs-synced failed\nnot ok\n');
    synced = true;
    expect(await call(s.port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
    ready = await call(s.port, '/readyz?verbose');
    expect(ready.body).toBe('[+]informer-runaheadjobs-synced ok\n[+]informer-pods-synced ok\nok\n');
    live = false;
    expect(await call(s.port, '/healthz')).toMatchObject({
      status: 503,
      body: '[-]informer-runaheadjobs failed\nnot ok\n',
    });
  });

  it('with no checks, both probes pass', async () => {
    const s = await start();
    expect((await call(s.port, '/healthz')).status).toBe(200);
    expect((await call(s.port, '/readyz')).status).toBe(200);
  });

  it('mounts routes from others, exact or by prefix, longest prefix first', async () => {
    const s = await start();
    s.addRoute(
      '/',
      (_req, res) => {
        res.end('dashboard');
      },
      { prefix: true },
    );
    s.addRoute('/api/jobs', (_req, res, url) => {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ path: url.pathname, ns: url.searchParams.get('namespace') }));
    });
    s.addRoute(
      '/api/jobs/',
      (_req, res, url) => {
        res.end(`job ${url.pathname.slice('/api/jobs/'.length)}`);
      },
      { prefix: true },
    );
    expect((await call(s.port, '/')).body).toBe('dashboard');
    expect((await call(s.port, '/static/app.js')).body).toBe('dashboard');
    expect(JSON.parse((await call(s.port, '/api/jobs?namespace=a')).body)).toEqual({
      path: '/api/jobs',
      ns: 'a',
    });
    expect((await call(s.port, '/api/jobs/team-a/prefill')).body).toBe('job team-a/prefill');
    expect((await call(s.port, '/metrics')).body).toContain('runahead_reconcile_total');
    expect(() => {
      s.addRoute('/metrics', () => undefined);
    }).toThrow(/already mounted/);
    expect(() => {
      s.addRoute('/api/jobs', () => undefined);
    }).toThrow(/already mounted/);
    expect(() => {
      s.addRoute('api', () => undefined);
    }).toThrow(/must start with \//);
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    const s = await start();
    const notFound = await call(s.port, '/nope');
    expect(notFound.status).toBe(404);
    expect(notFound.body).toMatch(/no route for \/nope/);
    const post = await call(s.port, '/metrics', { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers['allow']).toBe('GET, HEAD');
  });

  it('turns a throwing handler into a 500 and a hanging one into a 503', async () => {
    const s = await start({ handlerTimeoutMs: 200 });
    s.addRoute('/throws', () => {
      throw new Error('bug');
    });
    s.addRoute('/rejects', () => Promise.reject(new Error('async bug')));
    s.addRoute('/hangs', () => new Promise<void>(() => undefined));
    expect(await call(s.port, '/throws')).toMatchObject({
      status: 500,
      body: 'internal error (see the operator log)\n',
    });
    expect((await call(s.port, '/rejects')).status).toBe(500);
    const started = performance.now();
    const hung = await call(s.port, '/hangs');
    expect(hung.status).toBe(503);
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    // The server still works afterwards.
    expect((await call(s.port, '/healthz')).status).toBe(200);
  });

  it('refuses request bodies over the limit', async () => {
    const s = await start({ maxBodyBytes: 1024 });
    expect((await call(s.port, '/healthz', { body: 'x'.repeat(100) })).status).toBe(200);
    const big = await call(s.port, '/healthz', { body: 'x'.repeat(4096) });
    expect(big.status).toBe(413);
    expect(big.body).toMatch(/over 1024 bytes/);
  });

  it('refuses a chunked body that grows over the limit', async () => {
    const s = await start({ maxBodyBytes: 1024 });
    let handled = 0;
    s.addRoute(
      '/upload',
      async (_req, res) => {
        handled++;
        await new Promise((r) => setTimeout(r, 200));
        if (!res.headersSent) res.end('read');
      },
      { methods: ['POST'] },
    );
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: s.port, path: '/upload', method: 'POST', agent: false },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (body += c));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          });
        },
      );
      req.on('error', reject);
      req.setHeader('Transfer-Encoding', 'chunked');
      req.write('x'.repeat(600));
      setTimeout(() => req.end('x'.repeat(600)), 20);
    });
    expect(reply.status).toBe(413);
    expect(reply.headers['connection']).toBe('close');
    expect(handled).toBe(1);
  });

  it('close() also cuts a connection stuck in its headers', async () => {
    const s = await start();
    const socket = connect(s.port, '127.0.0.1');
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n'); // no final blank line
    const closed = new Promise<void>((resolve) =>
      socket.on('close', () => {
        resolve();
      }),
    );
    socket.on('error', () => undefined);
    await s.close();
    await closed;
  });

  it('close() lets a request in flight finish, then stops listening', async () => {
    const s = await start({ closeGraceMs: 2000 });
    let finish: () => void = () => undefined;
    s.addRoute('/slow', (_req, res) => {
      return new Promise<void>((resolve) => {
        finish = () => {
          res.end('done');
          resolve();
        };
      });
    });
    const inFlight = call(s.port, '/slow');
    await new Promise((r) => setTimeout(r, 50));
    const closing = s.close();
    setTimeout(() => {
      finish();
    }, 100);
    expect(await inFlight).toMatchObject({ status: 200, body: 'done' });
    await closing;
    await expect(call(s.port, '/healthz')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('reports a port already in use', async () => {
    const s = await start();
    await expect(
      HttpServer.start({
        port: s.port,
        host: '127.0.0.1',
        metrics: new OperatorMetrics({ processMetrics: false }),
      }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});

describe('probeResult', () => {
  it('treats a throwing check as failed', () => {
    expect(
      probeResult(
        [
          {
            name: 'boom',
            check: () => {
              throw new Error('x');
            },
          },
        ],
        false,
      ),
    ).toEqual({ status: 503, body: '[-]boom failed\nnot ok\n' });
  });
});
