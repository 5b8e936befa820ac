// Host ↔ GPU through the ort_io addon (worker/runtime/native-session.ts): the same three graphs as
// egress.ts (onnxruntime-node), with outputs written into host buffers that are allocated once and
// reused — pinned (cudaHostAlloc) or pageable — instead of a fresh buffer per run. Also: K/V of a
// whole layer group as 64 outputs of one run, K/V quantized to int8 in the graph before they leave
// (rates count the float16 bytes they stand for), and the device alone (outputs left on the GPU).
// Prints one JSON line per (case, size) and a markdown table on stderr.
//
//   node bench/gpu/native-egress.ts [--sizes-mib 2,8,32,128,512,2048] [--repeats 5] [--ep cuda|cpu]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { GraphBuilder, int, onnxDType } from '../../worker/onnx/graph-builder.ts';
import {
  NativeSession,
  allocHost,
  type Feed,
  type OutputTarget,
} from '../../worker/runtime/native-session.ts';

const { values: a } = parseArgs({
  options: {
    'sizes-mib': { type: 'string', default: '2,8,32,128,512,2048' },
    repeats: { type: 'string', default: '5' },
    ep: { type: 'string', default: 'cuda' },
  },
});
const repeats = Number(a.repeats);
const sizes = a['sizes-mib'].split(',').map(Number);
const ep = a.ep === 'cpu' ? 'cpu' : 'cuda';
/** Outputs of the layer-group case: K and V of 32 layers. */
const GROUP = 64;

type Graph = 'egress' | 'ingress' | 'both' | 'group' | 'int8';

