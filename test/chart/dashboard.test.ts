// Every query of the Grafana dashboard names metrics that really exist, with labels those metrics
// really have: the lists come from the operator's own registry (operator/platform/metrics.ts) and
// from the serving front's (cli/serve/serve-metrics.ts, scraped through the chart's PodMonitor, whose
// relabelings add the `server` and `group` labels), so renaming a metric without the dashboard fails
// here.
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { SERVE_METRIC_NAMES, ServeMetrics } from '../../cli/serve/serve-metrics.ts';
import { METRIC_NAMES, OperatorMetrics, PROCESS_METRICS_PREFIX } from '../../operator/platform/metrics.ts';
import { CHART_DIR } from '../support/chart.ts';

interface Target {
  expr?: string;
  refId: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(readFileSync(`${CHART_DIR}/dashboards/runahead.json`, 'utf8')) as Dashboard;

type Known = Map<string, { type: string; labels: string[] }>;

/** Metric name → its type and label names, as a registry holds them, plus `targetLabels`. */
function registered(registry: OperatorMetrics['registry'], targetLabels: readonly string[] = []): Known {
  const out: Known = new Map();
  for (const m of registry.getMetricsAsArray()) {
    const labelNames = (m as unknown as { labelNames?: string[] }).labelNames ?? [];
    out.set(m.name, { type: String(m.type), labels: [...labelNames, ...targetLabels] });
  }
  return out;
}

/** What the operator exports. */
function exported(): Known {
  return registered(new OperatorMetrics({ processMetrics: true }).registry);
}

/**
 * The labels the chart's PodMonitor puts on every front series: the `targetLabel`s of its
 * relabelings (read from the template: no helm needed), and the namespace and pod the Prometheus
 * Operator adds to every PodMonitor target.
 */
export function podMonitorTargetLabels(): string[] {
  const template = readFileSync(`${CHART_DIR}/templates/podmonitor.yaml`, 'utf8');
  const relabelled = [...template.matchAll(/^\s*targetLabel:\s*(\S+)\s*$/gm)].map((m) => m[1]!);
  return ['namespace', 'pod', ...relabelled];
}

/** What a serving front exports, with the labels its scrape adds. */
function frontExported(): Known {
  const front = new ServeMetrics({ queue: () => ({ depth: 0, inFlight: 0 }), ready: () => true });
  return registered(front.registry, podMonitorTargetLabels());
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

// Labels every scraped series has (Prometheus' target labels), usable in any query.
const TARGET_LABELS = ['instance'];
const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

export interface ParsedQuery {
  /** Metric names as written (histogram series with their _bucket/_sum/_count suffix). */
  readonly metrics: string[];
  /** Label names in matchers and in by/without/on/ignoring/group_left/group_right clauses. */
  readonly labels: string[];
}

/** The metric and label names a PromQL expression uses; enough PromQL for dashboard queries. */
export function parsePromql(expr: string): ParsedQuery {
  const labels: string[] = [];
  let rest = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  rest = rest.replace(/\{([^}]*)\}/g, (_m, inner: string) => {
    for (const [, name] of inner.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.push(name!);
    return ' ';
  });
  rest = rest.replace(
    /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_m, _k, inner: string) => {
      labels.push(
        ...inner
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      );
      return ' ';
    },
  );
  rest = rest.replace(/\[[^\]]*\]/g, ' ').replace(/\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?/g, ' ');
  rest = rest.replace(/(?<![a-zA-Z0-9_:])\d+(\.\d+)?([eE][+-]?\d+)?/g, ' ');
  const metrics: string[] = [];
  for (const m of rest.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || PROMQL_KEYWORDS.has(m[1]!.toLowerCase())) continue; // a function or an operator
    metrics.push(m[1]!);
  }
  return { metrics, labels };
}

/** The registered metric a series name belongs to (histograms expose _bucket, _sum and _count). */
function baseMetric(series: string, known: Known): { name: string; suffix: string } | undefined {
  if (known.has(series)) return { name: series, suffix: '' };
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  if (m && ['histogram', 'summary'].includes(known.get(m[1]!)?.type ?? ''))
    return { name: m[1]!, suffix: m[2]! };
  return undefined;
}

describe('PromQL parsing in this test', () => {
  test('finds metrics and labels, not functions, keywords, variables or numbers', () => {
    expect(
      parsePromql(
        'histogram_quantile(0.95, sum by (le, mode) (rate(runahead_ttft_seconds_bucket{job=~"$job"}[$__rate_interval]))) / 1e3 and on (instance) (runahead_is_leader == 1)',
      ),
    ).toEqual({
      metrics: ['runahead_ttft_seconds_bucket', 'runahead_is_leader'],
      labels: ['job', 'le', 'mode', 'instance'],
    });
  });
});

