// Options shared by the commands, validated with zod at the boundary: a bad value is refused with
// the flag's name and what would be accepted.
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { EXECUTION_PROVIDERS } from '../core/execution-providers.ts';
import type { EngineSpec } from '../worker/runtime/layer-engine.ts';
import type { PromptSource } from '../worker/prompt.ts';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

const intFlag = (flag: string, min: number) =>
  z.coerce
    .number({ error: `${flag} must be a number` })
    .int(`${flag} must be an integer`)
    .min(min, `${flag} must be ≥ ${min}`);

export const EngineFlagsSchema = z.object({
  model: z.string({ error: '--model is required (a checkpoint directory or synthetic:<preset>)' }).min(1),
  ep: z.enum(EXECUTION_PROVIDERS, { error: `--ep must be one of ${EXECUTION_PROVIDERS.join(', ')}` }),
  dtype: z.enum(['float32', 'float16'], { error: '--dtype must be float32 or float16' }),
  threads: intFlag('--threads', 0),
  seed: intFlag('--seed', 0),
  device: intFlag('--device', 0),
  layersPerGraph: z.union([z.literal('auto'), intFlag('--layers-per-graph', 0)], {
    error: '--layers-per-graph must be auto or an integer ≥ 0',
  }),
  attention: z.enum(['auto', 'fused', 'reference'], {
    error: '--attention must be auto, fused or reference',
  }),
});

export const PromptFlagsSchema = z.object({
  prompt: z.string().optional(),
  promptFile: z.string().optional(),
  promptTokens: intFlag('--prompt-tokens', 1).optional(),
});

export function parseFlags<S extends z.ZodType>(schema: S, flags: unknown): z.infer<S> {
  const result = schema.safeParse(flags);
  if (!result.success) throw new UsageError(result.error.issues.map((i) => i.message).join('; '));
  return result.data;
}

/** The engine a command's flags ask for; `inChain`: the process is one rank of several. */
export function engineSpec(flags: unknown, inChain = false): EngineSpec {
  const f = parseFlags(EngineFlagsSchema, flags);
  return {
    model: f.model,
    ep: f.ep,
    dtype: f.dtype,
    threads: f.threads,
    seed: f.seed,
    deviceId: f.device,
    inChain,
    ...(f.layersPerGraph === 'auto' ? {} : { layersPerGraph: f.layersPerGraph }),
    ...(f.attention === 'auto' ? {} : { attention: f.attention }),
  };
}

export function promptSource(flags: unknown, seed: number): PromptSource {
  const f = parseFlags(PromptFlagsSchema, flags);
  const given = [f.prompt !== undefined, f.promptFile !== undefined, f.promptTokens !== undefined].filter(
    Boolean,
  ).length;
  if (given !== 1)
    throw new UsageError('give exactly one of --prompt <text>, --prompt-file <file>, --prompt-tokens <n>');
  if (f.prompt !== undefined) return { kind: 'text', text: f.prompt };
  if (f.promptFile !== undefined) return { kind: 'file', path: f.promptFile };
  return { kind: 'tokens', count: f.promptTokens ?? 1, seed };
}

/** Flags every engine-running command takes, with their defaults. */
export const ENGINE_FLAG_HELP = {
  model: ['--model <ref>', 'checkpoint directory, or synthetic:<preset> (tiny, small, llama-7b, llama3-8b)'],
  ep: ['--ep <name>', `execution provider: ${EXECUTION_PROVIDERS.join(', ')}`, 'cpu'],
  dtype: ['--dtype <type>', 'compute dtype: float32 or float16', 'float32'],
  threads: [
    '--threads <n>',
    'CPU threads per rank for one operator (0: all cores)',
    String(Math.min(4, availableParallelism())),
  ],
  seed: ['--seed <n>', 'seed of a synthetic model and prompt', '0'],
  device: ['--device <n>', 'GPU index for --ep cuda', '0'],
  layersPerGraph: [
    '--layers-per-graph <n>',
    'layers per onnxruntime graph: 0 one graph of the model, 1 one per projection/attention, k: cut after every k-th projection (auto: 1 on cpu; on a GPU 0 for a rank alone, 4 in a chain)',
    'auto',
  ],
  attention: [
    '--attention <kind>',
    'fused (onnxruntime GroupQueryAttention) or reference (explicit ops) (auto: fused where it runs)',
    'auto',
  ],
} as const;
