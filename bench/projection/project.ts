// PROJECTION of TTFT on 2, 4 and 8 H200s (issue 13, item 5) from what one H200 measured: the CUDA
// engine's single-rank TTFT and peak memory (bench/results/h200-cuda.json, .md), the host ↔ GPU rates
// (bench/results/h200-egress.jsonl). No multi-GPU hardware was available; every number it writes is
// a projection. The model is cli/bench/projection.ts (formulas in its header), the sweep and the
// report cli/bench/projection-report.ts.
//
//   node bench/projection/project.ts [--egress-gbps X] [--ingress-gbps Y] [--rates FILE [--rates-filter S]]
//     [--fixed-gbps 10] [--links 2,10,25,100] [--ranks 2,4,8] [--contexts 8192,16384,32768,65536,131072]
//     [--models synthetic:llama-7b,synthetic:llama3-8b] [--layers-per-graph 8] [--tune-layers-per-graph 1,2,4,8,16]
//     [--graph-overhead-ms 0.2] [--link-latency-ms 0.05] [--granularity 256] [--plot-link 25]
//     [--out bench/results/projection-h200]
//
// Scenarios: today (serial copies at the measured rates, graphs of --layers-per-graph layers), fixed
// (IO binding: hidden state on the GPU, K/V copied at --fixed-gbps inside run()), fixed-overlap (the same
// copies on copy engines while the GPU computes), gpu-direct (no host: K/V at the link rate). The last
// three take, per point, the best of --tune-layers-per-graph.
//
// --rates: measured rates instead of h200-egress.jsonl's medians for the "today" scenario: a JSON
// object {"egressGBps": …, "ingressGBps": …} or JSON lines of bench/gpu/egress.ts or native-egress.ts
// ({"what": "egress…"|"ingress…", "gbps": …}; the median of each direction, rows filtered by
// --rates-filter, a regular expression on "<label> <what>", or on "<what>" for rows without a label).
// --egress-gbps / --ingress-gbps win over both.
//
// --native-egress (default bench/results/h200-native-egress.jsonl, skipped when absent): the ort_io
// addon's measured rates into and out of reused pinned buffers ("egress → pinned", "ingress ← pinned"),
// the scenario ort-io.
//
// Writes <out>.json, <out>/*.svg and the generated parts of <out>.md (between the markers below; the
// reading written by hand between them survives a re-run).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEFAULT_LIMITS } from '../../core/protocol.ts';
import {
  crossoverText,
  crossoverTable,
  headlineTable,
  fitTable,
  scenarioTable,
  setupOf,
  speedupPlot,
  speedupTable,
  sweep,
  termsTable,
  tokensLabel,
  type ModelInput,
  type Scenario,
  type SweepOptions,
} from '../../cli/bench/projection-report.ts';
import {
  balancedSplit,
  fitCompute,
  fitEgressGBps,
  fitMemory,
  projectRunahead,
  projectSingle,
  tensorBytes,
} from '../../cli/bench/projection.ts';
import { presetConfig } from '../../worker/model/presets.ts';

const HEAD_BEGIN = '<!-- projection: generated header, from here -->';
const HEAD_END = '<!-- projection: generated header, to here -->';
const BEGIN = '<!-- projection: generated, from here -->';
const END = '<!-- projection: generated, to here -->';

const { values: a } = parseArgs({
  options: {
    cuda: { type: 'string', default: 'bench/results/h200-cuda.json' },
    'cuda-md': { type: 'string', default: 'bench/results/h200-cuda.md' },
    egress: { type: 'string', default: 'bench/results/h200-egress.jsonl' },
    'native-egress': { type: 'string', default: 'bench/results/h200-native-egress.jsonl' },
    rates: { type: 'string' },
    'rates-filter': { type: 'string', default: '' },
    'egress-gbps': { type: 'string' },
    'ingress-gbps': { type: 'string' },
    'fixed-gbps': { type: 'string', default: '10' },
    links: { type: 'string', default: '2,10,25,100' },
    ranks: { type: 'string', default: '2,4,8' },
    contexts: { type: 'string', default: '8192,16384,32768,65536,131072' },
    models: { type: 'string', default: 'synthetic:llama-7b,synthetic:llama3-8b' },
    'layers-per-graph': { type: 'string', default: '8' },
    'tune-layers-per-graph': { type: 'string', default: '1,2,4,8,16' },
    granularity: { type: 'string', default: '256' },
    'link-latency-ms': { type: 'string', default: '0.05' },
    'graph-overhead-ms': { type: 'string', default: '0.2' },
    'plot-link': { type: 'string', default: '25' },
    out: { type: 'string', default: 'bench/results/projection-h200' },
  },
});

