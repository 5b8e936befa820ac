// Each way a checkpoint can be broken gives its own clear error. The broken copies are made from
// the committed llama3-tiny reference checkpoint.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { cp, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspectCheckpoint, openCheckpoint } from './checkpoint.ts';
import { encodeSafetensors, readSafetensorsHeader, readTensorBytes } from './safetensors.ts';

const FIXTURE = join(import.meta.dirname, '../../test/fixtures/models/llama3-tiny');
let root: string;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'checkpoint-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function copy(): Promise<string> {
  const dir = join(root, `ckpt${n++}`);
  await cp(FIXTURE, dir, { recursive: true });
  return dir;
}

/** Rewrite model.safetensors through `edit`, which may drop, rename or replace tensors. */
async function rewriteTensors(
  dir: string,
  edit: (t: Record<string, { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; data: Uint8Array }>) => void,
): Promise<void> {
  const file = join(dir, 'model.safetensors');
  const tensors: Record<string, { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; data: Uint8Array }> = {};
  for (const info of await readSafetensorsHeader(file)) {
    tensors[info.name] = { dtype: info.dtype, shape: [...info.shape], data: await readTensorBytes(info) };
  }
  edit(tensors);
  await writeFile(file, encodeSafetensors(tensors));
}

describe('checkpoint loading', () => {
  it('loads the reference checkpoint and fuses projections', async () => {
    const weights = await openCheckpoint(FIXTURE, 'float32');
    const layer = await weights.layer(1);
    const { hiddenSize: d, numHeads: h, numKvHeads: kv, headDim: hd, intermediateSize: i } = weights.config;
    expect(layer.qkv.length).toBe((h + 2 * kv) * hd * d);
    expect(layer.gateUp.length).toBe(2 * i * d);
    expect(await weights.lmHead()).toEqual(await weights.embedding()); // tied
    expect(weights.fingerprint).toMatch(/^[0-9a-f]{16}-float32$/);
  });

  it('gives two different checkpoints different fingerprints', async () => {
    const other = await inspectCheckpoint(join(FIXTURE, '../llama2-tiny'));
    expect(other.fingerprint).not.toBe((await inspectCheckpoint(FIXTURE)).fingerprint);
  });

  it('refuses a missing tensor, naming it', async () => {
    const dir = await copy();
    await rewriteTensors(dir, (t) => delete t['model.layers.1.mlp.up_proj.weight']);
    await expect(openCheckpoint(dir, 'float32')).rejects.toThrow(
      /missing tensor model\.layers\.1\.mlp\.up_proj\.weight \(shape \[160, 64\]\)/,
    );
  });

  it('refuses a tensor of the wrong shape', async () => {
    const dir = await copy();
    await rewriteTensors(dir, (t) => {
      const w = t['model.layers.0.self_attn.k_proj.weight']!;
      t['model.layers.0.self_attn.k_proj.weight'] = { ...w, shape: [64, 32] };
    });
    await expect(openCheckpoint(dir, 'float32')).rejects.toThrow(
      /tensor model\.layers\.0\.self_attn\.k_proj\.weight has shape \[64, 32\], config\.json implies \[32, 64\]/,
    );
  });

  it('refuses a stray tensor', async () => {
    const dir = await copy();
    await rewriteTensors(dir, (t) => {
      t['model.layers.0.self_attn.q_norm.weight'] = { dtype: 'F32', shape: [1], data: new Uint8Array(4) };
    });
    await expect(openCheckpoint(dir, 'float32')).rejects.toThrow(
      /unexpected tensors not used by a Llama model: model\.layers\.0\.self_attn\.q_norm\.weight/,
    );
  });

  it('refuses a truncated safetensors file', async () => {
    const dir = await copy();
    await truncate(join(dir, 'model.safetensors'), 100_000);
    await expect(openCheckpoint(dir, 'float32')).rejects.toThrow(
      /model\.safetensors: truncated: tensor .* needs data up to byte/,
    );
  });

  it('refuses an unknown dtype', async () => {
    const dir = await copy();
    const file = join(dir, 'model.safetensors');
    const buf = await readFile(file);
    const headerLen = Number(buf.readBigUInt64LE(0));
    const header = buf
      .subarray(8, 8 + headerLen)
      .toString()
      .replace('"BF16"', '"F64" ');
    await writeFile(
      file,
      Buffer.concat([buf.subarray(0, 8), Buffer.from(header), buf.subarray(8 + headerLen)]),
    );
    await expect(openCheckpoint(dir, 'float32')).rejects.toThrow(/dtype F64 is not supported/);
  });

  it('refuses bad JSON in config.json', async () => {
    const dir = await copy();
    await writeFile(join(dir, 'config.json'), '{"model_type": "llama",');
    await expect(openCheckpoint(dir, 'float32')).rejects.toThrow(/config\.json: not valid JSON/);
  });

  it('refuses a config.json the engine does not support, naming the field', async () => {
    const dir = await copy();
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, hidden_act: 'gelu_pytorch_tanh' }));
    await expect(openCheckpoint(dir, 'float32')).rejects.toThrow(
      /config\.json: hidden_act "gelu_pytorch_tanh" is not supported/,
    );
  });

  it('refuses a directory without config.json, without weights, or that does not exist', async () => {
    const noConfig = await copy();
    await rm(join(noConfig, 'config.json'));
    await expect(openCheckpoint(noConfig, 'float32')).rejects.toThrow(/config\.json not found/);
    const noWeights = await copy();
    await rm(join(noWeights, 'model.safetensors'));
    await expect(openCheckpoint(noWeights, 'float32')).rejects.toThrow(/no \*\.safetensors files/);
    await expect(openCheckpoint(join(root, 'absent'), 'float32')).rejects.toThrow(
      /model directory not found/,
    );
  });
});
