// Deterministic synthetic weights: same preset + seed + dtype → the same model, bit for bit, with no
// files. Each tensor has its own stream (seeded from the model seed and the tensor's name), so any
// layer can be generated on its own, in any order, on any rank.
//
// Values are a random sign times a uniform mantissa in [2^e, 2^(e+1)), written straight into the
// float bit pattern: one hash word per fp32 value, or per two fp16 values, no float arithmetic. The
// llama-7b preset (6.7e9 values) generates in about 5 s in fp16 on one core (README). The scale 2^e is
// about 1/sqrt(fan_in), which keeps activations of a deep random model finite in fp16.
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { siblingModule } from '../../core/module-path.ts';
import { presetConfig } from './presets.ts';
import type { ModelConfig } from './config.ts';
import type { ComputeDType, HostArray } from './tensor.ts';
import { layerShapes, type LayerWeights, type ModelWeights } from './weights.ts';

/** Per-tensor stream parameters from SHA-256 of (seed, name): an odd multiplier and an offset. */
function streamOf(seed: number, name: string): { multiplier: number; offset: number } {
  const digest = createHash('sha256').update(`${seed}:${name}`).digest();
  return { multiplier: digest.readUInt32LE(0) | 1, offset: digest.readUInt32LE(4) | 0 };
}

/**
 * Fill `words` with murmur3's fmix32 of a Weyl sequence (i·multiplier + offset), masked to the float
 * pattern `(h & mask) | bits`. Counter-based, so iterations do not depend on each other: measured
 * 3.8× faster than xoshiro128** here, and distinct multipliers keep tensors from being shifted
 * copies of one sequence.
 */
function fillPattern(words: Uint32Array, seed: number, name: string, mask: number, bits: number): void {
  const { multiplier, offset } = streamOf(seed, name);
  // int32 copies of the masks keep V8 on its integer path (a 0x8… literal is a double).
  const m = mask | 0;
  const b = bits | 0;
  const n = words.length;
  for (let i = 0; i < n; i++) {
    let h = (Math.imul(i, multiplier) + offset) | 0;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    words[i] = (h & m) | b;
  }
}

/** Random values of magnitude in [2^exp, 2^(exp+1)) with random sign. */
export function randomTensor(
  dtype: ComputeDType,
  count: number,
  exp: number,
  seed: number,
  name: string,
): HostArray {
  if (dtype === 'float32') {
    const words = new Uint32Array(count);
    fillPattern(words, seed, name, 0x807fffff, ((127 + exp) & 0xff) << 23);
    return new Float32Array(words.buffer);
  }
  if (exp < -14 || exp > 15)
    throw new Error(`synthetic fp16 weights need an exponent in [-14, 15], got ${exp}`);
  const words = new Uint32Array(Math.ceil(count / 2));
  const e = (15 + exp) << 10;
  fillPattern(words, seed, name, 0x83ff83ff, e | (e << 16));
  return new Uint16Array(words.buffer, 0, count);
}

function ones(dtype: ComputeDType, count: number): HostArray {
  return dtype === 'float32' ? new Float32Array(count).fill(1) : new Uint16Array(count).fill(0x3c00);
}

/** Exponent giving values about 1/sqrt(fanIn): the usual scale of trained projections. */
function scaleExponent(fanIn: number): number {
  return Math.max(-14, Math.round(-Math.log2(fanIn) / 2) - 1);
}

export interface SyntheticLayerRequest {
  readonly preset: string;
  readonly seed: number;
  readonly dtype: ComputeDType;
  readonly layer: number;
}

/** One layer's weights; the same values whichever thread generates them. */
/** A generator of the named tensors of one synthetic model. */
function generator(dtype: ComputeDType, seed: number) {
  return (name: string, count: number, fanIn: number) =>
    randomTensor(dtype, count, scaleExponent(fanIn), seed, name);
}

