import { describe, expect, it } from '@jest/globals';
import type { RunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import { finishedJob, jobManifest } from '../../test/support/finished-job.ts';
import { chainOf, escapeHtml, formatAge, jobsPayload, renderDashboard } from './render.ts';

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