const numbers = (s: string, flag: string) =>
  s.split(',').map((x) => {
    const v = Number(x);
    if (!(v > 0)) throw new Error(`--${flag}: positive numbers separated by commas, got "${s}"`);
    return v;
  });
const positive = (s: string | undefined, flag: string): number | undefined => {
  if (s === undefined) return undefined;
  const v = Number(s);
  if (!(v > 0)) throw new Error(`--${flag}: a positive number, got "${s}"`);
  return v;
};
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// ---- measurements ----------------------------------------------------------------------------

const CudaRow = z.object({
  engine: z.string(),
  model: z.string(),
  contextLength: z.number().int().positive(),
  ttftMs: z.number().positive().nullable(),
  peakGpuMiB: z.number().positive().nullable(),
});
const cudaRows = z.array(CudaRow).parse(JSON.parse(readFileSync(a.cuda, 'utf8')));
const cudaMd = existsSync(a['cuda-md']) ? readFileSync(a['cuda-md'], 'utf8') : '';
/** The GPU's memory as nvidia-smi reported it in the report's header ("NVIDIA H200, …, 143771 MiB"). */
const capacityMiB = Number(/NVIDIA H200, [^,\n]+, (\d+) MiB/.exec(cudaMd)?.[1] ?? 143771);

const RateRow = z.object({ what: z.string(), gbps: z.number().positive(), label: z.string().optional() });
function ratesFromJsonl(text: string, filter: RegExp): { egress?: number; ingress?: number } {
  const rows = text
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => RateRow.safeParse(JSON.parse(l)))
    .flatMap((r) => (r.success ? [r.data] : []))
    .filter((r) => filter.test(r.label === undefined ? r.what : `${r.label} ${r.what}`));
  const of = (prefix: string) => rows.filter((r) => r.what.startsWith(prefix)).map((r) => r.gbps);
  const e = of('egress');
  const i = of('ingress');
  return { ...(e.length ? { egress: median(e) } : {}), ...(i.length ? { ingress: median(i) } : {}) };
}
const measured = ratesFromJsonl(readFileSync(a.egress, 'utf8'), /.*/);
let egressSource = `median of all egress rows of ${a.egress}`;
let ingressSource = `median of all ingress rows of ${a.egress}`;
let todayEgress = measured.egress;
let todayIngress = measured.ingress;
if (a.rates) {
  const text = readFileSync(a.rates, 'utf8');
  const r = a.rates.endsWith('.jsonl')
    ? ratesFromJsonl(text, new RegExp(a['rates-filter']))
    : (({ egressGBps, ingressGBps }) => ({ egress: egressGBps, ingress: ingressGBps }))(
        z
          .object({
            egressGBps: z.number().positive().optional(),
            ingressGBps: z.number().positive().optional(),
          })
          .parse(JSON.parse(text)),
      );
  if (r.egress !== undefined) [todayEgress, egressSource] = [r.egress, `--rates ${a.rates}`];
  if (r.ingress !== undefined) [todayIngress, ingressSource] = [r.ingress, `--rates ${a.rates}`];
}
const flagEgress = positive(a['egress-gbps'], 'egress-gbps');
const flagIngress = positive(a['ingress-gbps'], 'ingress-gbps');
if (flagEgress !== undefined) [todayEgress, egressSource] = [flagEgress, '--egress-gbps'];
if (flagIngress !== undefined) [todayIngress, ingressSource] = [flagIngress, '--ingress-gbps'];
if (todayEgress === undefined || todayIngress === undefined)
  throw new Error(`no egress/ingress rates in ${a.egress}: give --egress-gbps and --ingress-gbps`);