export function syntheticLayer({ preset, seed, dtype, layer }: SyntheticLayerRequest): LayerWeights {
  const {
    hiddenSize: d,
    intermediateSize: inter,
    numHeads: h,
    numKvHeads: kv,
    headDim: hd,
  } = presetConfig(preset);
  const gen = generator(dtype, seed);
  const p = `layer${layer}.`;
  return {
    inputNorm: ones(dtype, d),
    qkv: gen(`${p}qkv`, (h + 2 * kv) * hd * d, d),
    qkvBias: null,
    o: gen(`${p}o`, d * h * hd, h * hd),
    oBias: null,
    postNorm: ones(dtype, d),
    gateUp: gen(`${p}gate_up`, 2 * inter * d, d),
    gateUpBias: null,
    down: gen(`${p}down`, d * inter, inter),
    downBias: null,
  };
}

/**
 * Generates layers on up to `threads` worker threads, started on first use and stopped when idle:
 * a 7B model's 6.7e9 values take about 15 s on one core (README), and an engine asks for all the
 * layers of a graph at once.
 */
class GeneratorPool {
  private readonly threads: number;
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly queue: {
    req: SyntheticLayerRequest;
    resolve: (w: LayerWeights) => void;
    reject: (e: Error) => void;
  }[] = [];
  private nextId = 0;

  constructor(threads: number) {
    this.threads = threads;
  }

  generate(req: SyntheticLayerRequest): Promise<LayerWeights> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      let worker = this.idle.pop();
      if (!worker && this.all.size < this.threads) {
        worker = new Worker(siblingModule(import.meta.url, './synthetic-thread'));
        worker.unref();
        this.all.add(worker);
      }
      if (!worker) return;
      const job = this.queue.shift()!;
      const id = this.nextId++;
      const w = worker;
      const onMessage = (m: { id: number; layer: LayerWeights }) => {
        if (m.id !== id) return;
        w.off('message', onMessage).off('error', onError);
        job.resolve(m.layer);
        this.release(w);
      };
      const onError = (err: Error) => {
        w.off('message', onMessage).off('error', onError);
        this.all.delete(w);
        job.reject(err);
        this.pump();
      };
      w.on('message', onMessage).on('error', onError);
      w.postMessage({ ...job.req, id });
    }
  }

  private release(worker: Worker): void {
    this.idle.push(worker);
    if (this.queue.length > 0) this.pump();
    else if (this.idle.length === this.all.size) {
      for (const w of this.all) void w.terminate();
      this.all.clear();
      this.idle.length = 0;
    }
  }
}

/** Layers at least this large are worth a thread (llama-7b's are 200M values; small's 7M). */
const POOL_MIN_LAYER_VALUES = 50_000_000;

export function syntheticWeights(preset: string, seed: number, dtype: ComputeDType): ModelWeights {
  const config: ModelConfig = presetConfig(preset);
  const { hiddenSize: d, vocabSize: v } = config;
  const gen = generator(dtype, seed);
  const layerValues = Object.values(layerShapes(config)).reduce((n, [rows, cols = 1]) => n + rows * cols, 0);
  const pool =
    layerValues >= POOL_MIN_LAYER_VALUES
      ? new GeneratorPool(Math.min(16, Math.max(1, availableParallelism() - 1)))
      : null;
  return {
    config,
    dtype,
    fingerprint: `synthetic-${preset}-${seed}-${dtype}`,
    description: `synthetic:${preset} (seed ${seed})`,
    embedding: () => Promise.resolve(gen('embed', v * d, 16 * 16)),
    finalNorm: () => Promise.resolve(ones(dtype, d)),
    lmHead: () =>
      Promise.resolve(config.tieWordEmbeddings ? gen('embed', v * d, 16 * 16) : gen('lm_head', v * d, d)),
    layer(i: number): Promise<LayerWeights> {
      const req = { preset, seed, dtype, layer: i };
      return pool ? pool.generate(req) : Promise.resolve(syntheticLayer(req));
    },
  };
}
