// A Hugging Face Llama checkpoint directory: config.json, one or more *.safetensors shards and
// (for the tokenizer) tokenizer.json. Everything is checked before the first weight is converted:
// a missing tensor, a wrong shape or a stray tensor is an error naming it.
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelConfigError, parseHfConfig, type ModelConfig } from './config.ts';
import { readSafetensorsHeader, readTensorBytes, type StoredTensorInfo } from './safetensors.ts';
import { convertStored, type ComputeDType, type HostArray } from './tensor.ts';
import { concatRows, layerShapes, type LayerWeights, type ModelWeights } from './weights.ts';

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

const layerPrefix = (i: number) => `model.layers.${i}`;

/** Names and expected shapes of every tensor the model reads. */
export function expectedTensors(config: ModelConfig): Map<string, readonly number[]> {
  const s = layerShapes(config);
  const out = new Map<string, readonly number[]>();
  out.set('model.embed_tokens.weight', [config.vocabSize, config.hiddenSize]);
  out.set('model.norm.weight', s.norm);
  if (!config.tieWordEmbeddings) out.set('lm_head.weight', [config.vocabSize, config.hiddenSize]);
  for (let i = 0; i < config.numLayers; i++) {
    const p = layerPrefix(i);
    out.set(`${p}.input_layernorm.weight`, s.norm);
    out.set(`${p}.post_attention_layernorm.weight`, s.norm);
    out.set(`${p}.self_attn.q_proj.weight`, s.qProj);
    out.set(`${p}.self_attn.k_proj.weight`, s.kProj);
    out.set(`${p}.self_attn.v_proj.weight`, s.vProj);
    out.set(`${p}.self_attn.o_proj.weight`, s.oProj);
    out.set(`${p}.mlp.gate_proj.weight`, s.gateProj);
    out.set(`${p}.mlp.up_proj.weight`, s.upProj);
    out.set(`${p}.mlp.down_proj.weight`, s.downProj);
    if (config.attentionBias) {
      out.set(`${p}.self_attn.q_proj.bias`, [s.qProj[0]]);
      out.set(`${p}.self_attn.k_proj.bias`, [s.kProj[0]]);
      out.set(`${p}.self_attn.v_proj.bias`, [s.vProj[0]]);
      out.set(`${p}.self_attn.o_proj.bias`, [s.oProj[0]]);
    }
    if (config.mlpBias) {
      out.set(`${p}.mlp.gate_proj.bias`, [s.gateProj[0]]);
      out.set(`${p}.mlp.up_proj.bias`, [s.upProj[0]]);
      out.set(`${p}.mlp.down_proj.bias`, [s.downProj[0]]);
    }
  }
  return out;
}

