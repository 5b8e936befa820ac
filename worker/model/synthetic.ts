// Deterministic synthetic weights: same preset + seed + dtype → the same model, bit for bit, with no
// files. Each tensor has its own stream (seeded from the model seed and the tensor's name), so any
// layer can be generated on its own, in any order, on any rank.
//
// Values are a random sign times a uniform mantissa in [2^e, 2^(e+1)), written straight into the
// float bit pattern: one PRNG word per fp32 value, or per two fp16 values. No float arithmetic, so
// the 7B preset generates at memory speed (see README for the measured time). The scale 2^e is
// about 1/sqrt(fan_in), which keeps activations of a deep random model finite in fp16.
import { createHash } from 'node:crypto';
import { presetConfig } from './presets.ts';
import type { ModelConfig } from './config.ts';
import type { ComputeDType, HostArray } from './tensor.ts';
import type { LayerWeights, ModelWeights } from './weights.ts';

/** xoshiro128** seeded by splitmix32 from a 32-bit hash of (seed, name). */
function streamSeed(seed: number, name: string): Uint32Array {
  const digest = createHash('sha256').update(`${seed}:${name}`).digest();
  const s = new Uint32Array(4);
  for (let i = 0; i < 4; i++) s[i] = digest.readUInt32LE(i * 4) || 0x9e3779b9;
  return s;
}

/** Fill `words` with xoshiro128** output masked to the float pattern `(w & mask) | bits`. */
function fillPattern(words: Uint32Array, state: Uint32Array, mask: number, bits: number): void {
  let s0 = state[0]! | 0;
  let s1 = state[1]! | 0;
  let s2 = state[2]! | 0;
  let s3 = state[3]! | 0;
  for (let i = 0; i < words.length; i++) {
    const r = Math.imul((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25), 9);
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    words[i] = (r & mask) | bits;
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
  const state = streamSeed(seed, name);
  if (dtype === 'float32') {
    const words = new Uint32Array(count);
    fillPattern(words, state, 0x807fffff, ((127 + exp) & 0xff) << 23);
    return new Float32Array(words.buffer);
  }
  if (exp < -14 || exp > 15)
    throw new Error(`synthetic fp16 weights need an exponent in [-14, 15], got ${exp}`);
  const words = new Uint32Array(Math.ceil(count / 2));
  const e = (15 + exp) << 10;
  fillPattern(words, state, 0x83ff83ff, e | (e << 16));
  return new Uint16Array(words.buffer, 0, count);
}

function ones(dtype: ComputeDType, count: number): HostArray {
  return dtype === 'float32' ? new Float32Array(count).fill(1) : new Uint16Array(count).fill(0x3c00);
}

/** Exponent giving values about 1/sqrt(fanIn): the usual scale of trained projections. */
function scaleExponent(fanIn: number): number {
  return Math.max(-14, Math.round(-Math.log2(fanIn) / 2) - 1);
}

export function syntheticWeights(preset: string, seed: number, dtype: ComputeDType): ModelWeights {
  const config: ModelConfig = presetConfig(preset);
  const {
    hiddenSize: d,
    intermediateSize: inter,
    numHeads: h,
    numKvHeads: kv,
    headDim: hd,
    vocabSize: v,
  } = config;
  const gen = (name: string, count: number, fanIn: number) =>
    randomTensor(dtype, count, scaleExponent(fanIn), seed, name);
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
      const p = `layer${i}.`;
      return Promise.resolve({
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
      });
    },
  };
}