const fixed = positive(a['fixed-gbps'], 'fixed-gbps')!;
const nativeRates = existsSync(a['native-egress'])
  ? ratesFromJsonl(readFileSync(a['native-egress'], 'utf8'), /^(egress → pinned|ingress ← pinned)$/)
  : {};
const layersPerGraph = Number(a['layers-per-graph']);
const tunedGroups = numbers(a['tune-layers-per-graph'], 'tune-layers-per-graph');
const scenarios: Scenario[] = [
  {
    id: 'today',
    label: `the engine as it is (onnxruntime-node): ${todayEgress.toFixed(2)} GB/s out, ${todayIngress.toFixed(2)} GB/s in, graphs of ${layersPerGraph} layers`,
    egressGBps: todayEgress,
    ingressGBps: todayIngress,
    copies: 'serial',
    layersPerGraph: [layersPerGraph],
    source: egressSource === ingressSource ? egressSource : `${egressSource}; ${ingressSource}`,
  },
  {
    id: 'fixed',
    label: `IO binding (ort_io): K/V copied at ${fixed} GB/s each way inside run(), hidden state on the GPU`,
    egressGBps: fixed,
    ingressGBps: fixed,
    copies: 'kv-serial',
    layersPerGraph: tunedGroups,
    source: "--fixed-gbps (issue 13's goal: ≥ 10 GB/s each way)",
  },
  ...(nativeRates.egress !== undefined && nativeRates.ingress !== undefined
    ? [
        {
          id: 'ort-io',
          label: `IO binding as measured: K/V at ${nativeRates.egress.toFixed(1)} GB/s out, ${nativeRates.ingress.toFixed(1)} GB/s in, inside run(); hidden state on the GPU`,
          egressGBps: nativeRates.egress,
          ingressGBps: nativeRates.ingress,
          copies: 'kv-serial' as const,
          layersPerGraph: tunedGroups,
          source: `medians of "egress → pinned" / "ingress ← pinned" in ${a['native-egress']}`,
        },
      ]
    : []),
  {
    id: 'fixed-overlap',
    label: `IO binding: K/V at ${fixed} GB/s each way on copy engines while the GPU computes, hidden state on the GPU`,
    egressGBps: fixed,
    ingressGBps: fixed,
    copies: 'kv-overlapped',
    layersPerGraph: tunedGroups,
    source: '--fixed-gbps',
  },
  {
    id: 'gpu-direct',
    label: 'no host staging: K/V from GPU to GPU at the link rate (NCCL-like, the paper’s setup)',
    egressGBps: Infinity,
    ingressGBps: Infinity,
    copies: 'kv-overlapped',
    layersPerGraph: tunedGroups,
    source: 'reference: the link alone',
  },
];

const models: ModelInput[] = a.models.split(',').map((name) => {
  const rows = cudaRows.filter((r) => r.engine === 'runahead' && r.model === name && r.ttftMs !== null);
  const shape = presetConfig(name.replace(/^synthetic:/, ''));
  return {
    name,
    shape,
    fit: fitCompute(
      rows.map((r) => ({ contextLength: r.contextLength, ttftMs: r.ttftMs! })),
      shape,
    ),
    memory: fitMemory(
      rows.flatMap((r) =>
        r.peakGpuMiB ? [{ contextLength: r.contextLength, peakGpuMiB: r.peakGpuMiB }] : [],
      ),
      capacityMiB,
    ),
  };
});
const pytorch = a.models.split(',').map((name) => {
  const rows = cudaRows.filter((r) => r.engine === 'pytorch' && r.model === name && r.ttftMs !== null);
  return rows.length >= 3
    ? {
        name,
        fit: fitCompute(
          rows.map((r) => ({ contextLength: r.contextLength, ttftMs: r.ttftMs! })),
          presetConfig(name.replace(/^synthetic:/, '')),
        ),
      }
    : null;
});

