import { describe, expect, it } from '@jest/globals';
import type { RunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import type { RunaheadServer } from '../../core/api/v1alpha1/runahead-server.ts';
import { finishedJob, jobManifest } from '../../test/support/finished-job.ts';
import { servingServer } from '../../test/support/serving-server.ts';
import {
  chainOf,
  escapeHtml,
  formatAge,
  jobsPayload,
  renderDashboard,
  serversPayload,
  summarizeServer,
} from './render.ts';

const NOW = new Date('2026-11-25T10:00:00Z');

function pendingJob(name: string): RunaheadJob {
  const job: RunaheadJob = finishedJob(name, 'team-b', NOW);
  delete job.status;
  return { ...job, metadata: { ...job.metadata, creationTimestamp: '2026-11-25T09:59:18Z' } };
}

describe('renderDashboard', () => {
  const html = renderDashboard([finishedJob('llama-8k', 'team-a', NOW), pendingJob('queued')], NOW);

  it('lists every job with its phase, ranks, mode, context, TTFT, age, restarts and latest condition', () => {
    const job = finishedJob('llama-8k', 'team-a', NOW);
    const row = /<tr data-job="team-a\/llama-8k">(.*?)<\/tr>/s.exec(html)?.[1] ?? '';
    const cells = [...row.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((m) => m[1]!.replace(/<[^>]+>/g, ''));
    expect(cells.slice(0, 8)).toEqual([
      'team-a/llama-8k',
      'Succeeded',
      '4',
      'runahead',
      '8192',
      `${job.status!.ttftMs!.toFixed(0)} ms`,
      '95s',
      '0',
    ]);
    expect(cells[8]).toMatch(/^Complete: TTFT [\d.]+ ms for 8192 prompt tokens on 4 rank\(s\)$/);
    expect(html).toMatch(
      /<tr data-job="team-b\/queued">.*Pending.*<td class="num ttft">—<\/td><td class="num">42s<\/td>/s,
    );
  });

  it('draws the chain of a finished job: a row per rank with its chunk, the slots, TTFT and a legend', () => {
    const section =
      /<section class="job" data-job="team-a\/llama-8k">(.*?)<\/section>/s.exec(html)?.[1] ?? '';
    expect(section.match(/<g class="rank-row"/g)).toHaveLength(4);
    for (const chunk of ['[0, 2900)', '[2900, 4950)', '[4950, 6700)', '[6700, 8192)'])
      expect(section).toContain(chunk);
    expect(section).toMatch(/<rect class="slot compute"/);
    expect(section).toMatch(/<rect class="slot wait"/);
    expect(section).toMatch(/first token · TTFT \d+ ms/);
    expect(section).toContain('waiting for K/V from the rank before');
    // Only jobs with a result get a chart.
    expect(html).not.toContain('<section class="job" data-job="team-b/queued">');
  });

  it('places the TTFT line where the last rank ends', () => {
    const job = finishedJob('llama-8k', 'team-a', NOW);
    const chain = chainOf(job)!;
    const slots = chain.rows[3]!.timeline.length;
    expect(chain.slotMs * slots).toBeCloseTo(job.status!.ttftMs!, 0);
    expect(chain.rows[3]!.timeline.endsWith('c')).toBe(true);
  });

  it('is self-contained: no script, no external style, image or font', () => {
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\bsrc=|\bhref=|@import|url\(/i);
    // The SVG namespace is a name, not a fetch; nothing else names a host.
    expect(html.replaceAll('xmlns="http://www.w3.org/2000/svg"', '')).not.toMatch(/https?:\/\//);
  });

  it('escapes every string that comes from the API', () => {
    const job = finishedJob('evil', 'team-c', NOW);
    const status = job.status!;
    const hostile: RunaheadJob = {
      ...job,
      metadata: { ...job.metadata, namespace: 'ns"><b>x</b>' },
      status: {
        ...status,
        firstTokenText: '<script>alert(1)</script>',
        partition: '<i>balanced</i>',
        phase: 'Succeeded',
        conditions: [{ ...status.conditions![1]!, message: `<img src=x onerror="alert('x')">` }],
      },
    };
    const page = renderDashboard([hostile], NOW);
    expect(page).not.toContain('<script>');
    expect(page).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).not.toContain('<img');
    expect(page).toContain('&lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt;');
    expect(page).not.toContain('<b>x</b>');
    expect(page).not.toContain('<i>balanced</i>');
  });

  it('says so when there are no jobs', () => {
    expect(renderDashboard([], NOW)).toContain('No RunaheadJobs.');
    expect(renderDashboard([], NOW)).toContain('No RunaheadServers.');
  });

  it('lists every server with its groups ready of desired, revision, endpoint and TTFT p50/p99', () => {
    const page = renderDashboard([], NOW, [
      servingServer('chat', 'team-a', { ttftMs: { p50: 212.4, p90: 480, p99: 1250, requests: 734 } }),
      servingServer('cold', 'team-a', { replicas: 3, ready: 0 }),
    ]);
    const cells = (id: string) => {
      const row = new RegExp(`<tr data-server="${id}">(.*?)</tr>`, 's').exec(page)?.[1] ?? '';
      return [...row.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((m) => m[1]!.replace(/<[^>]+>/g, ''));
    };
    expect(cells('team-a/chat')).toEqual([
      'team-a/chat',
      '2/2',
      '2',
      '5d8f9c7b',
      'http://chat.team-a.svc.cluster.local:8000/v1/completions',
      '212 ms',
      '1250 ms',
      '734',
      '60m',
      '2',
      'Available: 2 of 2 group(s) ready',
    ]);
    expect(cells('team-a/cold').slice(0, 8)).toEqual([
      'team-a/cold',
      '0/3',
      '0',
      '5d8f9c7b',
      'http://cold.team-a.svc.cluster.local:8000/v1/completions',
      '—',
      '—',
      '—',
    ]);
    expect(page).toMatch(
      /<tr data-server="team-a\/chat"><td[^>]*>.*?<\/td><td><span class="phase Succeeded">/s,
    );
    expect(page).toMatch(/<tr data-server="team-a\/cold"><td[^>]*>.*?<\/td><td><span class="phase Failed">/s);
    expect(page).not.toContain('No RunaheadServers.');
  });

  it('escapes what a server’s status says', () => {
    const server = servingServer('chat', 'team-a');
    const hostile: RunaheadServer = {
      ...server,
      status: { ...server.status, revision: '<b>r</b>', endpoint: 'http://x/"><script>' },
    };
    const page = renderDashboard([], NOW, [hostile]);
    expect(page).not.toContain('<b>r</b>');
    expect(page).not.toContain('<script>');
    expect(page).toContain('&lt;b&gt;r&lt;/b&gt;');
  });
});

describe('serversPayload', () => {
  it('gives the servers’ rows and their groups as JSON, sorted by namespace and name', () => {
    const payload = serversPayload(
      [servingServer('zeta', 'team-a', { ready: 1 }), servingServer('chat', 'team-a')],
      NOW,
    );
    expect(payload.servers.map((s) => s.name)).toEqual(['chat', 'zeta']);
    expect(payload.servers[1]).toMatchObject({
      desired: 2,
      ready: 1,
      revision: '5d8f9c7b',
      ttftMs: null,
      restarts: 2,
      groups: [expect.objectContaining({ group: 0, ready: true }), expect.objectContaining({ ready: false })],
    });
  });

  it('summarizes a server that has no status yet', () => {
    const fresh: RunaheadServer = { ...servingServer('new', 'team-a') };
    delete fresh.status;
    expect(summarizeServer(fresh, NOW.getTime())).toMatchObject({
      desired: 2,
      ready: 0,
      updated: 0,
      revision: null,
      endpoint: null,
      ttftMs: null,
      restarts: 0,
      condition: null,
    });
  });
});

describe('jobsPayload', () => {
  it('gives the table’s rows and each job’s chain as JSON', () => {
    const payload = jobsPayload([pendingJob('queued'), finishedJob('llama-8k', 'team-a', NOW)], NOW);
    expect(payload.generatedAt).toBe('2026-11-25T10:00:00.000Z');
    expect(payload.jobs.map((j) => `${j.namespace}/${j.name}`)).toEqual(['team-a/llama-8k', 'team-b/queued']);
    expect(payload.jobs[0]).toMatchObject({
      phase: 'Succeeded',
      ranks: 4,
      mode: 'runahead',
      contextLength: 8192,
      restarts: 0,
      ageSeconds: 95,
      boundaries: [0, 2900, 4950, 6700, 8192],
      condition: { type: 'Complete', reason: 'FirstTokenProduced' },
    });
    expect(payload.jobs[0]?.chain?.rows).toHaveLength(4);
    expect(payload.jobs[1]).toMatchObject({ phase: 'Pending', ttftMs: null, chain: null });
  });
});

describe('helpers', () => {
  it('escapes the five HTML specials', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('formats ages as kubectl does', () => {
    expect([5, 119, 120, 7199, 7200, 172_799, 172_800].map(formatAge)).toEqual([
      '5s',
      '119s',
      '2m',
      '119m',
      '2h',
      '47h',
      '2d',
    ]);
  });

  it('builds manifests the API accepts', () => {
    expect(jobManifest('a', 'b', null).spec.partition).toEqual({ strategy: 'even' });
  });
});
