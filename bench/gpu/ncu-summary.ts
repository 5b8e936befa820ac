// Where the GPU time of a profiled run goes: ncu's CSV (--metrics gpu__time_duration.sum --csv) summed
// by kernel name and by kind of work. Used by bench/gpu/run.sh's profile step.
//   node bench/gpu/ncu-summary.ts ncu.csv
import { readFileSync } from 'node:fs';

/** One CSV line of ncu's output, quoted fields. */
function fields(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const ch of line) {
    if (ch === '"') quoted = !quoted;
    else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

const KINDS: [string, RegExp][] = [
  ['attention (flash / memory-efficient)', /flash|fmha|attention|attn/i],
  ['matrix products (cuBLAS / CUTLASS)', /gemm|xmma|cutlass|sm90|sm80|cublas/i],
  ['normalization', /layernorm|layer_norm|rmsnorm|skip/i],
  ['rotary', /rotary/i],
  [
    'copies and layout (transpose, concat, slice, cast)',
    /transpose|concat|slice|copy|cast|gather|split|memcpy/i,
  ],
  ['elementwise (add, mul, sigmoid)', /elementwise|binary|unary|sigmoid|_add|_mul|add_|mul_/i],
];

const lines = readFileSync(process.argv[2]!, 'utf8').split('\n');
const header = lines.findIndex((l) => l.startsWith('"ID"'));
if (header < 0) throw new Error('no ncu CSV header ("ID",...) in the file');
const cols = fields(lines[header]!);
const name = cols.indexOf('Kernel Name');
const unit = cols.indexOf('Metric Unit');
const value = cols.indexOf('Metric Value');
const byName = new Map<string, { ms: number; count: number }>();
for (const line of lines.slice(header + 1)) {
  if (!line.startsWith('"')) continue;
  const f = fields(line);
  const scale = { ns: 1e-6, usecond: 1e-3, us: 1e-3, msecond: 1, ms: 1, nsecond: 1e-6 }[f[unit]!] ?? 1e-6;
  const ms = Number(f[value]!.replace(/,/g, '')) * scale;
  const k = f[name]!.slice(0, 120);
  const e = byName.get(k) ?? { ms: 0, count: 0 };
  e.ms += ms;
  e.count++;
  byName.set(k, e);
}
const total = [...byName.values()].reduce((t, e) => t + e.ms, 0);
const byKind = new Map<string, number>();
for (const [k, e] of byName) {
  const kind = KINDS.find(([, re]) => re.test(k))?.[0] ?? 'other';
  byKind.set(kind, (byKind.get(kind) ?? 0) + e.ms);
}
const pct = (ms: number) => `${((100 * ms) / total).toFixed(1)}%`;
const out = [
  `GPU time of all kernels: ${total.toFixed(1)} ms in ${[...byName.values()].reduce((t, e) => t + e.count, 0)} launches`,
  '',
  '| kind | ms | share |',
  '|---|---|---|',
  ...[...byKind].sort((a, b) => b[1] - a[1]).map(([k, ms]) => `| ${k} | ${ms.toFixed(1)} | ${pct(ms)} |`),
  '',
  '| kernel | launches | ms | share |',
  '|---|---|---|---|',
  ...[...byName]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, 25)
    .map(([k, e]) => `| \`${k}\` | ${e.count} | ${e.ms.toFixed(1)} | ${pct(e.ms)} |`),
];
process.stdout.write(`${out.join('\n')}\n`);