const options: SweepOptions = {
  links: numbers(a.links, 'links'),
  ranks: numbers(a.ranks, 'ranks'),
  contexts: numbers(a.contexts, 'contexts'),
  granularity: Number(a.granularity),
  linkLatencyMs: Number(a['link-latency-ms']),
  // kv-outbox.ts: own K/V wait in the outbox up to maxQueuedFrames × maxFrameBytes per link, and the
  // link queues as many again.
  queueBytes: 2 * DEFAULT_LIMITS.maxQueuedFrames * DEFAULT_LIMITS.maxFrameBytes,
  graphOverheadMs: Number(a['graph-overhead-ms']),
  crossoverRange: [2048, Math.max(...numbers(a.contexts, 'contexts'))],
};
const plotLink = Number(a['plot-link']);

// ---- the engine check: a rank alone with graphs of g layers (h200-cuda.md, experiments) --------

const groupRuns = [
  ...cudaMd.matchAll(/^\| layers per graph \| (synthetic:[\w-]+) \| (\d+) \| (\d+) \| \w+ \| ([\d.]+) \|/gm),
].map((m) => ({
  model: m[1]!,
  contextLength: Number(m[2]),
  layersPerGraph: Number(m[3]),
  ttftMs: Number(m[4]),
}));
const engineCheck = models.flatMap((m) => {
  const runs = groupRuns.filter((r) => r.model === m.name && r.layersPerGraph > 0);
  const c = runs[0]?.contextLength;
  if (c === undefined) return [];
  const same = runs.filter((r) => r.contextLength === c);
  const base = setupOf(m, scenarios[0]!, plotLink, options);
  const oneGraph = groupRuns.find(
    (r) => r.model === m.name && r.layersPerGraph === 0 && r.contextLength === c,
  );
  const fit = fitEgressGBps(base, c, same);
  return [
    {
      model: m.name,
      contextLength: c,
      oneGraphMeasuredMs: oneGraph?.ttftMs ?? null,
      oneGraphFittedMs: projectSingle(base, c).ttftMs,
      runs: same.map((r, i) => ({
        layersPerGraph: r.layersPerGraph,
        measuredMs: r.ttftMs,
        projectedAtTodayMs: projectRunahead({ ...base, layersPerGraph: r.layersPerGraph }, [0, c]).ttftMs,
        projectedAtFittedMs: fit.predictedMs[i]!,
      })),
      fittedEgressGBps: fit.egressGBps,
      fittedRmsRelativeError: fit.rmsRelativeError,
    },
  ];
});

// ---- the sweep ---------------------------------------------------------------------------------

const started = performance.now();
const { points, crossovers } = sweep(models, scenarios, options);

/** Layers per graph against speedup, balanced, for one point per model and scenario. */
const sensitivityGroups = [1, 2, 4, 8, 16];
const sensitivityRanks = 4;
const sensitivityContexts = [32768, 131072].filter((c) => c <= Math.max(...options.contexts));
const sensitivity = models.flatMap((m) =>
  scenarios
    .filter((s) => s.id !== 'gpu-direct')
    .flatMap((s) =>
      sensitivityContexts.map((c) => ({
        model: m.name,
        scenario: s.id,
        contextLength: c,
        speedups: sensitivityGroups.map((g) => {
          const setup = { ...setupOf(m, s, plotLink, options), layersPerGraph: g };
          return (
            projectSingle(setup, c).ttftMs /
            balancedSplit(setup, c, sensitivityRanks, options.granularity).ttftMs
          );
        }),
      })),
    ),
);
const sweepSeconds = (performance.now() - started) / 1000;

// ---- write -------------------------------------------------------------------------------------

