// Peak RSS per rank against context length (issue 13, item 1): runs `runahead run --json` once per
// (ranks, context), reads each rank's peakRssBytes, and writes <out>.json (every point measured so
// far), <out>.svg (the plot) and the generated part of <out>.md (between the markers below; text
// outside them is kept, so the reading written by hand survives a re-run).
//
//   node bench/memory-sweep.ts [--contexts 1024,2048,4096,8192,16384,32768] [--ranks 2,4]
//     [--single-contexts 1024,…] [--model synthetic:small] [--threads 1]
//     [--out bench/results/cpu-small-memory] [--resume]
//
// Points run in the order given: all contexts of the first --ranks, then the next, then single mode
// (one rank) for --single-contexts. --resume skips points already in <out>.json and adds to it, so a
// sweep can be run in parts (each part's command is listed in the report). Progress goes to stderr.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { machineDescription } from '../cli/bench/machine.ts';
import {
  GIB,
  kvBytesPerToken,
  memoryPlot,
  memoryTable,
  seriesKey,
  type MemoryMode,
  type MemoryPoint,
} from '../cli/bench/memory-report.ts';
import { presetConfig } from '../worker/model/presets.ts';

const BEGIN = '<!-- memory-sweep: generated, from here -->';
const END = '<!-- memory-sweep: generated, to here -->';

const { values: a } = parseArgs({
  options: {
    contexts: { type: 'string', default: '1024,2048,4096,8192,16384,32768' },
    ranks: { type: 'string', default: '2,4' },
    'single-contexts': { type: 'string', default: '' },
    model: { type: 'string', default: 'synthetic:small' },
    threads: { type: 'string', default: '1' },
    out: { type: 'string', default: 'bench/results/cpu-small-memory' },
    resume: { type: 'boolean', default: false },
  },
});

/** MALLOC_* variables of this environment, which the launcher passes on over its own. */
function mallocEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env)
      .filter((e): e is [string, string] => e[0].startsWith('MALLOC_') && e[1] !== undefined)
      .sort(([x], [y]) => x.localeCompare(y)),
  );
}

const list = (s: string) => (s ? s.split(',').map(Number) : []);
const preset = a.model.replace(/^synthetic:/, '');
if (preset === a.model) throw new Error('--model: a synthetic:<preset> (the KV arithmetic reads its config)');
const kvPerToken = kvBytesPerToken(presetConfig(preset), 4); // float32, the run's default dtype

interface Results {
  readonly version: 1;
  readonly model: string;
  readonly threads: number;
  readonly kvBytesPerToken: number;
  readonly machine: string;
  readonly commands: string[];
  /** glibc settings given in the environment (they override the launcher's MALLOC_TUNING_ENV). */
  readonly mallocEnv: Record<string, string>;
  readonly points: (MemoryPoint & {
    readonly commit: string;
    readonly date: string;
    /** 1-minute load average before and after the run: TTFT on a shared machine is not a speed figure. */
    readonly load: readonly [number, number];
  })[];
}

const jsonPath = `${a.out}.json`;
const command = [
  ...Object.entries(mallocEnv()).map(([k, v]) => `${k}=${v}`),
  'node bench/memory-sweep.ts',
  ...process.argv.slice(2),
].join(' ');
const results: Results =
  a.resume && existsSync(jsonPath)
    ? (JSON.parse(readFileSync(jsonPath, 'utf8')) as Results)
    : {
        version: 1,
        model: a.model,
        threads: Number(a.threads),
        kvBytesPerToken: kvPerToken,
        machine: machineDescription(),
        commands: [],
        mallocEnv: mallocEnv(),
        points: [],
      };
if (
  results.model !== a.model ||
  results.threads !== Number(a.threads) ||
  JSON.stringify(results.mallocEnv) !== JSON.stringify(mallocEnv())
)
  throw new Error(
    `${jsonPath} holds ${results.model}, ${results.threads} thread(s), glibc ${JSON.stringify(results.mallocEnv)}; this run: ${a.model}, ${a.threads}, ${JSON.stringify(mallocEnv())}: --resume only adds points measured alike`,
  );
results.commands.push(command);

const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
const plan: { mode: MemoryMode; ranks: number; context: number }[] = [
  ...list(a.ranks).flatMap((ranks) =>
    list(a.contexts).map((context) => ({ mode: 'runahead' as const, ranks, context })),
  ),
  ...list(a['single-contexts']).map((context) => ({ mode: 'single' as const, ranks: 1, context })),
];
const todo = plan.filter(
  (p) => !results.points.some((q) => seriesKey(q) === seriesKey(p) && q.context === p.context),
);

