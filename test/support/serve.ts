// `runahead serve` run as a user runs it, for tests: the real command as a child process, its port
// read from what it prints, and plain HTTP calls to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { request, type IncomingHttpHeaders } from 'node:http';
import { RUNAHEAD_BIN, ROOT } from './cli.ts';
import { eventually } from './eventually.ts';
import { recordLog } from './test-logs.ts';

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export interface Server {
  readonly child: ChildProcess;
  readonly port: number;
  stderr: string;
}

export async function startServe(args: readonly string[]): Promise<Server> {
  const child = spawn(process.execPath, [RUNAHEAD_BIN, 'serve', ...args], {
    cwd: ROOT,
    env: { ...process.env, RUNAHEAD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const server = { child, port: 0, stderr: '' };
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (server.stderr += d.toString()));
  const port = await eventually(
    'runahead serve to say where it serves',
    () => {
      if (child.exitCode !== null)
        throw new Error(`runahead serve exited ${child.exitCode}: ${server.stderr}`);
      const m = /on http:\/\/127\.0\.0\.1:(\d+) /.exec(stdout);
      return m ? Number(m[1]) : null;
    },
    60_000,
    50,
  );
  return Object.assign(server, { port });
}

/** SIGTERM, as a user's Ctrl-C: the server stops its ranks and exits (undefined: it never started). */
export async function stopServe(server: Server | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await exited;
  recordLog('runahead serve', server.stderr);
}

export function call(
  port: number,
  path: string,
  init: { method?: string; body?: unknown; signal?: AbortSignal; host?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const body = init.body === undefined ? undefined : JSON.stringify(init.body);
    const req = request(
      {
        host: init.host ?? '127.0.0.1',
        port,
        path,
        method: init.method ?? (body === undefined ? 'GET' : 'POST'),
        agent: false,
        headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
        ...(init.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