const quote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`);
const command = ['node bench/projection/project.ts', ...process.argv.slice(2).map(quote)].join(' ');
const outDir = a.out;
mkdirSync(outDir, { recursive: true });
const plotFiles: string[] = [];
for (const m of models) {
  for (const s of scenarios) {
    const file = `${outDir}/${m.name.replace(/^synthetic:/, '')}-${s.id}-${plotLink}gbps.svg`;
    writeFileSync(file, speedupPlot(points, m.name, s, plotLink, options.ranks, options.contexts));
    plotFiles.push(file);
  }
}

const head = {
  kind: 'projection',
  note: 'PROJECTION from single-H200 measurements; no multi-GPU hardware was available',
  command,
  date: new Date().toISOString(),
  inputs: {
    cuda: a.cuda,
    cudaMd: a['cuda-md'],
    egress: a.egress,
    rates: a.rates ?? null,
    capacityMiB,
    granularity: options.granularity,
    linkLatencyMs: options.linkLatencyMs,
    queueBytes: options.queueBytes,
    graphOverheadMs: options.graphOverheadMs,
  },
  models: models.map((m) => ({
    name: m.name,
    kvBytesPerTokenLayer: tensorBytes(m.shape).kv,
    numLayers: m.shape.numLayers,
    fit: m.fit,
    memory: m.memory,
  })),
  pytorchFits: pytorch.flatMap((p) =>
    p ? [{ name: p.name, whole: p.fit.whole, residuals: p.fit.residuals }] : [],
  ),
  scenarios: scenarios.map((s) => ({
    ...s,
    egressGBps: s.egressGBps === Infinity ? null : s.egressGBps,
    ingressGBps: s.ingressGBps === Infinity ? null : s.ingressGBps,
  })),
  engineCheck,
  crossovers,
  sensitivity: {
    ranks: sensitivityRanks,
    linkGBps: plotLink,
    layersPerGraph: sensitivityGroups,
    rows: sensitivity,
  },
};
// One point per line: readable, and a re-run's diff shows which points moved.
const headText = JSON.stringify(head, null, 1);
writeFileSync(
  `${a.out}.json`,
  `${headText.slice(0, -2)},\n "points": [\n${points.map((p) => `  ${JSON.stringify(p)}`).join(',\n')}\n ]\n}\n`,
);

const gbps = (x: number) => `${x.toFixed(2)} GB/s`;
const header = [
  '# PROJECTION: TTFT of single, TSP and KV-Runahead on 2, 4 and 8 H200s',
  '',
  '**This is a projection, not a measurement: no multi-GPU hardware was available.** It is computed from',
  'single-H200 measurements by the model in `cli/bench/projection.ts`; it is the plan the multi-GPU runs will check.',
  '',
  'Made by (from the repository root, Node.js 24):',
  '',
  '```sh',
  command,
  '```',
  '',
  `Inputs: \`${a.cuda}\` (single-rank TTFT and peak GPU memory of the CUDA engine), \`${a['cuda-md']}\` (its`,
  `layers-per-graph experiment), \`${a.egress}\`${a.rates ? ` and \`${a.rates}\`` : ''} (host ↔ GPU rates through onnxruntime-node)${nativeRates.egress !== undefined ? `, \`${a['native-egress']}\` (through the ort_io addon)` : ''}. Output: \`${a.out}.json\` (every`,
  `point, every split, per-rank compute/copy/wait), the plots in \`${outDir}/\`. Sweep: ${sweepSeconds.toFixed(0)} s on this machine.`,
].join('\n');

