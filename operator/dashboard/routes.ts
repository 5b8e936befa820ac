// The dashboard's HTTP routes, for the operator's HTTP server (read-only, GET and HEAD only).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import type { RunaheadServer } from '../../core/api/v1alpha1/runahead-server.ts';
import { jobsPayload, renderDashboard, serversPayload } from './render.ts';

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export interface Route {
  readonly path: string;
  readonly handler: RouteHandler;
}

export const DASHBOARD_PATH = '/';
export const JOBS_API_PATH = '/api/jobs';
export const SERVERS_API_PATH = '/api/servers';

// The page needs nothing but its inline style: forbidding everything else means even an escaping
// mistake could not run a script or reach out of the cluster.
const PAGE_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
} as const;
const JSON_HEADERS = {
  'content-type': 'application/json; charset=utf-8',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
} as const;

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: string,
): void {
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function readOnly(render: (req: IncomingMessage, res: ServerResponse) => Promise<void>): RouteHandler {
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('method not allowed\n');
      return;
    }
    try {
      await render(req, res);
    } catch (err) {
      send(
        req,
        res,
        503,
        { 'content-type': 'text/plain; charset=utf-8' },
        `unavailable: ${(err as Error).message}\n`,
      );
    }
  };
}

type List<T> = () => readonly T[] | Promise<readonly T[]>;

/**
 * `/` (the page), `/api/jobs` and `/api/servers` (its data as JSON). `listJobs` and `listServers`
 * are the operator's view, typically its informers' caches; they may be asynchronous.
 */
export function dashboardRoutes(
  listJobs: List<RunaheadJob>,
  clock: () => number = Date.now,
  listServers: List<RunaheadServer> = () => [],
): Route[] {
  return [
    {
      path: DASHBOARD_PATH,
      handler: readOnly(async (req, res) => {
        const [jobs, servers] = await Promise.all([listJobs(), listServers()]);
        send(req, res, 200, PAGE_HEADERS, renderDashboard(jobs, clock(), servers));
      }),
    },
    {
      path: JOBS_API_PATH,
      handler: readOnly(async (req, res) => {
        send(req, res, 200, JSON_HEADERS, `${JSON.stringify(jobsPayload(await listJobs(), clock()))}\n`);
      }),
    },
    {
      path: SERVERS_API_PATH,
      handler: readOnly(async (req, res) => {
        const payload = serversPayload(await listServers(), clock());
        send(req, res, 200, JSON_HEADERS, `${JSON.stringify(payload)}\n`);
      }),
    },
  ];
}