/** Tensors some checkpoints carry that the computation does not read (buffers, a tied head). */
function isIgnorable(name: string, config: ModelConfig): boolean {
  return name.endsWith('.rotary_emb.inv_freq') || (config.tieWordEmbeddings && name === 'lm_head.weight');
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CheckpointError(
      code === 'ENOENT' ? `${what} not found: ${path}` : `${path}: ${(err as Error).message}`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CheckpointError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

export interface CheckpointInfo {
  readonly dir: string;
  readonly config: ModelConfig;
  readonly ignoredConfigKeys: readonly string[];
  readonly tensors: ReadonlyMap<string, StoredTensorInfo>;
  readonly fingerprint: string;
}

export async function inspectCheckpoint(dir: string): Promise<CheckpointInfo> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new CheckpointError(`model path is not a directory: ${dir}`);
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`model directory not found: ${dir}`);
  }
  const configJson = await readJson(join(dir, 'config.json'), 'config.json');
  let parsed;
  try {
    parsed = parseHfConfig(configJson);
  } catch (err) {
    if (err instanceof ModelConfigError) throw new CheckpointError(`${dir}/${err.message}`);
    throw err;
  }
  const { config, ignoredKeys } = parsed;
  const shards = (await readdir(dir)).filter((f) => f.endsWith('.safetensors')).sort();
  if (shards.length === 0) throw new CheckpointError(`${dir}: no *.safetensors files`);
  const tensors = new Map<string, StoredTensorInfo>();
  const hash = createHash('sha256').update(JSON.stringify(config));
  for (const shard of shards) {
    for (const info of await readSafetensorsHeader(join(dir, shard))) {
      if (tensors.has(info.name))
        throw new CheckpointError(`${dir}: tensor ${info.name} appears in more than one shard`);
      tensors.set(info.name, info);
      hash.update(`${info.name}:${info.dtype}:${info.shape.join('x')}:${info.byteLength};`);
    }
  }
  const expected = expectedTensors(config);
  for (const [name, shape] of expected) {
    const info = tensors.get(name);
    if (!info)
      throw new CheckpointError(`${dir}: checkpoint is missing tensor ${name} (shape [${shape.join(', ')}])`);
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `${dir}: tensor ${name} has shape [${info.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
      );
    }
  }
  const stray = [...tensors.keys()].filter((n) => !expected.has(n) && !isIgnorable(n, config));
  if (stray.length > 0) {
    throw new CheckpointError(
      `${dir}: unexpected tensors not used by a Llama model: ${stray.slice(0, 5).join(', ')}${stray.length > 5 ? ` (+${stray.length - 5} more)` : ''}`,
    );
  }
  // A sample of the data joins the fingerprint, so two checkpoints with equal shapes still differ.
  const probe = tensors.get('model.norm.weight');
  if (probe) hash.update(await readTensorBytes(probe));
  return {
    dir,
    config,
    ignoredConfigKeys: ignoredKeys,
    tensors,
    fingerprint: hash.digest('hex').slice(0, 16),
  };
}

export async function openCheckpoint(dir: string, dtype: ComputeDType): Promise<ModelWeights> {
  const info = await inspectCheckpoint(dir);
  const load = async (name: string): Promise<HostArray> => {
    const t = info.tensors.get(name);
    if (!t) throw new CheckpointError(`${dir}: checkpoint is missing tensor ${name}`);
    return convertStored(await readTensorBytes(t), t.dtype, dtype);
  };
  const optional = async (name: string, present: boolean) => (present ? load(name) : null);
  const { config } = info;
  return {
    config,
    dtype,
    fingerprint: `${info.fingerprint}-${dtype}`,
    description: `checkpoint ${dir}`,
    embedding: () => load('model.embed_tokens.weight'),
    finalNorm: () => load('model.norm.weight'),
    lmHead: () => load(config.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'),
    async layer(i: number): Promise<LayerWeights> {
      const p = layerPrefix(i);
      const attn = (n: string) => load(`${p}.self_attn.${n}`);
      const mlp = (n: string) => load(`${p}.mlp.${n}`);
      const ab = config.attentionBias;
      const mb = config.mlpBias;
      return {
        inputNorm: await load(`${p}.input_layernorm.weight`),
        qkv: concatRows([
          await attn('q_proj.weight'),
          await attn('k_proj.weight'),
          await attn('v_proj.weight'),
        ]),
        qkvBias: ab
          ? concatRows([await attn('q_proj.bias'), await attn('k_proj.bias'), await attn('v_proj.bias')])
          : null,
        o: await attn('o_proj.weight'),
        oBias: await optional(`${p}.self_attn.o_proj.bias`, ab),
        postNorm: await load(`${p}.post_attention_layernorm.weight`),
        gateUp: concatRows([await mlp('gate_proj.weight'), await mlp('up_proj.weight')]),
        gateUpBias: mb ? concatRows([await mlp('gate_proj.bias'), await mlp('up_proj.bias')]) : null,
        down: await mlp('down_proj.weight'),
        downBias: await optional(`${p}.mlp.down_proj.bias`, mb),
      };
    },
  };
}
