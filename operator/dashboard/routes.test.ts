import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import { finishedJob } from '../../test/support/finished-job.ts';
import { servingServer } from '../../test/support/serving-server.ts';
import { dashboardRoutes } from './routes.ts';

const NOW = new Date('2026-11-25T10:00:00Z');

describe('dashboardRoutes', () => {
  let jobs: () => Promise<readonly RunaheadJob[]> = () =>
    Promise.resolve([finishedJob('llama-8k', 'team-a', NOW)]);
  let server: Server;
  let base = '';

  beforeAll(async () => {
    const routes = dashboardRoutes(
      () => jobs(),
      () => NOW.getTime(),
      () => [servingServer('chat', 'team-a', { ttftMs: { p50: 200, p90: 400, p99: 900, requests: 12 } })],
    );
    server = createServer((req, res) => {
      const route = routes.find((r) => r.path === new URL(req.url ?? '/', 'http://x').pathname);
      if (route) void route.handler(req, res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('serves the page with a policy that allows nothing but its inline style', async () => {
    const r = await fetch(`${base}/`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(r.headers.get('content-security-policy')).toMatch(
      /^default-src 'none'; style-src 'unsafe-inline'/,
    );
    expect(r.headers.get('cache-control')).toBe('no-store');
    const page = await r.text();
    expect(page).toContain('<tr data-job="team-a/llama-8k">');
    expect(page).toContain('<tr data-server="team-a/chat">');
  });

  it('serves the jobs as JSON at /api/jobs', async () => {
    const r = await fetch(`${base}/api/jobs?watch=0`);
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await r.json()) as {
      generatedAt: string;
      jobs: { name: string; chain: { rows: unknown[] } }[];
    };
    expect(body.generatedAt).toBe(NOW.toISOString());
    expect(body.jobs.map((j) => j.name)).toEqual(['llama-8k']);
    expect(body.jobs[0]?.chain.rows).toHaveLength(4);
  });

  it('serves the servers as JSON at /api/servers', async () => {
    const r = await fetch(`${base}/api/servers`);
    expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const body = (await r.json()) as { generatedAt: string; servers: { name: string; ttftMs: unknown }[] };
    expect(body.generatedAt).toBe(NOW.toISOString());
    expect(body.servers).toEqual([
      expect.objectContaining({ name: 'chat', ttftMs: { p50: 200, p90: 400, p99: 900, requests: 12 } }),
    ]);
  });

  it('is read-only', async () => {
    const r = await fetch(`${base}/api/jobs`, { method: 'POST', body: '{}' });
    expect(r.status).toBe(405);
    expect(r.headers.get('allow')).toBe('GET, HEAD');
    const head = await fetch(`${base}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('answers 503 when the jobs cannot be listed', async () => {
    jobs = () => Promise.reject(new Error('informer not synced'));
    const r = await fetch(`${base}/`);
    expect(r.status).toBe(503);
    expect(await r.text()).toBe('unavailable: informer not synced\n');
  });
});
