// Which stages each of an engine's graphs covers (llama-graphs.ts: stage 2l is project(l), 2l+1
// attend(l)). Pure: the engine builds one session per range, the rank loop schedules by them.
import { isProject, layerOf, type StageRange } from '../model/llama-graphs.ts';

/**
 * Graphs of `layersPerGraph` layers:
 * - 0: one graph of the whole model — nothing crosses the host between layers (a rank alone);
 * - 1: one graph per stage — every projection is out before its attention waits for K/V, and
 *      every span is one project or one attend (the cost model is calibrated from them);
 * - k > 1: graphs cut right after every k-th projection — [0, 1), [1, 2k+1), [2k+1, 4k+1), … — so a
 *      chain rank sends the K/V of the next layer before it waits for its predecessor's.
 */
export function stagePlan(numLayers: number, layersPerGraph: number): StageRange[] {
  if (!Number.isInteger(numLayers) || numLayers < 1)
    throw new Error(`a model needs layers, got ${numLayers}`);
  if (!Number.isInteger(layersPerGraph) || layersPerGraph < 0)
    throw new Error(`layers per graph must be an integer ≥ 0, got ${layersPerGraph}`);
  const stages = 2 * numLayers;
  const cuts: number[] = [];
  if (layersPerGraph === 1) for (let s = 1; s < stages; s++) cuts.push(s);
  else if (layersPerGraph > 1) for (let s = 1; s < stages; s += 2 * layersPerGraph) cuts.push(s);
  const bounds = [0, ...cuts, stages];
  return bounds.slice(0, -1).map((from, i) => ({ from, to: bounds[i + 1]! }));
}

/** Layers whose projection / attention a range holds. */
export function stageLayers(range: StageRange): { projects: number[]; attends: number[] } {
  const projects: number[] = [];
  const attends: number[] = [];
  for (let s = range.from; s < range.to; s++) (isProject(s) ? projects : attends).push(layerOf(s));
  return { projects, attends };
}

/**
 * Layers per graph when not given: per stage on the CPU (no host crossing to save); on a GPU one
 * graph for a rank alone, and 8 layers per graph in a chain. Every graph boundary moves the hidden
 * state and one layer's Q/K/V through the host at about 1 GB/s: llama-7b at 8192 tokens on the H200
 * took 249 / 2043 / 3947 ms to its first token with 32 / 8 / 4 layers per graph, and with one layer
 * per graph its 64 sessions did not fit in the GPU (bench/results/h200-cuda.md, experiments). Fewer
 * layers per graph let a chain rank overlap more, which pays only once K/V move faster.
 */
export function defaultLayersPerGraph(ep: string, chain: boolean): number {
  if (ep === 'cpu') return 1;
  return chain ? 8 : 0;
}
