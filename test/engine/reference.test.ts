// The engine against an independent implementation: transformers' LlamaForCausalLM (float32,
// eager attention) on the two committed checkpoints, recorded by test/fixtures/make_reference.py.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtemp, rm, cp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { prefillAndGenerate } from '../../worker/prefill.ts';
import { loadTokenizer } from '../../worker/tokenizer.ts';
import { encodeSafetensors, readSafetensorsHeader, readTensorBytes } from '../../worker/model/safetensors.ts';
import { convertStored } from '../../worker/model/tensor.ts';
import { REFERENCE_MODELS, maxAbsDiff, modelDir, reference } from '../support/fixtures.ts';

const LOGITS_TOLERANCE_FP32 = 1e-4;

describe.each(REFERENCE_MODELS)('%s against transformers', (name) => {
  const ref = reference.models[name];
  let engine: EngineClient;

  beforeAll(async () => {
    engine = await EngineClient.start({
      model: modelDir(name),
      seed: 0,
      dtype: 'float32',
      ep: 'cpu',
      threads: 1,
      deviceId: 0,
    });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('tokenizes every case exactly as the tokenizers library does', async () => {
    const tokenizer = await loadTokenizer(modelDir(name));
    for (const c of ref.tokenization) {
      expect({ text: c.text, ids: tokenizer.encode(c.text) }).toEqual({ text: c.text, ids: c.ids });
      expect(tokenizer.decode(c.ids)).toBe(c.decoded);
    }
  });

  it.each(ref.prompts.map((p, i) => [i, p] as const))(
    'prompt %i: last-position logits within 1e-4 and the same 8 greedy tokens',
    async (_, prompt) => {
      const result = await prefillAndGenerate(engine, prompt.ids, { maxNewTokens: 7, keepState: true });
      expect(maxAbsDiff(result.logits!, prompt.lastLogits)).toBeLessThan(LOGITS_TOLERANCE_FP32);
      expect(result.tokens).toEqual(prompt.greedy);
    },
  );
});

describe('storage dtypes', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fp32-ckpt-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('an fp32 copy of the bf16 checkpoint gives the same logits (the conversion is exact)', async () => {
    await cp(modelDir('llama3-tiny'), dir, { recursive: true });
    const file = join(dir, 'model.safetensors');
    const tensors: Parameters<typeof encodeSafetensors>[0] = {};
    for (const info of await readSafetensorsHeader(file)) {
      const f32 = convertStored(await readTensorBytes(info), info.dtype, 'float32') as Float32Array;
      (tensors as Record<string, unknown>)[info.name] = {
        dtype: 'F32',
        shape: info.shape,
        data: new Uint8Array(f32.buffer),
      };
    }
    await writeFile(file, encodeSafetensors(tensors));
    const engine = await EngineClient.start({
      model: dir,
      seed: 0,
      dtype: 'float32',
      ep: 'cpu',
      threads: 1,
      deviceId: 0,
    });
    try {
      const prompt = reference.models['llama3-tiny'].prompts[0]!;
      const result = await prefillAndGenerate(engine, prompt.ids, { maxNewTokens: 0, keepState: true });
      expect(maxAbsDiff(result.logits!, prompt.lastLogits)).toBeLessThan(LOGITS_TOLERANCE_FP32);
    } finally {
      await engine.close();
    }
  });

  it('float16 compute stays close to the float32 reference and picks the same first token', async () => {
    const engine = await EngineClient.start({
      model: modelDir('llama3-tiny'),
      seed: 0,
      dtype: 'float16',
      ep: 'cpu',
      threads: 1,
      deviceId: 0,
    });
    try {
      for (const prompt of reference.models['llama3-tiny'].prompts) {
        const result = await prefillAndGenerate(engine, prompt.ids, { maxNewTokens: 0, keepState: true });
        // fp16 has an 11-bit significand: logits of magnitude ~5 carry errors of a few 1e-3.
        expect(maxAbsDiff(result.logits!, prompt.lastLogits)).toBeLessThan(3e-2);
        expect(result.firstToken).toBe(prompt.greedy[0]);
      }
    } finally {
      await engine.close();
    }
  });
});