const sections: string[] = [];
sections.push(
  `## Headline: at the ${plotLink} GB/s link, by scenario`,
  '',
  `Each cell: the context length from which the configuration beats one GPU (up to ${tokensLabel(options.crossoverRange[1])}), then its`,
  `speedup over one GPU at ${tokensLabel(options.crossoverRange[1])} and, in parentheses, speedup / GPUs (100% = ideal scaling). Scenarios below.`,
  '',
);
for (const m of models) {
  sections.push(
    `### ${m.name}`,
    '',
    headlineTable(
      crossovers,
      points,
      m.name,
      plotLink,
      scenarios.map((s) => s.id),
      options.ranks,
    ),
    '',
  );
}
sections.push(
  '## From which context length each configuration beats one GPU, by link',
  '',
  `Per model and data-path scenario; columns are the link between GPUs (each direction, per GPU). "never ≤ ${tokensLabel(options.crossoverRange[1])}"`,
  `= slower than one GPU at every length up to ${tokensLabel(options.crossoverRange[1])}; "≤ 2k" = already faster at 2k. Found on a grid of`,
  'four lengths per octave from 2k, then bisected; a configuration counts as beating one GPU from a length if it',
  'does at every longer one.',
  '',
);
for (const m of models) {
  for (const s of scenarios) {
    sections.push(
      `### ${m.name}, ${s.id}`,
      '',
      crossoverTable(crossovers, m.name, s.id, options.links, options.ranks),
      '',
    );
  }
}
sections.push(
  '## Scenarios',
  '',
  scenarioTable(scenarios),
  '',
  `Links: ${options.links.map((l) => `${l} GB/s`).join(', ')}, ${options.linkLatencyMs} ms per transfer. A rank with serial or kv-serial`,
  `copies waits before its next graph while more than ${options.queueBytes / 2 ** 20} MiB of its own K/V are unsent (the outbox and the link queue,`,
  '`worker/chain/kv-outbox.ts`, each maxQueuedFrames × maxFrameBytes of `core/protocol.ts`); only the wait that outlasts the graph before counts.',
  `GPU memory ${capacityMiB} MiB (nvidia-smi in \`${a['cuda-md']}\`). Split granularity ${options.granularity} tokens. Every graph`,
  `run after a rank's first costs ${options.graphOverheadMs} ms (onnxruntime's run() and the hop to the compute thread: assumed,`,
  'not measured; the single-rank fit holds the one run of a rank alone). TSP runs graphs of one stage, as the engine needs.',
  '',
);
sections.push(
  '## Speedup tables',
  '',
  `Speedup over one GPU and, in parentheses, speedup / GPUs (100% = ideal scaling), at the ${plotLink} GB/s link;`,
  "bold where faster than one GPU; ‡ = the configuration does not fit in one H200's memory (projected peak of its",
  'largest rank; for "one GPU" the single rank). Every other link is in the JSON.',
  '',
);
for (const m of models) {
  for (const s of scenarios) {
    sections.push(
      `### ${m.name}, ${s.id}, ${plotLink} GB/s`,
      '',
      speedupTable(
        points,
        m.name,
        s.id,
        plotLink,
        options.contexts,
        options.ranks,
        s.layersPerGraph.length > 1,
      ),
      '',
      `![speedup](${outDir.replace(/^bench\/results\//, '')}/${m.name.replace(/^synthetic:/, '')}-${s.id}-${plotLink}gbps.svg)`,
      '',
    );
  }
}
sections.push(
  '## The compute fit',
  '',
  'One H200, the CUDA engine (one graph of the whole model, float16, fused attention), runahead rows of',
  `\`${a.cuda}\`. TTFT(C) = f + λ·C + κ·C² by relative least squares (core/calibration.ts \`fitNonNegative\`):`,
  '',
  fitTable(models),
  '',
  'Per layer: project = φ·λ/L per token (φ = the q|k|v share of the linear FLOPs, from the shapes), attend = (1 − φ)·λ/L',
  'per token + α per causal (query, key) pair, α = 2κ/L (flash attention skips masked blocks: a chunk of c queries',
  'after s keys computes c·s + c²/2 pairs). Memory: the line through the two longest measured lengths; a chain rank',
  'is charged the line at its own chunk plus the past K/V of the layers one graph attends.',
  '',
  termsTable(models),
  '',
);
const torch = pytorch.flatMap((p) => (p ? [p] : []));
if (torch.length) {
  sections.push(
    'PyTorch (bf16, SDPA) on the same GPU, same fit, for comparison: ' +
      torch
        .map(
          (p) =>
            `${p.name} ${p.fit.whole[0].toFixed(2)} + ${p.fit.whole[1].toExponential(4)}·C + ${p.fit.whole[2].toExponential(4)}·C² (max residual ${(p.fit.maxRelativeError * 100).toFixed(1)}%)`,
        )
        .join('; ') +
      '.',
    '',
  );
}
if (engineCheck.length) {
  sections.push(
    '## Check against the engine: one rank, graphs of g layers (serial copies)',
    '',
    `\`${a['cuda-md']}\`, experiments "layers per graph": every graph boundary moves hidden, q, k, v out and back in.`,
    `Projected at today's rates (${gbps(todayEgress)} out, ${gbps(todayIngress)} in) and at the egress rate fitted to these rows:`,
    '',
    '| model | tokens | layers per graph | measured ms | projected at today ms | projected at fitted egress ms |',
    '|---|---:|---:|---:|---:|---:|',
    ...engineCheck.flatMap((e) =>
      e.runs.map(
        (r) =>
          `| ${e.model} | ${e.contextLength} | ${r.layersPerGraph} | ${r.measuredMs.toFixed(0)} | ${r.projectedAtTodayMs.toFixed(0)} | ${r.projectedAtFittedMs.toFixed(0)} |`,
      ),
    ),
    '',
    ...engineCheck.map(
      (e) =>
        `${e.model}: fitted egress ${gbps(e.fittedEgressGBps)} (rms residual ${(e.fittedRmsRelativeError * 100).toFixed(1)}%); the one-graph run measured ${e.oneGraphMeasuredMs ?? '–'} ms, the fit gives ${e.oneGraphFittedMs.toFixed(0)} ms.`,
    ),
    '',
  );
}
sections.push(
  `## Layers per graph: balanced KV-Runahead on ${sensitivityRanks} GPUs, ${plotLink} GB/s link`,
  '',
  'Speedup over one GPU by the layers per graph of a chain rank (the transfer unit of the chain):',
  '',
  `| model | scenario | tokens | ${sensitivityGroups.map((g) => `g = ${g}`).join(' | ')} |`,
  `|---|---|---:|${sensitivityGroups.map(() => '---:').join('|')}|`,
  ...sensitivity.map(
    (r) =>
      `| ${r.model} | ${r.scenario} | ${tokensLabel(r.contextLength)} | ${r.speedups.map((x) => `${x.toFixed(2)}×`).join(' | ')} |`,
  ),
  '',
);
sections.push(
  "## Balanced: the repo's search against the cost model, and the split refined here",
  '',
  'The balanced split starts from `searchBalanced` (core/partition-search.ts) on cost-model coefficients that',
  'approximate each scenario (`costCoefficients`), then a pattern search against this projection from that split,',
  "from even and from equal compute. What the cost model's split alone would give, at the plotted link:",
  '',
  '| model | scenario | GPUs | tokens | cost-model split | its TTFT ms | refined split | its TTFT ms |',
  '|---|---|---:|---:|---|---:|---|---:|',
  ...points
    .filter(
      (p) =>
        p.configuration === 'balanced' &&
        p.linkGBps === plotLink &&
        p.costModel &&
        (p.contextLength === 32768 || p.contextLength === Math.max(...options.contexts)) &&
        (p.scenario === 'fixed' || p.scenario === 'fixed-overlap'),
    )
    .map(
      (p) =>
        `| ${p.model} | ${p.scenario} | ${p.ranks} | ${tokensLabel(p.contextLength)} | ${p.costModel!.boundaries.join(',')} | ${p.costModel!.projectedMs.toFixed(0)} | ${p.boundaries.join(',')} | ${p.ttftMs.toFixed(0)} |`,
    ),
  '',
);
const generated = sections.join('\n');

