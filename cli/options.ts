// Options shared by the commands, validated with zod at the boundary: a bad value is refused with
// the flag's name and what would be accepted.
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { EXECUTION_PROVIDERS } from '../core/execution-providers.ts';
import type { EngineSpec } from '../worker/runtime/layer-engine.ts';
import { engineConfigFromFlags, jobPromptFromFlags } from '../core/worker-config.ts';
import { engineSpecOf } from './engine-spec.ts';
import type { PromptSource } from '../worker/prompt.ts';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function parseFlags<S extends z.ZodType>(schema: S, flags: unknown): z.infer<S> {
  const result = schema.safeParse(flags);
  if (!result.success) throw new UsageError(result.error.issues.map((i) => i.message).join('; '));
  return result.data;
}

/** The engine a command's flags ask for; `inChain`: the process is one rank of several. */
export function engineSpec(flags: Record<string, unknown>, inChain = false): EngineSpec {
  return engineSpecOf(engineConfigFromFlags(flags), inChain);
}

/** Exactly one of --prompt, --prompt-file, --prompt-tokens (a synthetic prompt takes `seed`). */
export function promptSource(flags: Record<string, unknown>, seed: number): PromptSource {
  const p = jobPromptFromFlags(flags);
  if (!p)
    throw new UsageError('give exactly one of --prompt <text>, --prompt-file <file>, --prompt-tokens <n>');
  return p.kind === 'tokens' ? { ...p, seed } : p;
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
  io: [
    '--io <path>',
    'how graphs run: native (the ort_io addon: K/V into reused pinned host buffers, values between graphs left on the GPU; make native) or onnxruntime-node (auto: native on a GPU where the addon is built)',
    'auto',
  ],
  attention: [
    '--attention <kind>',
    'fused (onnxruntime GroupQueryAttention) or reference (explicit ops) (auto: fused where it runs)',
    'auto',
  ],
} as const;
