// The operator's built-in dashboard: one self-contained HTML page (inline CSS and SVG, no script,
// nothing fetched — clusters are often offline) listing the RunaheadJobs and the RunaheadServers (their
// groups, revision, endpoint and TTFT percentiles from status), and for each finished job
// the chain drawn as a Gantt chart from `status.ranks[].timeline`: earlier ranks run ahead, later
// ranks wait on K/V, the last emits the first token (PAPER.md). Pure functions of the jobs and the
// clock; every string that comes from the API is escaped.
import type { Condition, RunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import type { RunaheadServer } from '../../core/api/v1alpha1/runahead-server.ts';
import { timelineRuns, type SlotState } from '../../core/api/timeline.ts';

/** Seconds between reloads of the page. */
export const REFRESH_SECONDS = 10;

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Text safe in HTML content and in quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

const ms = (x: number | undefined) =>
  x === undefined ? '—' : `${x === 0 ? '0' : x.toFixed(x < 100 ? 1 : 0)} ms`;

/** An age as kubectl prints it: 42s, 7m, 3h, 12d. */
export function formatAge(seconds: number): string {
  if (!(seconds >= 0)) return '—';
  if (seconds < 120) return `${Math.floor(seconds)}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** A job or a server: what the age and latest-condition columns read. */
interface Resource {
  readonly metadata: { readonly name: string; readonly creationTimestamp?: unknown };
  readonly status?: { readonly conditions?: readonly Condition[] | undefined } | undefined;
}

function createdAt(resource: Resource): number | null {
  const t: unknown = resource.metadata.creationTimestamp;
  const when = typeof t === 'string' ? Date.parse(t) : t instanceof Date ? t.getTime() : NaN;
  return Number.isNaN(when) ? null : when;
}

/** The condition that changed last: what is happening to the job (or server) now. */
export function latestCondition(job: Resource): Condition | null {
  const conditions = [...(job.status?.conditions ?? [])];
  conditions.sort((a, b) => Date.parse(b.lastTransitionTime) - Date.parse(a.lastTransitionTime));
  return conditions[0] ?? null;
}

export interface JobSummary {
  readonly namespace: string;
  readonly name: string;
  readonly phase: string;
  readonly ranks: number;
  readonly mode: string;
  readonly contextLength: number | null;
  readonly ttftMs: number | null;
  readonly ageSeconds: number | null;
  readonly restarts: number;
  readonly condition: { readonly type: string; readonly reason: string; readonly message: string } | null;
}

export function summarize(job: RunaheadJob, now: number): JobSummary {
  const s = job.status;
  const created = createdAt(job);
  const c = latestCondition(job);
  return {
    namespace: job.metadata.namespace ?? '',
    name: job.metadata.name,
    phase: s?.phase ?? 'Pending',
    ranks: job.spec.ranks,
    mode: job.spec.mode,
    contextLength: s?.contextLength ?? null,
    ttftMs: s?.ttftMs ?? null,
    ageSeconds: created === null ? null : Math.max(0, (now - created) / 1000),
    restarts: s?.restarts ?? 0,
    condition: c ? { type: c.type, reason: c.reason, message: c.message } : null,
  };
}

/** The `/api/jobs` payload: the table's rows and each job's chain, as plain JSON. */
export function jobsPayload(jobs: readonly RunaheadJob[], now: Date | number) {
  const t = typeof now === 'number' ? now : now.getTime();
  return {
    generatedAt: new Date(t).toISOString(),
    jobs: sortByName(jobs).map((job) => ({
      ...summarize(job, t),
      partition: job.status?.partition ?? null,
      boundaries: job.status?.boundaries ?? null,
      firstToken: job.status?.firstToken ?? null,
      firstTokenText: job.status?.firstTokenText ?? null,
      chain: chainOf(job),
    })),
  };
}

function sortByName<T extends { metadata: { namespace?: string | undefined; name: string } }>(
  objects: readonly T[],
): T[] {
  const key = (o: T) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
  return [...objects].sort((a, b) => key(a).localeCompare(key(b)));
}

// ---------------------------------------------------------------------------------------- servers

export interface ServerSummary {
  readonly namespace: string;
  readonly name: string;
  /** spec.replicas: the groups asked for. */
  readonly desired: number;
  readonly ready: number;
  readonly updated: number;
  readonly revision: string | null;
  readonly endpoint: string | null;
  /** status.ttftMs: over every front, since each started; null until one answered a request. */
  readonly ttftMs: {
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly requests: number;
  } | null;
  /** Group restarts, over every group. */
  readonly restarts: number;
  readonly ageSeconds: number | null;
  readonly condition: { readonly type: string; readonly reason: string; readonly message: string } | null;
}

export function summarizeServer(server: RunaheadServer, now: number): ServerSummary {
  const s = server.status;
  const created = createdAt(server);
  const c = latestCondition(server);
  return {
    namespace: server.metadata.namespace ?? '',
    name: server.metadata.name,
    desired: server.spec.replicas,
    ready: s?.readyReplicas ?? 0,
    updated: s?.updatedReplicas ?? 0,
    revision: s?.revision ?? null,
    endpoint: s?.endpoint ?? null,
    ttftMs: s?.ttftMs ?? null,
    restarts: (s?.groups ?? []).reduce((n, g) => n + g.restarts, 0),
    ageSeconds: created === null ? null : Math.max(0, (now - created) / 1000),
    condition: c ? { type: c.type, reason: c.reason, message: c.message } : null,
  };
}

/** The `/api/servers` payload: the servers' rows and each one's groups, as plain JSON. */
export function serversPayload(servers: readonly RunaheadServer[], now: Date | number) {
  const t = typeof now === 'number' ? now : now.getTime();
  return {
    generatedAt: new Date(t).toISOString(),
    servers: sortByName(servers).map((server) => ({
      ...summarizeServer(server, t),
      groups: server.status?.groups ?? [],
    })),
  };
}

// ------------------------------------------------------------------------------------------ chart

interface ChainRow {
  readonly rank: number;
  readonly chunk: readonly number[] | null;
  readonly timeline: string;
  readonly computeMs: number | null;
  readonly waitMs: number | null;
  readonly sendMs: number | null;
}

export interface Chain {
  readonly ttftMs: number;
  /** Milliseconds per timeline letter. */
  readonly slotMs: number;
  readonly rows: readonly ChainRow[];
}

/**
 * The chain of a job that has a result, or null. The timelines cover [0, the run's end) where the
 * end is the later of TTFT and the last rank's end (cli/run-outcome.ts), which gives the slot width.
 */
export function chainOf(job: RunaheadJob): Chain | null {
  const s = job.status;
  const ranks = s?.ranks ?? [];
  if (s?.ttftMs === undefined || !ranks.some((r) => r.timeline)) return null;
  const slots = Math.max(...ranks.map((r) => r.timeline?.length ?? 0));
  const end = Math.max(s.ttftMs, ...ranks.map((r) => r.endMs ?? 0));
  return {
    ttftMs: s.ttftMs,
    slotMs: end > 0 ? end / slots : 1,
    rows: [...ranks]
      .sort((a, b) => a.rank - b.rank)
      .map((r) => ({
        rank: r.rank,
        chunk: r.chunk ?? null,
        timeline: r.timeline ?? '',
        computeMs: r.computeMs ?? null,
        waitMs: r.waitMs ?? null,
        sendMs: r.sendMs ?? null,
      })),
  };
}

const COLORS: Readonly<Record<SlotState, string>> = {
  compute: '#2f6fb3',
  wait: '#f0b429',
  send: '#3f9c5a',
  idle: '#eef0f3',
};
const LEGEND: readonly [SlotState, string][] = [
  ['compute', 'computing (Q/K/V, attention, MLP)'],
  ['wait', 'waiting for K/V from the rank before'],
  ['send', 'sending K/V to the rank after'],
  ['idle', 'idle'],
];

const fmt = (x: number) => (Math.round(x * 100) / 100).toString();

/** The chain as an SVG Gantt chart: one row per rank, time left to right, TTFT marked. */
export function chainChart(chain: Chain, title: string): string {
  const width = 1000;
  const left = 150;
  const right = 210;
  const top = 30;
  const rowHeight = 30;
  const barHeight = 20;
  const slots = Math.max(1, ...chain.rows.map((r) => r.timeline.length));
  const endMs = chain.slotMs * slots;
  const plot = width - left - right;
  const x = (t: number) => left + (Math.min(Math.max(t, 0), endMs) / endMs) * plot;
  const axisY = top + chain.rows.length * rowHeight + 4;
  const height = axisY + 62;
  const out: string[] = [
    `<svg class="chain" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(title)}">`,
  ];
  for (const [i, row] of chain.rows.entries()) {
    const y = top + i * rowHeight;
    const chunk = row.chunk ? `[${row.chunk[0]}, ${row.chunk[1]})` : '';
    out.push(
      `<g class="rank-row" data-rank="${row.rank}">`,
      `<text x="8" y="${y + 14}" class="rank">rank ${row.rank}</text>`,
      `<text x="8" y="${y + 26}" class="chunk">${chunk}</text>`,
      `<rect x="${left}" y="${y + 3}" width="${plot}" height="${barHeight}" fill="${COLORS.idle}"/>`,
    );
    for (const run of timelineRuns(row.timeline)) {
      if (run.state === 'idle') continue;
      const from = run.from * chain.slotMs;
      const to = run.to * chain.slotMs;
      out.push(
        `<rect class="slot ${run.state}" x="${fmt(x(from))}" y="${y + 3}" width="${fmt(x(to) - x(from))}" height="${barHeight}" fill="${COLORS[run.state]}"><title>rank ${row.rank}: ${run.state} ${fmt(from)}–${fmt(to)} ms</title></rect>`,
      );
    }
    const figures = [
      row.computeMs === null ? null : `compute ${ms(row.computeMs)}`,
      row.waitMs === null ? null : `wait ${ms(row.waitMs)}`,
    ].filter((f) => f !== null);
    out.push(
      `<text x="${width - right + 10}" y="${y + 18}" class="figures">${figures.join(' · ')}</text>`,
      '</g>',
    );
  }
  out.push(`<line x1="${left}" y1="${axisY}" x2="${left + plot}" y2="${axisY}" stroke="#555"/>`);
  for (let i = 0; i <= 4; i++) {
    const t = (endMs * i) / 4;
    out.push(
      `<line x1="${fmt(x(t))}" y1="${axisY}" x2="${fmt(x(t))}" y2="${axisY + 4}" stroke="#555"/>`,
      `<text x="${fmt(x(t))}" y="${axisY + 16}" text-anchor="middle" class="tick">${ms(t)}</text>`,
    );
  }
  const tx = fmt(x(chain.ttftMs));
  out.push(
    `<g class="ttft"><line x1="${tx}" y1="${top - 8}" x2="${tx}" y2="${axisY}" stroke="#c0392b" stroke-width="2" stroke-dasharray="5 3"/>`,
    `<text x="${tx}" y="${top - 12}" text-anchor="end" fill="#c0392b" class="ttft-label">first token · TTFT ${escapeHtml(ms(chain.ttftMs))}</text></g>`,
  );
  let lx = left;
  for (const [state, label] of LEGEND) {
    out.push(
      `<rect x="${lx}" y="${axisY + 30}" width="12" height="12" fill="${COLORS[state]}" stroke="#999" stroke-width="0.5"/>`,
      `<text x="${lx + 17}" y="${axisY + 40}" class="legend">${escapeHtml(label)}</text>`,
    );
    lx += 17 + label.length * 6.2 + 18;
  }
  out.push('</svg>');
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------- page

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d2329;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 4px}
.sub{color:#5c6670;margin:0 0 16px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{font-weight:600;color:#5c6670;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.name{white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.phase{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e3e6ea}
.phase.Succeeded{background:#d3f0dc;color:#1e6b37}.phase.Failed{background:#f9d7d3;color:#9b2c1f}
.phase.Running{background:#d6e6f7;color:#1f4f82}.phase.Suspended{background:#eee;color:#555}
.msg{color:#5c6670;max-width:420px;overflow-wrap:anywhere}
.result{color:#5c6670;margin:0 0 6px}
svg.chain{max-width:100%;height:auto;font:12px system-ui,sans-serif}
svg .rank{font-weight:600}svg .chunk,svg .figures,svg .tick{fill:#5c6670;font-size:11px}
svg .legend{font-size:11px}svg .ttft-label{font-weight:600}
.empty{color:#5c6670;font-style:italic}
td.endpoint code{font-size:12px;overflow-wrap:anywhere}
`;

function jobRow(s: JobSummary): string {
  const cell = (v: string, cls = '') => `<td${cls ? ` class="${cls}"` : ''}>${v}</td>`;
  const condition = s.condition ? `${escapeHtml(s.condition.type)}: ${escapeHtml(s.condition.message)}` : '';
  return `<tr data-job="${escapeHtml(`${s.namespace}/${s.name}`)}">${[
    cell(`${escapeHtml(s.namespace)}/<strong>${escapeHtml(s.name)}</strong>`, 'name'),
    cell(`<span class="phase ${escapeHtml(s.phase)}">${escapeHtml(s.phase)}</span>`),
    cell(String(s.ranks), 'num'),
    cell(escapeHtml(s.mode)),
    cell(s.contextLength === null ? '—' : String(s.contextLength), 'num'),
    cell(s.ttftMs === null ? '—' : escapeHtml(ms(s.ttftMs)), 'num ttft'),
    cell(s.ageSeconds === null ? '—' : formatAge(s.ageSeconds), 'num'),
    cell(String(s.restarts), 'num'),
    cell(condition, 'msg'),
  ].join('')}</tr>`;
}

function serverRow(s: ServerSummary): string {
  const cell = (v: string, cls = '') => `<td${cls ? ` class="${cls}"` : ''}>${v}</td>`;
  const condition = s.condition ? `${escapeHtml(s.condition.type)}: ${escapeHtml(s.condition.message)}` : '';
  // The job phases' colours: every group serving green, some blue, none red, held (0 groups) grey.
  const state =
    s.desired === 0 ? 'Suspended' : s.ready >= s.desired ? 'Succeeded' : s.ready > 0 ? 'Running' : 'Failed';
  return `<tr data-server="${escapeHtml(`${s.namespace}/${s.name}`)}">${[
    cell(`${escapeHtml(s.namespace)}/<strong>${escapeHtml(s.name)}</strong>`, 'name'),
    cell(`<span class="phase ${state}">${s.ready}/${s.desired}</span>`),
    cell(String(s.updated), 'num'),
    cell(s.revision === null ? '—' : `<code>${escapeHtml(s.revision)}</code>`),
    cell(s.endpoint === null ? '—' : `<code>${escapeHtml(s.endpoint)}</code>`, 'endpoint'),
    cell(s.ttftMs === null ? '—' : escapeHtml(ms(s.ttftMs.p50)), 'num ttft'),
    cell(s.ttftMs === null ? '—' : escapeHtml(ms(s.ttftMs.p99)), 'num ttft'),
    cell(s.ttftMs === null ? '—' : String(s.ttftMs.requests), 'num'),
    cell(s.ageSeconds === null ? '—' : formatAge(s.ageSeconds), 'num'),
    cell(String(s.restarts), 'num'),
    cell(condition, 'msg'),
  ].join('')}</tr>`;
}

function jobSection(job: RunaheadJob, chain: Chain): string {
  const s = job.status!;
  const id = `${job.metadata.namespace ?? ''}/${job.metadata.name}`;
  const facts = [
    `TTFT ${ms(s.ttftMs)}`,
    job.spec.mode,
    s.contextLength === undefined ? null : `${s.contextLength} prompt tokens`,
    s.partition ? `${s.partition} split ${(s.boundaries ?? []).join(', ')}` : null,
    s.firstTokenText === undefined
      ? null
      : `first token ${s.firstToken ?? ''} ${JSON.stringify(s.firstTokenText)}`,
  ].filter((f) => f !== null);
  return [
    `<section class="job" data-job="${escapeHtml(id)}">`,
    `<h2>${escapeHtml(id)}</h2>`,
    `<p class="result">${facts.map(escapeHtml).join(' · ')}</p>`,
    chainChart(chain, `Rank timeline of ${id}`),
    '</section>',
  ].join('\n');
}

const SERVER_HEAD = [
  'Server',
  'Groups ready',
  'Updated',
  'Revision',
  'Endpoint',
  'TTFT p50',
  'TTFT p99',
  'Requests',
  'Age',
  'Restarts',
  'Latest condition',
];

/** The whole page. `now` dates the page and the jobs' and servers' ages. */
export function renderDashboard(
  jobs: readonly RunaheadJob[],
  now: Date | number,
  servers: readonly RunaheadServer[] = [],
): string {
  const t = typeof now === 'number' ? now : now.getTime();
  const sorted = sortByName(jobs);
  const serverRows = sortByName(servers).map((s) => serverRow(summarizeServer(s, t)));
  const rows = sorted.map((j) => jobRow(summarize(j, t)));
  const charts = sorted.flatMap((j) => {
    const chain = chainOf(j);
    return chain ? [jobSection(j, chain)] : [];
  });
  const head = ['Job', 'Phase', 'Ranks', 'Mode', 'Context', 'TTFT', 'Age', 'Restarts', 'Latest condition'];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<title>runahead · RunaheadJobs and RunaheadServers</title>
<style>${CSS}</style>
</head>
<body>
<h1>RunaheadJobs</h1>
<p class="sub">KV-Runahead prefill: each rank computes its chunk's K/V, forwards the growing cache to the next rank layer by layer, and the last rank emits the first token. Updated ${escapeHtml(new Date(t).toISOString())}; reloads every ${REFRESH_SECONDS} s.</p>
${
  sorted.length === 0
    ? '<p class="empty">No RunaheadJobs.</p>'
    : `<table>\n<thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead>\n<tbody>\n${rows.join('\n')}\n</tbody>\n</table>`
}
<h2 id="servers">RunaheadServers</h2>
<p class="sub">Warm rank groups serving completions, each behind its front; TTFT percentiles over every front since it started (status.ttftMs).</p>
${
  serverRows.length === 0
    ? '<p class="empty">No RunaheadServers.</p>'
    : `<table class="servers">\n<thead><tr>${SERVER_HEAD.map((h) => `<th>${h}</th>`).join('')}</tr></thead>\n<tbody>\n${serverRows.join('\n')}\n</tbody>\n</table>`
}
${charts.join('\n')}
</body>
</html>
`;
}
