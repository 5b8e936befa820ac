// The cost of a prompt length the engine has not run before (bench/results/serve-gpu-h200/README.md:
// on the GPU a first run at a new length took ~160 ms more than the next one at that length). One
// engine built as a chain rank builds it runs chunks alone (no K/V leaving it) at the lengths given,
// in that order, and prints each run's time per graph — so a length repeated, a length one token
// longer and a length far away can be told apart, and the graph that pays can be seen.
//
//   node bench/engine-lengths.ts [--model synthetic:llama3-8b] [--ep cuda] [--dtype float16]
//     [--lengths 1024,1024,1025,1030,1100,1100,8192,8192,8200] [--alone]
//
// --alone: the engine of a rank alone (on a GPU one graph of the whole model) instead of a chain's.
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { LayerEngine } from '../worker/runtime/layer-engine.ts';
import { stageLayers } from '../worker/runtime/stage-plan.ts';
import type { ComputeDType } from '../worker/model/tensor.ts';
import type { ExecutionProviderName } from '../worker/runtime/ort.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'synthetic:llama3-8b' },
    ep: { type: 'string', default: 'cuda' },
    dtype: { type: 'string', default: 'float16' },
    threads: { type: 'string', default: '4' },
    lengths: { type: 'string', default: '1024,1024,1025,1030,1100,1100,8192,8192,8200' },
    alone: { type: 'boolean', default: false },
  },
});
const engine = await LayerEngine.create({
  model: values.model,
  ep: values.ep as ExecutionProviderName,
  dtype: values.dtype as ComputeDType,
  threads: Number(values.threads),
  seed: 0,
  deviceId: 0,
  inChain: !values.alone,
});
const vocab = engine.engineInfo.config.vocabSize;
console.log(`| tokens | run ms | per graph ms (${engine.engineInfo.graphs.length} graphs) |\n|---|---|---|`);
for (const tokens of values.lengths.split(',').map(Number)) {
  const ids = Array.from({ length: tokens }, (_, i) => 1 + ((i * 7919) % (vocab - 1)));
  const t0 = performance.now();
  engine.startChunk(ids, 0);
  const perGraph: number[] = [];
  for (const [index, range] of engine.engineInfo.graphs.entries()) {
    const t = performance.now();
    const { attends } = stageLayers(range);
    await engine.runGraph(
      index,
      attends.map(() => null),
      { emit: false, keep: false },
    );
    perGraph.push(performance.now() - t);
  }
  engine.logits();
  engine.resetCache();
  const ms = (x: number) => x.toFixed(1);
  console.log(`| ${tokens} | ${ms(performance.now() - t0)} | ${perGraph.map(ms).join(' / ')} |`);
}
await engine.release();