function graph(kind: Graph): Uint8Array {
  const g = new GraphBuilder(kind);
  if (kind === 'ingress') {
    const x = g.input('x', 'float16', ['n']);
    g.output(g.node('Slice', [x, g.int64s('starts', [0]), g.int64s('ends', [1])]), 'y', 'float16', [1]);
  } else if (kind === 'both') {
    const x = g.input('x', 'float16', ['n']);
    g.output(g.node('Neg', [x]), 'y', 'float16', ['n']);
  } else {
    const one = g.input('one', 'float16', [1]);
    const shape = g.input('shape', 'int64', [1]);
    if (kind === 'egress') g.output(g.node('Expand', [one, shape]), 'y', 'float16', ['n']);
    if (kind === 'int8') {
      // (QuantizeLinear takes float16 only from opset 19; the graphs here are older)
      const y = g.node('Cast', [g.node('Expand', [one, shape])], { to: int(onnxDType('float32')) });
      const scale = g.initializer('scale', 'float32', [], Float32Array.of(1 / 128));
      const zero = g.initializer('zero', 'int8', [], Int8Array.of(0));
      g.output(g.node('QuantizeLinear', [y, scale, zero]), 'y', 'int8', ['n']);
    }
    if (kind === 'group')
      for (let i = 0; i < GROUP; i++) g.output(g.node('Expand', [one, shape]), `y${i}`, 'float16', ['n']);
  }
  return g.build().bytes;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

function time(fn: () => unknown): number[] {
  const ms: number[] = [];
  for (let i = 0; i < repeats + 1; i++) {
    const t = performance.now();
    fn();
    if (i > 0) ms.push(performance.now() - t);
  }
  return ms;
}

const sessions = new Map<Graph, NativeSession>();
const session = (kind: Graph) => {
  let s = sessions.get(kind);
  if (!s) {
    s = NativeSession.create(graph(kind), { ep, threads: 0, memPattern: false });
    sessions.set(kind, s);
  }
  return s;
};
session('egress'); // the CUDA runtime is loaded from here on: allocHost pins
const pinnedProbe = allocHost(4096).pinned;
process.stderr.write(`host buffers pinned: ${pinnedProbe}\n`);

const columns = [
  'egress → pinned',
  'egress → pageable, reused',
  'egress → onnxruntime host buffer',
  'egress, 64 outputs → pinned',
  'egress int8 → pinned',
  'ingress ← pinned',
  'ingress ← pageable',
  'both ways, pinned',
  'device only',
];
const rows: string[] = [];
for (const mib of sizes) {
  const n = (mib * 2 ** 20) / 2;
  const bytes = n * 2;
  const pinned = new Uint16Array(allocHost(bytes).buffer).fill(0x3c00);
  const pinnedOut = new Uint16Array(allocHost(bytes).buffer);
  const pinnedInt8 = new Int8Array(allocHost(n).buffer);
  const pageable = new Uint16Array(n).fill(0x3c00);
  const pageableOut = new Uint16Array(n).fill(0);
  const expand: Record<string, Feed> = {
    one: { type: 'float16', dims: [1], data: Uint16Array.of(0x3c00) },
    shape: { type: 'int64', dims: [1], data: BigInt64Array.of(BigInt(n)) },
  };
  const groupN = n / GROUP;
  const groupFeeds: Record<string, Feed> = {
    ...expand,
    shape: { type: 'int64', dims: [1], data: BigInt64Array.of(BigInt(groupN)) },
  };
  const groupOut: Record<string, OutputTarget> = Object.fromEntries(
    Array.from({ length: GROUP }, (_, i) => [
      `y${i}`,
      { into: { type: 'float16', dims: [groupN], data: pinnedOut.subarray(i * groupN, (i + 1) * groupN) } },
    ]),
  );
  const into = (data: Uint16Array): OutputTarget => ({ into: { type: 'float16', dims: [n], data } });
  const x = (data: Uint16Array): Record<string, Feed> => ({ x: { type: 'float16', dims: [n], data } });
  const cases: Record<string, () => unknown> = {
    'egress → pinned': () => session('egress').run(expand, { y: into(pinnedOut) }),
    'egress → pageable, reused': () => session('egress').run(expand, { y: into(pageableOut) }),
    'egress → onnxruntime host buffer': () => session('egress').run(expand, { y: undefined }),
    'egress, 64 outputs → pinned': () => session('group').run(groupFeeds, groupOut),
    'egress int8 → pinned': () =>
      session('int8').run(expand, { y: { into: { type: 'int8', dims: [n], data: pinnedInt8 } } }),
    'ingress ← pinned': () => session('ingress').run(x(pinned), { y: undefined }),
    'ingress ← pageable': () => session('ingress').run(x(pageable), { y: undefined }),
    'both ways, pinned': () => session('both').run(x(pinned), { y: into(pinnedOut) }),
    'device only': () => {
      if (ep === 'cuda')
        (session('egress').run(expand, { y: { device: true } }).y as { release(): void }).release();
    },
  };
  const cells: string[] = [];
  for (const what of columns) {
    let ms: number[];
    try {
      ms = time(cases[what]!);
    } catch (err) {
      const message = (err as Error).message.split('\n')[0]!.slice(0, 160);
      process.stdout.write(`${JSON.stringify({ what, mib, error: message })}\n`);
      cells.push('failed');
      continue;
    }
    // "both ways" moves the bytes twice; int8 moves half of what it stands for.
    const gbps = ((what.startsWith('both') ? 2 : 1) * bytes) / 1e9 / (median(ms) / 1e3);
    process.stdout.write(
      `${JSON.stringify({ what, mib, pinned: pinnedProbe, medianMs: median(ms), gbps, ms })}\n`,
    );
    cells.push(`${median(ms).toFixed(2)} ms (${gbps.toFixed(1)} GB/s)`);
  }
  pinnedOut.fill(0);
  cases['egress → pinned']!();
  const bad = pinnedOut.findIndex((v) => v !== 0x3c00);
  if (bad >= 0) throw new Error(`${mib} MiB: output element ${bad} is ${pinnedOut[bad]}, not 1.0`);
  rows.push(`| ${mib} | ${cells.join(' | ')} |`);
}
process.stderr.write(
  [
    `ort_io addon, ${ep}, host buffers pinned: ${pinnedProbe} (median of ${repeats} after one warm-up)`,
    '',
    `| MiB | ${columns.join(' | ')} |`,
    `|---:|${columns.map(() => '---:').join('|')}|`,
    ...rows,
    '',
  ].join('\n'),
);