describe('Grafana dashboard', () => {
  const operator = exported();
  const fronts = frontExported();
  // Operator and front names do not overlap (runahead_serve_* is the fronts' alone).
  const known: Known = new Map([...operator, ...fronts]);
  const panels = allPanels(dashboard.panels);
  const queries = panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr ?? '' })),
  );

  test('METRIC_NAMES and the process metrics are what the registry exports', () => {
    for (const name of Object.values(METRIC_NAMES)) expect(operator.has(name)).toBe(true);
    expect([...operator.keys()].filter((n) => !n.startsWith(PROCESS_METRICS_PREFIX)).sort()).toEqual(
      Object.values(METRIC_NAMES).sort(),
    );
    for (const name of Object.values(SERVE_METRIC_NAMES)) expect(fronts.has(name)).toBe(true);
    expect([...operator.keys()].filter((n) => fronts.has(n))).toEqual([]);
  });

  test('the PodMonitor labels front series with their server and group, as the Servers row filters them', () => {
    expect(podMonitorTargetLabels()).toEqual(['namespace', 'pod', 'server', 'group']);
  });

  test('every panel query names exported metrics, and labels those metrics have', () => {
    expect(queries.length).toBeGreaterThan(15);
    const problems: string[] = [];
    for (const { panel, expr } of queries) {
      const parsed = parsePromql(expr);
      if (parsed.metrics.length === 0) problems.push(`${panel}: no metric in ${expr}`);
      const allowed = new Set(TARGET_LABELS);
      for (const series of parsed.metrics) {
        const base = baseMetric(series, known);
        if (!base) {
          problems.push(`${panel}: ${series} is exported by neither the operator nor a front`);
          continue;
        }
        for (const l of known.get(base.name)!.labels) allowed.add(l);
        if (base.suffix === 'bucket') allowed.add('le');
      }
      for (const label of parsed.labels)
        if (!allowed.has(label))
          problems.push(`${panel}: label ${label} is on none of ${parsed.metrics.join(', ')}`);
    }
    expect(problems).toEqual([]);
  });

  test('template variables read labels of exported metrics', () => {
    const queryVars = dashboard.templating.list.filter((v) => v.type === 'query');
    expect(queryVars.map((v) => v.name)).toEqual(['namespace', 'job', 'server']);
    for (const v of queryVars) {
      const q = typeof v.query === 'string' ? v.query : v.query.query;
      const m = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(q);
      expect(m).not.toBeNull();
      const parsed = parsePromql(m![1]!);
      expect(parsed.metrics).toHaveLength(1);
      expect(known.get(parsed.metrics[0]!)?.labels).toEqual(
        expect.arrayContaining([m![2]!, ...parsed.labels]),
      );
    }
  });

  test('covers what operators ask: TTFT by job and over time, per-rank breakdown, KV bytes, phases, reconciles, restarts', () => {
    const used = new Set(
      queries.flatMap((q) => parsePromql(q.expr).metrics.map((s) => baseMetric(s, known)?.name)),
    );
    for (const name of [
      METRIC_NAMES.jobTtftMilliseconds,
      METRIC_NAMES.ttftSeconds,
      METRIC_NAMES.jobRankMilliseconds,
      METRIC_NAMES.jobRankKvBytesSent,
      METRIC_NAMES.kvBytesSentTotal,
      METRIC_NAMES.rankSeconds,
      METRIC_NAMES.jobs,
      METRIC_NAMES.reconcileTotal,
      METRIC_NAMES.reconcileErrorsTotal,
      METRIC_NAMES.reconcileDurationSeconds,
      METRIC_NAMES.jobRestartsTotal,
      METRIC_NAMES.jobsFinishedTotal,
      METRIC_NAMES.isLeader,
      METRIC_NAMES.workqueueDepth,
      METRIC_NAMES.informerRestartsTotal,
      METRIC_NAMES.serverGroupsDesired,
      METRIC_NAMES.serverGroupsReady,
      METRIC_NAMES.serverGroupsUpdated,
      METRIC_NAMES.serverTtftMilliseconds,
      METRIC_NAMES.serverGroupRestartsTotal,
      ...Object.values(SERVE_METRIC_NAMES),
    ])
      expect([name, used.has(name)]).toEqual([name, true]);
    // The per-rank breakdown stacks compute, wait and send; critical_send is part of send, so it is
    // left out of the stack and drawn beside send in a panel of its own.
    const [breakdown, critical] = queries.filter((q) => q.expr.includes(METRIC_NAMES.jobRankMilliseconds));
    expect(breakdown!.expr).toMatch(/by \(rank, kind\)/);
    expect(breakdown!.expr).toContain('kind!="critical_send"');
    expect(critical!.expr).toContain('kind=~"send|critical_send"');
  });

  test('the Servers row: operator and front panels, each filtered by namespace and server', () => {
    const row = dashboard.panels.findIndex((p) => p.type === 'row' && p.title === 'Servers');
    const next = dashboard.panels.findIndex((p, i) => i > row && p.type === 'row');
    const servers = dashboard.panels.slice(row + 1, next);
    expect(servers.length).toBeGreaterThanOrEqual(8);
    const exprs = servers.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
    for (const expr of exprs) {
      expect(expr).toContain('namespace=~"$namespace"');
      expect(expr).toContain('server=~"$server"');
    }
    const fromFronts = exprs.filter((e) => parsePromql(e).metrics.some((m) => baseMetric(m, fronts)));
    expect(fromFronts.length).toBeGreaterThanOrEqual(8);
    expect(exprs.some((e) => e.includes('code="429"'))).toBe(true);
    expect(exprs.some((e) => /histogram_quantile\(0\.99, .*runahead_serve_ttft_seconds_bucket/.test(e))).toBe(
      true,
    );
  });

  test("panels have unique ids and query the dashboard's data source variable", () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels.filter((p) => p.type !== 'row'))
      expect([p.title, p.datasource?.uid]).toEqual([p.title, '${datasource}']);
    expect(dashboard.templating.list[0]).toMatchObject({
      name: 'datasource',
      type: 'datasource',
      query: 'prometheus',
    });
    expect(dashboard.uid).toBe('runahead-operator');
  });
});
