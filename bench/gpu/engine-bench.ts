// Single-rank TTFT of the engine, one model loaded once, several context lengths: the runahead side
// of bench/gpu/run.sh (the PyTorch side is pytorch_anchor.py). Prints one JSON line per event on
// stdout; report.ts turns them into bench/results/h200-cuda.{md,json}.
//
//   node bench/gpu/engine-bench.ts --model synthetic:llama-7b --ep cuda --dtype float16 \
//     --contexts 2048,4096 --warmup 1 --repeats 3
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { prefillAndGenerate } from '../../worker/prefill.ts';
import { syntheticPromptIds } from '../../worker/prompt.ts';
import type { EngineSpec } from '../../worker/runtime/layer-engine.ts';

const { values: a } = parseArgs({
  options: {
    model: { type: 'string' },
    ep: { type: 'string', default: 'cuda' },
    dtype: { type: 'string', default: 'float16' },
    contexts: { type: 'string', default: '2048,4096,8192,16384,32768' },
    warmup: { type: 'string', default: '1' },
    repeats: { type: 'string', default: '3' },
    'layers-per-graph': { type: 'string' },
    attention: { type: 'string' },
    threads: { type: 'string', default: '0' },
    'opt-level': { type: 'string' },
    'mem-pattern': { type: 'string' },
    // also time refilling the KV-cache (every layer's K/V to the host), what decoding needs
    fill: { type: 'boolean', default: false },
    label: { type: 'string' },
    // native (the ort_io addon) or onnxruntime-node; absent: the engine's default
    io: { type: 'string' },
  },
});
if (!a.model) throw new Error('--model is required');
const emit = (event: string, fields: Record<string, unknown>) => {
  process.stdout.write(
    `${JSON.stringify({ event, engine: 'runahead', model: a.model, label: a.label, atMs: Date.now(), ...fields })}\n`,
  );
};

const spec: EngineSpec = {
  model: a.model,
  seed: 0,
  ep: a.ep as EngineSpec['ep'],
  dtype: a.dtype as EngineSpec['dtype'],
  threads: Number(a.threads),
  deviceId: 0,
  ...(a['layers-per-graph'] === undefined ? {} : { layersPerGraph: Number(a['layers-per-graph']) }),
  ...(a.attention === undefined ? {} : { attention: a.attention as 'fused' | 'reference' }),
  ...(a['opt-level'] === undefined
    ? {}
    : { graphOptimization: a['opt-level'] as 'disabled' | 'basic' | 'extended' | 'all' }),
  ...(a['mem-pattern'] === undefined ? {} : { memPattern: a['mem-pattern'] === 'on' }),
  ...(a.io === undefined ? {} : { io: a.io as 'native' | 'onnxruntime-node' }),
};
const loadStart = performance.now();
const engine = await EngineClient.start(spec);
const loadMs = performance.now() - loadStart;
emit('load', {
  loadMs,
  breakdownMs: engine.info.loadBreakdownMs,
  optLevel: a['opt-level'] ?? 'all',
  memPattern: spec.memPattern ?? spec.ep === 'cpu',
  layersPerGraph: a['layers-per-graph'] ?? 'default',
  attention: engine.info.attention,
  io: engine.info.io,
  graphs: engine.info.graphs,
  ep: spec.ep,
  dtype: spec.dtype,
});
try {
  const { config } = engine.info;
  for (const context of a.contexts.split(',').map(Number)) {
    const ids = syntheticPromptIds(context, config.vocabSize, 0, config.bosTokenId);
    const startMs = Date.now();
    const ttfts: number[] = [];
    const fills: number[] = [];
    let firstToken = -1;
    try {
      for (let i = 0; i < Number(a.warmup) + Number(a.repeats); i++) {
        const r = await prefillAndGenerate(engine, ids, { maxNewTokens: a.fill ? 1 : 0 });
        if (i >= Number(a.warmup)) {
          ttfts.push(r.ttftMs);
          if (a.fill) fills.push(r.cacheFillMs);
        }
        firstToken = r.firstToken;
      }
      emit('context', {
        contextLength: context,
        startMs,
        endMs: Date.now(),
        ttftMs: ttfts,
        ...(a.fill ? { cacheFillMs: fills } : {}),
        firstToken,
        loadMs,
      });
    } catch (err) {
      emit('context', {
        contextLength: context,
        startMs,
        endMs: Date.now(),
        error: (err as Error).message,
        loadMs,
      });
    }
  }
} finally {
  await engine.close();
}
