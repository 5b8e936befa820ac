// Hugging Face `config.json` for the Llama family, as written by transformers 4.x (top-level
// `rope_theta`, optional `rope_scaling`) and 5.x (`rope_parameters`), normalised into one ModelConfig.
// Fields that would change the computation and are not implemented are refused by name; fields that
// cannot change inference are accepted; anything else is reported, never silently assumed.
import { z } from 'zod';

export const RopeScalingSchema = z.discriminatedUnion('ropeType', [
  z.object({ ropeType: z.literal('default') }),
  z.object({ ropeType: z.literal('linear'), factor: z.number().positive() }),
  z.object({
    ropeType: z.literal('llama3'),
    factor: z.number().positive(),
    lowFreqFactor: z.number().positive(),
    highFreqFactor: z.number().positive(),
    originalMaxPositionEmbeddings: z.number().int().positive(),
  }),
]);
export type RopeScaling = z.infer<typeof RopeScalingSchema>;

/** The normalised architecture every other part of the engine reads. */
export const ModelConfigSchema = z.object({
  vocabSize: z.number().int().positive(),
  hiddenSize: z.number().int().positive(),
  intermediateSize: z.number().int().positive(),
  numLayers: z.number().int().positive(),
  numHeads: z.number().int().positive(),
  numKvHeads: z.number().int().positive(),
  headDim: z.number().int().positive(),
  ropeTheta: z.number().positive(),
  ropeScaling: RopeScalingSchema,
  rmsNormEps: z.number().positive(),
  tieWordEmbeddings: z.boolean(),
  attentionBias: z.boolean(),
  mlpBias: z.boolean(),
  maxPositionEmbeddings: z.number().int().positive(),
  bosTokenId: z.number().int().nonnegative().nullable(),
  eosTokenIds: z.array(z.number().int().nonnegative()).readonly(),
});
export type ModelConfig = z.infer<typeof ModelConfigSchema>;

export class ModelConfigError extends Error {
  override readonly name = 'ModelConfigError';
}

const positiveInt = z.number().int().positive();
const tokenIds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullish();

// HF's raw rope block (5.x `rope_parameters`, 4.x `rope_scaling`); `type` is the pre-4.40 spelling.
const RawRopeSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    rope_theta: z.number().positive().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: positiveInt.optional(),
  })
  .loose();

const RawLlamaConfigSchema = z
  .object({
    model_type: z.string(),
    vocab_size: positiveInt,
    hidden_size: positiveInt,
    intermediate_size: positiveInt,
    num_hidden_layers: positiveInt,
    num_attention_heads: positiveInt,
    num_key_value_heads: positiveInt.nullish(),
    head_dim: positiveInt.nullish(),
    hidden_act: z.string().default('silu'),
    max_position_embeddings: positiveInt.default(2048),
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().optional(),
    rope_scaling: RawRopeSchema.nullish(),
    rope_parameters: RawRopeSchema.nullish(),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
    tie_word_embeddings: z.boolean().default(false),
    bos_token_id: tokenIds,
    eos_token_id: tokenIds,
    pretraining_tp: z.number().int().positive().optional(),
  })
  .loose();

/** Keys present in real checkpoints that cannot change the result of inference. */
const INERT_KEYS = new Set([
  'architectures',
  'attention_dropout',
  'torch_dtype',
  'dtype',
  'transformers_version',
  'initializer_range',
  'use_cache',
  'pad_token_id',
  '_name_or_path',
  'pretraining_tp', // HF only slices the same product differently
  'output_attentions',
  'output_hidden_states',
  'return_dict',
  'id2label',
  'label2id',
  'bad_words_ids',
  'begin_suppress_tokens',
  'chunk_size_feed_forward',
  'tokenizer_class',
  'is_encoder_decoder',
  'max_length',
  'problem_type',
  'task_specific_params',
]);
const KNOWN_KEYS = new Set([...Object.keys(RawLlamaConfigSchema.shape), ...INERT_KEYS]);

/** Keys whose presence with a non-trivial value would change the computation; not implemented. */
function refuseUnsupported(raw: Record<string, unknown>): void {
  const refuse = (field: string, why: string): never => {
    throw new ModelConfigError(`config.json: ${field} ${why}`);
  };
  if (raw.sliding_window != null)
    refuse('sliding_window', 'is set; sliding-window attention is not supported');
  if (raw.quantization_config != null)
    refuse('quantization_config', 'is set; quantized checkpoints are not supported');
  if (raw.partial_rotary_factor != null && raw.partial_rotary_factor !== 1) {
    refuse(
      'partial_rotary_factor',
      `is ${JSON.stringify(raw.partial_rotary_factor)}; only full rotary embeddings (1) are supported`,
    );
  }
}

function formatZodIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.') || '(root)';
  return `config.json: ${path}: ${issue.message}`;
}

