// The projection's sweep (models × data-path scenarios × links × configurations × context lengths)
// and its report: markdown tables and SVG plots. Pure: bench/projection/project.ts reads the
// measurements, picks the scenarios and writes what these functions return.
import { linePlotSvg, type PlotSeries } from './line-plot.ts';
import {
  crossover,
  projectConfiguration,
  type ComputeFit,
  type Configuration,
  type ConfigPoint,
  type CopyMode,
  type Crossover,
  type MemoryFit,
  type ModelShapeSpec,
  type ProjectionSetup,
} from './projection.ts';

/** How K/V and activations cross between GPU and host, and the graphs a chain rank runs. */
export interface Scenario {
  readonly id: string;
  readonly label: string;
  readonly egressGBps: number;
  readonly ingressGBps: number;
  readonly copies: CopyMode;
  /** Graphs of g layers a KV-Runahead chain rank may run: each point takes the best of these. */
  readonly layersPerGraph: readonly number[];
  /** Where the rates come from, for the reader. */
  readonly source: string;
}

export interface ModelInput {
  /** As in the measurements, e.g. synthetic:llama-7b. */
  readonly name: string;
  readonly shape: ModelShapeSpec;
  readonly fit: ComputeFit;
  readonly memory: MemoryFit;
}

export interface SweepOptions {
  readonly links: readonly number[];
  readonly ranks: readonly number[];
  readonly contexts: readonly number[];
  readonly granularity: number;
  readonly linkLatencyMs: number;
  readonly queueBytes: number;
  /** Per graph run after a rank's first (ProjectionSetup.graphOverheadMs). */
  readonly graphOverheadMs: number;
  /** Context lengths the crossover search covers. */
  readonly crossoverRange: readonly [number, number];
}

export const CONFIGURATIONS: readonly Configuration[] = ['tsp', 'even', 'balanced'];

export interface SweepPoint {
  readonly model: string;
  readonly scenario: string;
  readonly linkGBps: number;
  readonly configuration: Configuration | 'single';
  readonly ranks: number;
  readonly contextLength: number;
  readonly ttftMs: number;
  readonly singleMs: number;
  readonly speedup: number;
  /** speedup / ranks: 1 is ideal scaling. */
  readonly efficiency: number;
  readonly fits: boolean;
  readonly singleFits: boolean;
  readonly peakMiB: number;
  readonly boundaries: readonly number[];
  readonly layersPerGraph: number;
  /** Per rank: [finish, compute, copies, wait] ms. */
  readonly ranksMs: readonly (readonly [number, number, number, number])[];
  /** Balanced only: the repo's search against the cost model, and that split's projected TTFT. */
  readonly costModel?: { readonly boundaries: readonly number[]; readonly projectedMs: number };
}

export interface SweepCrossover {
  readonly model: string;
  readonly scenario: string;
  readonly linkGBps: number;
  readonly configuration: Configuration;
  readonly ranks: number;
  readonly crossover: Crossover;
}

