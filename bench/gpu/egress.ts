// How fast tensors cross between the host and the GPU through onnxruntime-node's CUDA provider:
// what a chain rank pays to send its K/V (egress: a session output into JavaScript memory) and to
// take its predecessor's (ingress: a JavaScript array fed to a session), against tensor size. One
// fp16 graph per direction, on a dynamic length n, with next to no GPU work:
//   egress    Expand(one value, [n])  → y[n]   (the output is all that moves)
//   ingress   x[n] → Slice(x, 0, 1)   → y[1]   (the input is all that moves)
//   both      x[n] → Neg(x)           → y[n]
// Beside them, on the host alone: copying that many bytes between two JavaScript arrays, and
// allocating and filling a fresh one (first-touch page faults, which a fresh output pays).
// Prints one JSON line per (direction, size) and a markdown table on stderr.
//
//   node bench/gpu/egress.ts [--sizes-mib 8,32,128,512,2048] [--repeats 5] [--label default]
//     [--output-location cpu|cpu-pinned] [--ep cuda|cpu] [--dtype float16|float32]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { GraphBuilder, type BuiltModel } from '../../worker/onnx/graph-builder.ts';

const { values: a } = parseArgs({
  options: {
    'sizes-mib': { type: 'string', default: '8,32,128,512,2048' },
    repeats: { type: 'string', default: '5' },
    label: { type: 'string', default: 'default' },
    'output-location': { type: 'string', default: 'cpu' },
    // cpu: to try the script without a GPU
    ep: { type: 'string', default: 'cuda' },
    dtype: { type: 'string', default: 'float16' },
  },
});
const repeats = Number(a.repeats);
const sizes = a['sizes-mib'].split(',').map(Number);

const dtype = a.dtype === 'float32' ? 'float32' : 'float16';
const elementBytes = dtype === 'float32' ? 4 : 2;
/** A host array of n elements of the dtype, every one 1.0. */
const ones = (n: number) =>
  dtype === 'float32' ? new Float32Array(n).fill(1) : new Uint16Array(n).fill(0x3c00);

function graph(direction: 'egress' | 'ingress' | 'both'): BuiltModel {
  const g = new GraphBuilder(direction);
  if (direction === 'egress') {
    const one = g.input('one', dtype, [1]);
    const shape = g.input('shape', 'int64', [1]);
    g.output(g.node('Expand', [one, shape]), 'y', dtype, ['n']);
  } else if (direction === 'ingress') {
    const x = g.input('x', dtype, ['n']);
    const y = g.node('Slice', [x, g.int64s('starts', [0]), g.int64s('ends', [1])]);
    g.output(y, 'y', dtype, [1]);
  } else {
    const x = g.input('x', dtype, ['n']);
    g.output(g.node('Neg', [x]), 'y', dtype, ['n']);
  }
  return g.build();
}

const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function time(fn: () => unknown): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < repeats + 1; i++) {
    const t = performance.now();
    await fn();
    if (i > 0) ms.push(performance.now() - t);
  }
  return ms;
}

const location = a['output-location'] as 'cpu' | 'cpu-pinned';
const sessions = Object.fromEntries(
  await Promise.all(
    (['egress', 'ingress', 'both'] as const).map(async (d) => [
      d,
      await ort.InferenceSession.create(graph(d).bytes, {
        executionProviders: [a.ep === 'cpu' ? 'cpu' : { name: 'cuda', deviceId: 0 }],
        logSeverityLevel: 3,
        enableMemPattern: false,
        preferredOutputLocation: location,
      }),
    ]),
  ),
) as Record<'egress' | 'ingress' | 'both', ort.InferenceSession>;

const rows: string[] = [];
for (const mib of sizes) {
  const n = (mib * 2 ** 20) / elementBytes;
  const bytes = n * elementBytes;
  const x = new ort.Tensor(dtype, ones(n), [n]);
  const cases: Record<string, () => unknown> = {
    egress: () =>
      sessions.egress.run({
        one: new ort.Tensor(dtype, ones(1), [1]),
        shape: new ort.Tensor('int64', BigInt64Array.of(BigInt(n)), [1]),
      }),
    ingress: () => sessions.ingress.run({ x }),
    both: () => sessions.both.run({ x }),
    'host copy': () => {
      new Uint8Array(bytes).set(new Uint8Array((x.data as ArrayBufferView).buffer));
    },
    'host fresh array': () => new Uint8Array(bytes).fill(1),
  };
  const cells: string[] = [];
  for (const [what, fn] of Object.entries(cases)) {
    const ms = await time(fn);
    // "both" moves the bytes twice.
    const gbps = ((what === 'both' ? 2 : 1) * bytes) / 1e9 / (median(ms) / 1e3);
    process.stdout.write(
      `${JSON.stringify({ label: a.label, location, what, mib, medianMs: median(ms), gbps, ms })}\n`,
    );
    cells.push(`${median(ms).toFixed(1)} ms (${gbps.toFixed(2)} GB/s)`);
  }
  rows.push(`| ${mib} | ${cells.join(' | ')} |`);
}
process.stderr.write(
  [
    `${a.label}, outputs to ${location} (median of ${repeats} after one warm-up)`,
    '',
    '| MiB | egress | ingress | both ways | host copy | host fresh array |',
    '|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
  ].join('\n'),
);
