// bench/gpu/run.sh's raw output → the committed report: bench/results/h200-cuda.json (one row per
// engine, model and context length) and bench/results/h200-cuda.md (side-by-side table, the checks,
// the profile). Medians of the measured runs; peak GPU memory from the 50 ms samples inside each
// context's runs.
//   node bench/gpu/report.ts OUT_DIR [bench/results/h200-cuda]
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface ContextEvent {
  event: 'context';
  engine: 'runahead' | 'pytorch';
  model: string;
  contextLength: number;
  startMs: number;
  endMs: number;
  ttftMs?: number[];
  cacheFillMs?: number[];
  loadMs: number;
  label?: string;
  error?: string;
}

interface LoadEvent {
  event: 'load';
  model: string;
  label?: string;
  loadMs: number;
  breakdownMs?: Record<string, number>;
  memPattern?: boolean;
  layersPerGraph?: string;
}

export interface Row {
  readonly engine: 'runahead' | 'pytorch';
  readonly model: string;
  readonly contextLength: number;
  readonly ttftMs: number | null;
  readonly loadMs: number;
  readonly peakGpuMiB: number | null;
  readonly error?: string;
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: node bench/gpu/report.ts OUT_DIR [output path without extension]');
const target = process.argv[3] ?? 'bench/results/h200-cuda';
const read = (f: string) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : '');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

const samples = read('gpu-mem.log')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => l.split(' ').map(Number) as [number, number]);
const peak = (from: number, to: number) => {
  const inside = samples.filter(([t]) => t >= from && t <= to).map(([, mib]) => mib);
  return inside.length ? Math.max(...inside) : null;
};

const lines = (file: string) =>
  read(file)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as ContextEvent | LoadEvent);
const events = lines('runs.jsonl').filter((e): e is ContextEvent => e.event === 'context');
const rows: Row[] = events.map((e) => ({
  engine: e.engine,
  model: e.model,
  contextLength: e.contextLength,
  ttftMs: e.ttftMs?.length ? round(median(e.ttftMs)) : null,
  loadMs: Math.round(e.loadMs),
  peakGpuMiB: peak(e.startMs, e.endMs),
  ...(e.error ? { error: e.error } : {}),
}));
writeFileSync(`${target}.json`, `${JSON.stringify(rows, null, 2)}\n`);

const models = [...new Set(rows.map((r) => r.model))];
const md: string[] = [
  '# Single-rank TTFT on one H200: runahead (onnxruntime CUDA) beside PyTorch',
  '',
  `Made by \`bench/gpu/run.sh\` on the device, then \`node bench/gpu/report.ts\` (rows: \`${target}.json\`).`,
  '',
  '```',
  read('machine.txt').trim(),
  '```',
  '',
  'runahead: `bench/gpu/engine-bench.ts` — the engine of `runahead prefill --ep cuda --dtype float16`, one graph of',
  'the whole model, fused attention (GroupQueryAttention), logits of the last position only. PyTorch:',
  '`bench/gpu/pytorch_anchor.py` — transformers `LlamaForCausalLM` from a config, random weights, bf16, SDPA,',
  '`logits_to_keep=1`. Same prompt lengths, one process after the other on the same GPU. TTFT = median of the',
  "measured runs after a warm-up; peak = the most GPU memory `nvidia-smi` saw during that length's runs (the",
  "process's whole footprint: weights, CUDA context, arenas); load = model ready to run (runahead: synthetic",
  'weights generated and sessions created; PyTorch: model built on the GPU).',
  '',
];
for (const model of models) {
  const of = (engine: string, c: number) =>
    rows.find((r) => r.model === model && r.engine === engine && r.contextLength === c);
  const contexts = [...new Set(rows.filter((r) => r.model === model).map((r) => r.contextLength))].sort(
    (a, b) => a - b,
  );
  const load = (engine: string) => rows.find((r) => r.model === model && r.engine === engine)?.loadMs;
  md.push(
    `## ${model}`,
    '',
    `load: runahead ${load('runahead') ?? '-'} ms, PyTorch ${load('pytorch') ?? '-'} ms`,
    '',
    '| tokens | runahead TTFT ms | PyTorch TTFT ms | runahead / PyTorch | runahead peak GPU MiB | PyTorch peak GPU MiB |',
    '|---:|---:|---:|---:|---:|---:|',
  );
  for (const c of contexts) {
    const r = of('runahead', c);
    const p = of('pytorch', c);
    const cell = (x: Row | undefined) =>
      x?.ttftMs != null ? String(x.ttftMs) : x?.error ? `failed: ${x.error.slice(0, 60)}` : '-';
    const ratio = r?.ttftMs != null && p?.ttftMs != null ? `${(r.ttftMs / p.ttftMs).toFixed(2)}×` : '-';
    md.push(
      `| ${c} | ${cell(r)} | ${cell(p)} | ${ratio} | ${r?.peakGpuMiB ?? '-'} | ${p?.peakGpuMiB ?? '-'} |`,
    );
  }
  md.push('');
}
// experiments.jsonl: engine-bench runs with a --label (run.sh's memory and groups steps), each
// line after the load event of its process.
const experiment: string[] = [];
let load: LoadEvent | undefined;
for (const e of lines('experiments.jsonl')) {
  if (e.event === 'load') {
    load = e;
    continue;
  }
  const fill = e.cacheFillMs?.length ? round(median(e.cacheFillMs)) : '-';
  const ttft = e.ttftMs?.length ? round(median(e.ttftMs)) : `failed: ${e.error?.slice(0, 60)}`;
  experiment.push(
    `| ${e.label ?? '-'} | ${e.model} | ${e.contextLength} | ${load?.layersPerGraph ?? '-'} | ` +
      `${load?.memPattern === false ? 'off' : 'on'} | ${ttft} | ${fill} | ${peak(e.startMs, e.endMs) ?? '-'} | ` +
      `${Math.round(e.loadMs)} |`,
  );
}
if (experiment.length)
  md.push(
    '## Experiments (`bench/gpu/run.sh` steps memory and groups)',
    '',
    "One process per row group. fill = every layer's K/V of the prompt copied to the host (what decoding",
    'and a chain rank need), measured after the first token; layers/graph 0 = one graph of the model.',
    '',
    '| label | model | tokens | layers/graph | mem pattern | TTFT ms | fill ms | peak GPU MiB | load ms |',
    '|---|---|---:|---:|---|---:|---:|---:|---:|',
    ...experiment,
    '',
  );
const check = read('check.md').trim();
if (check) md.push('## Correctness on the GPU (`bench/gpu/check.ts`)', '', check, '');
const profile = read('profile.txt').trim();
if (profile)
  md.push('## Where the time goes: runahead, llama-7b, 8192 tokens (ncu, two prefills)', '', profile, '');
writeFileSync(`${target}.md`, `${md.join('\n')}\n`);
process.stdout.write(`${md.join('\n')}\n`);