interface RunJson {
  readonly ttftMs: number;
  readonly boundaries: readonly number[];
  readonly ranks: readonly { rank: number; chunk: readonly [number, number]; peakRssBytes: number }[];
}

/** One prefill; its JSON result, or an error with the end of its log. */
function runOnce(mode: MemoryMode, ranks: number, context: number): Promise<RunJson> {
  const args = [
    'bin/runahead.js',
    'run',
    '--mode',
    mode,
    '--ranks',
    String(ranks),
    '--threads',
    a.threads,
    '--model',
    a.model,
    '--prompt-tokens',
    String(context),
    // Two busy cores: a rank may wait minutes for its predecessor, and a run take most of an hour.
    '--peer-timeout-ms',
    '1800000',
    '--run-timeout-ms',
    '3600000',
    '--json',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out) as RunJson);
      else reject(new Error(`runahead run exited with ${code}:\n${err}`));
    });
  });
}

function loadRange(points: Results['points']): string {
  const all = points.flatMap((p) => p.load);
  return all.length === 0 ? '–' : `${Math.min(...all).toFixed(1)}–${Math.max(...all).toFixed(1)}`;
}

function write(): void {
  writeFileSync(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  const points = results.points;
  const title = `Peak RSS per rank, ${a.model} on the CPU (--threads ${a.threads})`;
  writeFileSync(`${a.out}.svg`, memoryPlot(points, kvPerToken, title));
  const generated = [
    BEGIN,
    '',
    'Made by (each part of the sweep, in order; `--resume` adds to the points already measured):',
    '',
    '```sh',
    ...results.commands,
    '```',
    '',
    `Machine: ${results.machine}; 1-minute load average during the runs ${loadRange(points)}. ` +
      `Code at ${[...new Set(points.map((p) => p.commit))].join(', ')}. glibc: ` +
      (Object.keys(results.mallocEnv).length === 0
        ? "the launcher's MALLOC_TUNING_ENV (worker/runtime/ort.ts)"
        : Object.entries(results.mallocEnv)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')) +
      `. Whole KV-cache of ${a.model} in float32: ${kvPerToken} bytes per token.`,
    '',
    memoryTable(points, kvPerToken),
    '',
    `![peak RSS per rank against prompt tokens](${basename(a.out)}.svg)`,
    '',
    END,
  ].join('\n');
  const mdPath = `${a.out}.md`;
  const old = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '';
  const [i, j] = [old.indexOf(BEGIN), old.indexOf(END)];
  const md =
    i >= 0 && j > i
      ? old.slice(0, i) + generated + old.slice(j + END.length)
      : `# Peak memory per rank against context length: ${a.model} on the CPU\n\n${generated}\n`;
  writeFileSync(mdPath, md);
}

const started = performance.now();
process.stderr.write(`memory sweep: ${todo.length} of ${plan.length} point(s) to run\n`);
for (const [n, p] of todo.entries()) {
  const what = `[${n + 1}/${todo.length}] ${p.mode}, ${p.ranks} rank(s), ${p.context} tokens`;
  process.stderr.write(`${what} …\n`);
  const t0 = performance.now();
  const load0 = loadavg()[0]!;
  let r: RunJson;
  try {
    r = await runOnce(p.mode, p.ranks, p.context);
  } catch (err) {
    process.stderr.write(`${what}: FAILED, left out: ${(err as Error).message}\n`);
    continue;
  }
  const wallMs = performance.now() - t0;
  const point = {
    ...p,
    chunks: r.ranks.map((x) => x.chunk),
    peakRssBytes: r.ranks.map((x) => x.peakRssBytes),
    ttftMs: r.ttftMs,
    wallMs,
    commit,
    date: new Date().toISOString(),
    load: [load0, loadavg()[0]!] as const,
  };
  results.points.push(point);
  write();
  process.stderr.write(
    `${what}: peak RSS ${point.peakRssBytes.map((b) => (b / GIB).toFixed(2)).join(', ')} GiB, ` +
      `TTFT ${(r.ttftMs / 1000).toFixed(1)} s, ${(wallMs / 1000).toFixed(0)} s wall ` +
      `(sweep ${((performance.now() - started) / 60000).toFixed(1)} min)\n`,
  );
}
write();