const mdPath = `${a.out}.md`;
const previous = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
const between = (text: string, begin: string, end: string) => {
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  return i >= 0 && j > i ? { before: text.slice(0, i), after: text.slice(j + end.length) } : null;
};
const headParts = between(previous, HEAD_BEGIN, HEAD_END);
const bodyParts = between(previous, BEGIN, END);
const middle =
  headParts && bodyParts
    ? previous.slice(previous.indexOf(HEAD_END) + HEAD_END.length, previous.indexOf(BEGIN))
    : '\n\n## Reading it (written by hand after the run)\n\n(to be written)\n\n';
const tail = bodyParts ? bodyParts.after : '\n';
writeFileSync(
  mdPath,
  `${headParts?.before ?? ''}${HEAD_BEGIN}\n${header}\n${HEAD_END}${middle}${BEGIN}\n${generated}\n${END}${tail}`,
);
process.stderr.write(
  `wrote ${mdPath}, ${a.out}.json and ${plotFiles.length} plots in ${sweepSeconds.toFixed(0)} s; ` +
    `crossovers at ${plotLink} GB/s, fixed: ${crossovers
      .filter((c) => c.scenario === 'fixed' && c.linkGBps === plotLink && c.configuration === 'balanced')
      .map((c) => `${c.model} ${c.ranks}: ${crossoverText(c.crossover)}`)
      .join('; ')}\n`,
);