export function setupOf(
  model: ModelInput,
  scenario: Scenario,
  linkGBps: number,
  options: SweepOptions,
): ProjectionSetup {
  return {
    model: model.shape,
    compute: model.fit.terms,
    path: {
      egressGBps: scenario.egressGBps,
      ingressGBps: scenario.ingressGBps,
      linkGBps,
      linkLatencyMs: options.linkLatencyMs,
      copies: scenario.copies,
      queueBytes: options.queueBytes,
    },
    layersPerGraph: scenario.layersPerGraph[0]!,
    attention: 'causal',
    graphOverheadMs: options.graphOverheadMs,
  };
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

function toPoint(
  model: string,
  scenario: string,
  linkGBps: number,
  p: ConfigPoint,
  single: ConfigPoint,
): SweepPoint {
  const speedup = single.ttftMs / p.ttftMs;
  return {
    model,
    scenario,
    linkGBps,
    configuration: p.configuration,
    ranks: p.ranks,
    contextLength: p.contextLength,
    ttftMs: round(p.ttftMs, 1),
    singleMs: round(single.ttftMs, 1),
    speedup: round(speedup, 3),
    efficiency: round(speedup / p.ranks, 3),
    fits: p.fits,
    singleFits: single.fits,
    peakMiB: Math.round(p.peakMiB),
    boundaries: p.boundaries,
    layersPerGraph: p.layersPerGraph,
    ranksMs: p.ranksTimes.map((r) => [
      round(r.finishMs, 1),
      round(r.computeMs, 1),
      round(r.copyMs, 1),
      round(r.waitMs, 1),
    ]),
    ...(p.costModel
      ? { costModel: { boundaries: p.costModel.boundaries, projectedMs: round(p.costModel.projectedMs, 1) } }
      : {}),
  };
}

/** Every point of the grid, and per configuration the context length from which it beats one GPU. */
export function sweep(
  models: readonly ModelInput[],
  scenarios: readonly Scenario[],
  options: SweepOptions,
): { points: SweepPoint[]; crossovers: SweepCrossover[] } {
  const points: SweepPoint[] = [];
  const crossovers: SweepCrossover[] = [];
  const g = options.granularity;
  for (const model of models) {
    for (const scenario of scenarios) {
      for (const link of options.links) {
        const setup = setupOf(model, scenario, link, options);
        const singles = new Map<number, ConfigPoint>();
        const single = (c: number) => {
          let s = singles.get(c);
          if (!s) singles.set(c, (s = projectConfiguration(setup, model.memory, 'single', 1, c, g)));
          return s;
        };
        for (const c of options.contexts)
          points.push(toPoint(model.name, scenario.id, link, single(c), single(c)));
        for (const configuration of CONFIGURATIONS) {
          for (const ranks of options.ranks) {
            for (const c of options.contexts) {
              const p = projectConfiguration(
                setup,
                model.memory,
                configuration,
                ranks,
                c,
                g,
                scenario.layersPerGraph,
              );
              points.push(toPoint(model.name, scenario.id, link, p, single(c)));
            }
            const speedup = (c: number) =>
              single(c).ttftMs /
              projectConfiguration(setup, model.memory, configuration, ranks, c, g, scenario.layersPerGraph)
                .ttftMs;
            crossovers.push({
              model: model.name,
              scenario: scenario.id,
              linkGBps: link,
              configuration,
              ranks,
              crossover: crossover(speedup, options.crossoverRange[0], options.crossoverRange[1], g),
            });
          }
        }
      }
    }
  }
  return { points, crossovers };
}

// ---------------------------------------------------------------------------------------------
// Markdown

export const tokensLabel = (t: number) =>
  t >= 1024 && t % 1024 === 0 ? `${t / 1024}k` : `${(t / 1024).toFixed(1)}k`;

const CONFIG_LABEL: Record<Configuration | 'single', string> = {
  single: 'single',
  tsp: 'TSP',
  even: 'KV-Runahead even',
  balanced: 'KV-Runahead balanced',
};

export function configLabel(configuration: Configuration | 'single', ranks: number): string {
  return configuration === 'single' ? 'one GPU' : `${CONFIG_LABEL[configuration]}, ${ranks} GPUs`;
}

export function crossoverText(x: Crossover): string {
  switch (x.kind) {
    case 'always':
      return `≤ ${tokensLabel(x.from)}`;
    case 'from':
      return tokensLabel(x.contextLength);
    case 'never':
      return `never ≤ ${tokensLabel(x.upTo)}`;
  }
}

function table(
  head: readonly string[],
  align: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  return [`| ${head.join(' | ')} |`, `|${align.join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join(
    '\n',
  );
}

/** Rows: configuration × ranks; columns: links; cells: the context length from which it beats one GPU. */
export function crossoverTable(
  crossovers: readonly SweepCrossover[],
  model: string,
  scenario: string,
  links: readonly number[],
  ranks: readonly number[],
): string {
  const rows: string[][] = [];
  for (const configuration of CONFIGURATIONS) {
    for (const r of ranks) {
      rows.push([
        configLabel(configuration, r),
        ...links.map((link) => {
          const x = crossovers.find(
            (c) =>
              c.model === model &&
              c.scenario === scenario &&
              c.linkGBps === link &&
              c.configuration === configuration &&
              c.ranks === r,
          );
          return x ? crossoverText(x.crossover) : '';
        }),
      ]);
    }
  }
  return table(
    ['beats one GPU from', ...links.map((l) => `${l} GB/s`)],
    ['---', ...links.map(() => '---:')],
    rows,
  );
}

/**
 * The headline: rows configuration × ranks, columns scenarios, at one link; cells the length from
 * which it beats one GPU, then its speedup (and speedup / GPUs) at the longest context.
 */
export function headlineTable(
  crossovers: readonly SweepCrossover[],
  points: readonly SweepPoint[],
  model: string,
  link: number,
  scenarios: readonly string[],
  ranks: readonly number[],
): string {
  const longest = Math.max(...points.filter((p) => p.model === model).map((p) => p.contextLength));
  const rows: string[][] = [];
  for (const configuration of CONFIGURATIONS) {
    for (const r of ranks) {
      rows.push([
        configLabel(configuration, r),
        ...scenarios.map((scenario) => {
          const match = (x: {
            model: string;
            scenario: string;
            linkGBps: number;
            configuration: string;
            ranks: number;
          }) =>
            x.model === model &&
            x.scenario === scenario &&
            x.linkGBps === link &&
            x.configuration === configuration &&
            x.ranks === r;
          const x = crossovers.find(match);
          const p = points.find((q) => match(q) && q.contextLength === longest);
          if (!x || !p) return '';
          return `${crossoverText(x.crossover)}; ${p.speedup.toFixed(2)}× (${Math.round(p.efficiency * 100)}%)`;
        }),
      ]);
    }
  }
  return table(
    [`beats one GPU from; speedup (/ GPUs) at ${tokensLabel(longest)}`, ...scenarios],
    ['---', ...scenarios.map(() => '---:')],
    rows,
  );
}

/** Rows: configuration × ranks; columns: contexts; cells: speedup over one GPU and speedup / ranks. */
export function speedupTable(
  points: readonly SweepPoint[],
  model: string,
  scenario: string,
  link: number,
  contexts: readonly number[],
  ranks: readonly number[],
  /** Say which layers per graph each KV-Runahead point took. */
  tuned = false,
): string {
  const at = (configuration: Configuration | 'single', r: number, c: number) =>
    points.find(
      (p) =>
        p.model === model &&
        p.scenario === scenario &&
        p.linkGBps === link &&
        p.configuration === configuration &&
        p.ranks === r &&
        p.contextLength === c,
    );
  const oom = (fits: boolean | undefined) => (fits === false ? ' ‡' : '');
  const rows: string[][] = [
    [
      'one GPU, TTFT',
      ...contexts.map((c) => {
        const p = at('single', 1, c);
        return p ? `${(p.ttftMs / 1000).toFixed(2)} s${oom(p.fits)}` : '';
      }),
    ],
  ];
  for (const configuration of CONFIGURATIONS) {
    for (const r of ranks) {
      rows.push([
        configLabel(configuration, r),
        ...contexts.map((c) => {
          const p = at(configuration, r, c);
          if (!p) return '';
          const g = configuration !== 'tsp' && tuned ? ` g${p.layersPerGraph}` : '';
          const s = `${p.speedup.toFixed(2)}× (${Math.round(p.efficiency * 100)}%)${g}${oom(p.fits)}`;
          return p.speedup > 1 ? `**${s}**` : s;
        }),
      ]);
    }
  }
  return table(
    ['speedup over one GPU (speedup / GPUs)', ...contexts.map(tokensLabel)],
    ['---', ...contexts.map(() => '---:')],
    rows,
  );
}

/** The compute fit of each model: whole-model coefficients, per-layer terms and residuals. */
export function fitTable(models: readonly ModelInput[]): string {
  const rows = models.flatMap((m) =>
    m.fit.residuals.map((r, i) => [
      i === 0 ? m.name : '',
      i === 0
        ? `${m.fit.whole[0].toFixed(2)} + ${m.fit.whole[1].toExponential(4)}·C + ${m.fit.whole[2].toExponential(4)}·C²`
        : '',
      tokensLabel(r.contextLength),
      r.measuredMs.toFixed(1),
      r.fittedMs.toFixed(1),
      `${(((r.fittedMs - r.measuredMs) / r.measuredMs) * 100).toFixed(1)}%`,
    ]),
  );
  return table(
    ['model', 'TTFT(C) ms, fitted', 'tokens', 'measured ms', 'fitted ms', 'residual'],
    ['---', '---', '---:', '---:', '---:', '---:'],
    rows,
  );
}

export function termsTable(models: readonly ModelInput[]): string {
  const rows = models.map((m) => {
    const t = m.fit.terms;
    return [
      m.name,
      `${(m.fit.projectShare * 100).toFixed(1)}%`,
      (t.projectMsPerToken * 1e6).toFixed(1),
      (t.attendMsPerToken * 1e6).toFixed(1),
      (t.attendMsPerPair * 1e9).toFixed(2),
      t.fixedMs.toFixed(2),
      `${(m.fit.rmsRelativeError * 100).toFixed(1)}% / ${(m.fit.maxRelativeError * 100).toFixed(1)}%`,
      `${Math.round(m.memory.baseMiB)} + ${m.memory.miBPerToken.toFixed(3)}·C (through ${m.memory.through.map(tokensLabel).join(', ')})`,
    ];
  });
  return table(
    [
      'model',
      'q|k|v share φ',
      'project ns/token/layer',
      'attend ns/token/layer',
      'attend ps/pair/layer',
      'fixed ms',
      'rms / max residual',
      'peak GPU MiB (one rank, C tokens)',
    ],
    ['---', '---:', '---:', '---:', '---:', '---:', '---:', '---'],
    rows,
  );
}

const COPY_LABEL: Record<CopyMode, string> = {
  serial: 'serial; hidden state, q, k, v through the host at every graph boundary',
  'kv-serial': 'K/V serial (inside run()); hidden state stays on the GPU',
  'kv-overlapped': 'K/V on copy engines, overlapped with compute; hidden state stays on the GPU',
};

export function scenarioTable(scenarios: readonly Scenario[]): string {
  const rate = (x: number) => (x === Infinity ? 'no host' : `${x.toFixed(2)} GB/s`);
  return table(
    ['scenario', 'egress (GPU → host)', 'ingress (host → GPU)', 'copies', 'layers per graph (chain)', 'from'],
    ['---', '---:', '---:', '---', '---:', '---'],
    scenarios.map((s) => [
      `**${s.id}**: ${s.label}`,
      rate(s.egressGBps),
      rate(s.ingressGBps),
      COPY_LABEL[s.copies],
      s.layersPerGraph.length === 1 ? String(s.layersPerGraph[0]) : `best of ${s.layersPerGraph.join(', ')}`,
      s.source,
    ]),
  );
}

// ---------------------------------------------------------------------------------------------
// Plots

const RANK_COLORS: Record<number, string> = { 2: '#1f77b4', 4: '#ff7f0e', 8: '#2ca02c', 16: '#9467bd' };
const CONFIG_DASH: Record<Configuration, string | undefined> = {
  balanced: undefined,
  even: '7 4',
  tsp: '2 3',
};

/** Speedup over one GPU against context length, one line per configuration and rank count. */
export function speedupPlot(
  points: readonly SweepPoint[],
  model: string,
  scenario: Scenario,
  link: number,
  ranks: readonly number[],
  contexts: readonly number[],
): string {
  const series: PlotSeries[] = [];
  for (const r of ranks) {
    for (const configuration of [...CONFIGURATIONS].reverse()) {
      const dash = CONFIG_DASH[configuration];
      series.push({
        label: configLabel(configuration, r),
        color: RANK_COLORS[r] ?? '#555',
        ...(dash ? { dash } : {}),
        points: points
          .filter(
            (p) =>
              p.model === model &&
              p.scenario === scenario.id &&
              p.linkGBps === link &&
              p.configuration === configuration &&
              p.ranks === r,
          )
          .sort((a, b) => a.contextLength - b.contextLength)
          .map((p) => ({
            x: p.contextLength,
            y: p.speedup,
            hollow: !p.fits,
            note: `${configLabel(configuration, r)}, ${tokensLabel(p.contextLength)}: ${p.speedup.toFixed(2)}× (TTFT ${(p.ttftMs / 1000).toFixed(2)} s, one GPU ${(p.singleMs / 1000).toFixed(2)} s)${p.fits ? '' : ', does not fit'}`,
          })),
      });
    }
  }
  const oom = points
    .filter(
      (p) =>
        p.model === model &&
        p.scenario === scenario.id &&
        p.linkGBps === link &&
        p.configuration === 'single' &&
        !p.fits,
    )
    .map((p) => p.contextLength);
  const oneGpuOom = oom.length ? Math.min(...oom) : undefined;
  return linePlotSvg({
    title: `PROJECTION: ${model}, ${scenario.id}, ${link} GB/s link: TTFT speedup over one H200`,
    subtitle: [
      scenario.label,
      'No multi-GPU hardware was available. Solid: balanced; dashed: even; dotted: TSP; open marker: does not fit.',
    ],
    yLog: true,
    xLabel: 'prompt tokens (log scale)',
    yLabel: 'speedup over one GPU (log scale)',
    xTicks: contexts,
    xTickLabel: tokensLabel,
    series,
    guides: [
      {
        y: 1,
        label: oneGpuOom === undefined ? 'one GPU' : `one GPU (does not fit from ${tokensLabel(oneGpuOom)})`,
      },
      ...ranks.map((r) => ({ y: r, label: `ideal, ${r} GPUs` })),
    ],
  });
}