function normaliseRope(raw: z.infer<typeof RawLlamaConfigSchema>): { theta: number; scaling: RopeScaling } {
  // 5.x writes everything into rope_parameters; 4.x has top-level rope_theta plus optional rope_scaling.
  const field = raw.rope_parameters ? 'rope_parameters' : 'rope_scaling';
  const block = raw.rope_parameters ?? raw.rope_scaling ?? {};
  const theta = block.rope_theta ?? raw.rope_theta ?? 10000;
  const type = block.rope_type ?? block.type ?? 'default';
  const need = <T>(value: T | undefined, key: string): T => {
    if (value === undefined)
      throw new ModelConfigError(`config.json: ${field}.${key} is required for rope_type "${type}"`);
    return value;
  };
  switch (type) {
    case 'default':
      return { theta, scaling: { ropeType: 'default' } };
    case 'linear':
      return { theta, scaling: { ropeType: 'linear', factor: need(block.factor, 'factor') } };
    case 'llama3':
      return {
        theta,
        scaling: {
          ropeType: 'llama3',
          factor: need(block.factor, 'factor'),
          lowFreqFactor: need(block.low_freq_factor, 'low_freq_factor'),
          highFreqFactor: need(block.high_freq_factor, 'high_freq_factor'),
          originalMaxPositionEmbeddings: need(
            block.original_max_position_embeddings,
            'original_max_position_embeddings',
          ),
        },
      };
    default:
      throw new ModelConfigError(
        `config.json: ${field}.rope_type "${type}" is not supported (supported: default, linear, llama3)`,
      );
  }
}

export interface ParsedConfig {
  readonly config: ModelConfig;
  /** Keys that are neither implemented nor known to be inert: reported to the user, not guessed. */
  readonly ignoredKeys: readonly string[];
}

/** Parse and check a config.json object (already JSON-decoded). */
export function parseHfConfig(json: unknown): ParsedConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelConfigError('config.json: expected a JSON object at the top level');
  }
  const rawObject = json as Record<string, unknown>;
  refuseUnsupported(rawObject);
  const parsed = RawLlamaConfigSchema.safeParse(rawObject);
  if (!parsed.success) {
    throw new ModelConfigError(parsed.error.issues.map(formatZodIssue).join('; '));
  }
  const raw = parsed.data;
  if (raw.model_type !== 'llama') {
    throw new ModelConfigError(
      `config.json: model_type "${raw.model_type}" is not supported (expected "llama")`,
    );
  }
  if (raw.hidden_act !== 'silu') {
    throw new ModelConfigError(
      `config.json: hidden_act "${raw.hidden_act}" is not supported (expected "silu")`,
    );
  }
  const numKvHeads = raw.num_key_value_heads ?? raw.num_attention_heads;
  if (raw.num_attention_heads % numKvHeads !== 0) {
    throw new ModelConfigError(
      `config.json: num_attention_heads (${raw.num_attention_heads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  let headDim = raw.head_dim;
  if (headDim == null) {
    if (raw.hidden_size % raw.num_attention_heads !== 0) {
      throw new ModelConfigError(
        `config.json: head_dim is not given and hidden_size (${raw.hidden_size}) is not a multiple of num_attention_heads (${raw.num_attention_heads})`,
      );
    }
    headDim = raw.hidden_size / raw.num_attention_heads;
  }
  if (headDim % 2 !== 0)
    throw new ModelConfigError(`config.json: head_dim (${headDim}) must be even for rotary embeddings`);
  const rope = normaliseRope(raw);
  const asList = (v: number | number[] | null | undefined): number[] =>
    v == null ? [] : Array.isArray(v) ? v : [v];
  const bos = asList(raw.bos_token_id);
  const config: ModelConfig = {
    vocabSize: raw.vocab_size,
    hiddenSize: raw.hidden_size,
    intermediateSize: raw.intermediate_size,
    numLayers: raw.num_hidden_layers,
    numHeads: raw.num_attention_heads,
    numKvHeads,
    headDim,
    ropeTheta: rope.theta,
    ropeScaling: rope.scaling,
    rmsNormEps: raw.rms_norm_eps,
    tieWordEmbeddings: raw.tie_word_embeddings,
    attentionBias: raw.attention_bias,
    mlpBias: raw.mlp_bias,
    maxPositionEmbeddings: raw.max_position_embeddings,
    bosTokenId: bos[0] ?? null,
    eosTokenIds: asList(raw.eos_token_id),
  };
  const ignoredKeys = Object.keys(rawObject).filter((k) => !KNOWN_KEYS.has(k));
  return { config, ignoredKeys };
}

/** Query heads that share one key/value head (grouped-query attention). */
export function queriesPerKvHead(config: ModelConfig): number {
  return config.numHeads / config.numKvHeads;
}

export function parameterCount(config: ModelConfig): number {
  const {
    hiddenSize: d,
    intermediateSize: i,
    numHeads: h,
    numKvHeads: kv,
    headDim: hd,
    vocabSize: v,
  } = config;
  const attention = d * (h + 2 * kv) * hd + h * hd * d;
  const mlp = 3 * d * i;
  const perLayer = attention + mlp + 2 * d;
  return config.numLayers * perLayer + v * d * (config.tieWordEmbeddings ? 1 : 2) + d;
}
