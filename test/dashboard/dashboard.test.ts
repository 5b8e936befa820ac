// The operator's dashboard, end to end: jobs created through a real API server (CRD installed,
// status written through the status subresource as the operator does), read back with client-node
// by the dashboard's listJobs, served by the operator's HTTP server and opened in headless Chromium
// (Debian's, driven by playwright-core; scripts/setup-chromium.sh installs it). The screenshot
// lands in test/artifacts/.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { CoreV1Api, CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { GROUP, PLURAL, VERSION } from '../../core/api/v1alpha1/names.ts';
import { parseRunaheadJob, type RunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import { dashboardRoutes } from '../../operator/dashboard/routes.ts';
import { HttpServer } from '../../operator/platform/http-server.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { BALANCED_4, finishedStatus, jobManifest } from '../support/finished-job.ts';
import { installCrds, repoPath } from '../support/operator.ts';

const CHROMIUM = '/usr/bin/chromium';
const NAMESPACE = 'inference';
const SCREENSHOT = repoPath('test/artifacts/dashboard.png');

describe('dashboard in headless Chromium', () => {
  let cp: ControlPlane | undefined;
  let custom: CustomObjectsApi;
  let server: HttpServer | undefined;
  let browser: BrowserContext | undefined;
  let profile = '';
  let url = '';

  /** What the operator's informer would hold: every RunaheadJob, parsed at the boundary. */
  async function listJobs(): Promise<RunaheadJob[]> {
    const list = (await custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as {
      items: unknown[];
    };
    return list.items.flatMap((item) => {
      const r = parseRunaheadJob(item);
      if (!r.ok) throw new Error(`a RunaheadJob from the API server did not parse: ${r.message}`);
      return [r.job];
    });
  }

  async function createFinishedJob(name: string, boundaries: readonly number[] | null): Promise<void> {
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NAMESPACE,
      plural: PLURAL,
      body: jobManifest(name, NAMESPACE, boundaries),
    });
    const stored = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NAMESPACE,
      plural: PLURAL,
      name,
    })) as { metadata: { creationTimestamp: string } };
    const start = new Date(stored.metadata.creationTimestamp);
    await custom.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      namespace: NAMESPACE,
      plural: PLURAL,
      name,
      body: {
        ...stored,
        status: finishedStatus(name, boundaries, { start, end: new Date(start.getTime() + 4000) }),
      },
    });
  }

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: run scripts/setup-chromium.sh (make test does)`);
    cp = await ControlPlane.start();
    await installCrds(cp);
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    custom = kc.makeApiClient(CustomObjectsApi);
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
    await createFinishedJob('llama3-8k-balanced', BALANCED_4);
    await createFinishedJob('llama3-8k-even', null);
    await custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: NAMESPACE,
      plural: PLURAL,
      body: jobManifest('llama3-8k-queued', NAMESPACE, null),
    });

    // The operator's own HTTP server, with the dashboard mounted as the operator mounts it.
    server = await HttpServer.start({
      port: 0,
      host: '127.0.0.1',
      metrics: { text: () => Promise.resolve(''), contentType: 'text/plain; version=0.0.4' },
    });
    for (const { path, handler } of dashboardRoutes(listJobs)) server.addRoute(path, handler);
    url = `http://127.0.0.1:${server.port}/`;

    profile = await mkdtemp(join(tmpdir(), 'chromium-'));
    // A fresh profile per run (playwright takes it as userDataDir, not as --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await cp?.stop();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it('shows the jobs created through the API, and the chain of each finished one', async () => {
    const jobs = await listJobs();
    const balanced = jobs.find((j) => j.metadata.name === 'llama3-8k-balanced')!;
    const ttft = balanced.status!.ttftMs!;

    const page = await browser!.newPage();
    const failed: string[] = [];
    page.on('requestfailed', (r) => failed.push(r.url()));
    page.on('request', (r) => {
      if (r.url() !== url) failed.push(`unexpected request ${r.url()}`);
    });
    const response = await page.goto(url, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);

    const row = page.locator('tr[data-job="inference/llama3-8k-balanced"]');
    await expect(row.textContent()).resolves.toContain('llama3-8k-balanced');
    expect(await row.isVisible()).toBe(true);
    const cells = await row.locator('td').allInnerTexts();
    expect(cells.slice(0, 5)).toEqual(['inference/llama3-8k-balanced', 'Succeeded', '4', 'runahead', '8192']);
    expect(cells[5]).toBe(`${ttft.toFixed(0)} ms`);
    expect(await page.locator('tr[data-job="inference/llama3-8k-queued"] td').nth(1).innerText()).toBe(
      'Pending',
    );

    const chart = page.locator('section[data-job="inference/llama3-8k-balanced"]');
    expect(await chart.isVisible()).toBe(true);
    const rows = chart.locator('svg g.rank-row');
    expect(await rows.count()).toBe(4);
    for (let r = 0; r < 4; r++) {
      const rankRow = rows.nth(r);
      expect(await rankRow.isVisible()).toBe(true);
      expect(await rankRow.textContent()).toContain(`rank ${r}`);
      expect(await rankRow.locator('rect.slot.compute').count()).toBeGreaterThan(0);
      // Drawn, not just present: every bar has a width on screen.
      const box = await rankRow.locator('rect.slot.compute').first().boundingBox();
      expect(box?.width).toBeGreaterThan(1);
    }
    expect(await chart.locator('svg g.ttft').textContent()).toContain(`TTFT ${ttft.toFixed(0)} ms`);
    // The queued job has no result, so no chart.
    expect(await page.locator('section[data-job="inference/llama3-8k-queued"]').count()).toBe(0);
    expect(failed).toEqual([]);

    await mkdir(repoPath('test/artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(existsSync(SCREENSHOT)).toBe(true);
    await page.close();
  }, 60_000);
});
