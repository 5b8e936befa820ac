// What one `runahead worker` process is told, defined once. The operator (a rank pod's args) and
// the local launcher (a child process's argv) build a WorkerConfig and turn it into flags with
// workerArgv(); the worker reads its flags back into a WorkerConfig with workerConfigFromFlags().
// core/worker-config.test.ts holds the two against each other through the worker's real flag
// parser, so a flag renamed or added on one side only fails a test, not a job.
import { z } from 'zod';
import { DTYPES, EXECUTION_PROVIDERS, MAX_RANKS, MODES } from './api/v1alpha1/runahead-job.ts';
import { KV_TRANSPORTS } from './protocol.ts';
import {
  PartitionChoiceSchema,
  partitionFlags,
  partitionFromFlags,
  type PartitionChoice,
} from './partition-choice.ts';

/** "a, b or c" */
const oneOf = (values: readonly string[]) => `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;

const int = (what: string, min: number) =>
  z.coerce
    .number({ error: `${what} must be a number` })
    .int(`${what} must be an integer`)
    .min(min, `${what} must be ≥ ${min}`);

export const EngineConfigSchema = z.object({
  model: z.string({ error: '--model is required (a checkpoint directory or synthetic:<preset>)' }).min(1),
  ep: z.enum(EXECUTION_PROVIDERS, { error: `--ep must be one of ${EXECUTION_PROVIDERS.join(', ')}` }),
  dtype: z.enum(DTYPES, { error: '--dtype must be float32 or float16' }),
  threads: int('--threads', 0),
  seed: int('--seed', 0),
  device: int('--device', 0),
  layersPerGraph: z.union([z.literal('auto'), int('--layers-per-graph', 0)], {
    error: '--layers-per-graph must be auto or an integer ≥ 0',
  }),
  attention: z.enum(['auto', 'fused', 'reference'], {
    error: '--attention must be auto, fused or reference',
  }),
  io: z.enum(['auto', 'native', 'onnxruntime-node'], {
    error: '--io must be auto, native or onnxruntime-node',
  }),
});
export type EngineConfig = z.infer<typeof EngineConfigSchema>;

/** Where rank 0 of a job takes its prompt from (absent: ranks that serve Run requests). */
export const JobPromptSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('tokens'), count: int('--prompt-tokens', 1) }),
  z.object({ kind: z.literal('file'), path: z.string().min(1) }),
  z.object({ kind: z.literal('text'), text: z.string() }),
]);
export type JobPrompt = z.infer<typeof JobPromptSchema>;

export const ChainConfigSchema = z.object({
  mode: z.enum(MODES, { error: `--mode must be ${oneOf(MODES)}` }),
  partition: PartitionChoiceSchema,
  /** Balanced splits by context length (a `runahead tune` table file) for rank 0. */
  partitionTable: z.string().min(1).optional(),
  maxNewTokens: int('--max-new-tokens', 0),
  maxFrameBytes: int('--max-frame-bytes', 1024),
  maxQueuedFrames: int('--max-queued-frames', 1),
  peerTimeoutMs: int('--peer-timeout-ms', 1),
  startupTimeoutMs: int('--startup-timeout-ms', 1),
  runTimeoutMs: int('--run-timeout-ms', 1),
  kvTransport: z.enum(KV_TRANSPORTS, { error: `--kv-transport must be ${oneOf(KV_TRANSPORTS)}` }),
  tls: z.object({ cert: z.string().min(1), key: z.string().min(1), ca: z.string().min(1) }).nullable(),
});
export type ChainConfig = z.infer<typeof ChainConfigSchema>;

export const WorkerConfigSchema = z
  .object({
    rank: int('--rank', 0),
    worldSize: int('--world-size', 1).max(MAX_RANKS, `--world-size must be ≤ ${MAX_RANKS}`),
    /** host:port of every rank, by rank. */
    peers: z.array(z.string().min(1)).min(1, '--peers must list every rank'),
    listen: z.string().min(1),
    /** Port of this rank's K/V socket, on the host of `listen` (0: any free port; peers ask for it). */
    kvPort: int('--kv-port', 0).max(65535, '--kv-port must be ≤ 65535'),
    /** Stay up and run what Run requests ask (the launcher, benchmarks) instead of one job. */
    serve: z.boolean(),
    engine: EngineConfigSchema,
    /** What set the model, named when it cannot be found (the operator: spec.model.checkpoint.path). */
    modelOrigin: z.string().min(1),
    prompt: JobPromptSchema.nullable(),
    chain: ChainConfigSchema,
    terminationLog: z.string().min(1).nullable(),
    resultFile: z.string().min(1).nullable(),
    json: z.boolean(),
  })
  .superRefine((c, ctx) => {
    if (c.rank >= c.worldSize)
      ctx.addIssue({ code: 'custom', message: `--rank ${c.rank} must be below --world-size ${c.worldSize}` });
    if (c.peers.length !== c.worldSize)
      ctx.addIssue({
        code: 'custom',
        message: `--peers must list ${c.worldSize} addresses (one per rank), got ${c.peers.length}`,
      });
    if (c.serve && c.prompt)
      ctx.addIssue({ code: 'custom', message: '--serve takes its prompts from Run requests, not --prompt*' });
    if (!c.serve && c.rank === 0 && !c.prompt)
      ctx.addIssue({
        code: 'custom',
        message: 'rank 0 of a job needs one of --prompt <text>, --prompt-file <file>, --prompt-tokens <n>',
      });
    // Whether the partition can run (a table for balanced, a split that fits) is decided in one
    // place, core/partition-choice.ts, by the worker once it has read the table.
  });
export type WorkerConfig = z.infer<typeof WorkerConfigSchema>;

/** The timeouts every command starts from (a job passes its own, from its spec). */
export const DEFAULT_CHAIN_TIMEOUTS = {
  startupTimeoutMs: 300_000,
  runTimeoutMs: 600_000,
} as const;

/** `runahead worker …` flags for a config: everything the worker needs, nothing left to a default. */
export function workerArgv(c: WorkerConfig): string[] {
  const e = c.engine;
  const k = c.chain;
  const args = [
    'worker',
    ...['--model', e.model, '--model-origin', c.modelOrigin, '--seed', String(e.seed)],
    ...['--rank', String(c.rank), '--world-size', String(c.worldSize)],
    ...['--peers', c.peers.join(','), '--listen', c.listen, '--kv-port', String(c.kvPort)],
    ...(c.serve ? ['--serve'] : []),
    ...['--ep', e.ep, '--dtype', e.dtype, '--threads', String(e.threads), '--device', String(e.device)],
    ...['--layers-per-graph', String(e.layersPerGraph), '--attention', e.attention, '--io', e.io],
    ...['--mode', k.mode, ...partitionFlags(k.partition)],
    ...(k.partitionTable ? ['--partition-table', k.partitionTable] : []),
    ...['--max-new-tokens', String(k.maxNewTokens)],
    ...['--max-frame-bytes', String(k.maxFrameBytes), '--max-queued-frames', String(k.maxQueuedFrames)],
    ...['--peer-timeout-ms', String(k.peerTimeoutMs), '--kv-transport', k.kvTransport],
    ...['--startup-timeout-ms', String(k.startupTimeoutMs), '--run-timeout-ms', String(k.runTimeoutMs)],
    ...(k.tls ? ['--tls-cert', k.tls.cert, '--tls-key', k.tls.key, '--tls-ca', k.tls.ca] : []),
    ...(c.terminationLog ? ['--termination-log', c.terminationLog] : []),
    ...(c.resultFile ? ['--result-file', c.resultFile] : []),
    ...(c.json ? ['--json'] : []),
  ];
  if (c.prompt?.kind === 'tokens') args.push('--prompt-tokens', String(c.prompt.count));
  else if (c.prompt?.kind === 'file') args.push('--prompt-file', c.prompt.path);
  else if (c.prompt?.kind === 'text') args.push('--prompt', c.prompt.text);
  return args;
}

/** Commander's options of a command (camelCase keys, values as typed). */
export type Flags = Record<string, unknown>;

/** A flag that cannot be used as given: a configuration error, named by its flag. */
export class FlagsError extends Error {
  override readonly name = 'FlagsError';
}

function given(flags: Flags, key: string): string | undefined {
  const v = flags[key];
  return typeof v === 'string' ? v : undefined;
}

function parse<S extends z.ZodType>(schema: S, raw: unknown): z.infer<S> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new FlagsError(parsed.error.issues.map((i) => i.message).join('; '));
  return parsed.data;
}

export function engineConfigFromFlags(flags: Flags): EngineConfig {
  return parse(EngineConfigSchema, {
    model: given(flags, 'model'),
    ep: given(flags, 'ep'),
    dtype: given(flags, 'dtype'),
    threads: given(flags, 'threads'),
    seed: given(flags, 'seed'),
    device: given(flags, 'device'),
    layersPerGraph: given(flags, 'layersPerGraph'),
    attention: given(flags, 'attention'),
    io: given(flags, 'io'),
  });
}

/** --prompt, --prompt-file, --prompt-tokens: at most one (null: none given). */
export function jobPromptFromFlags(flags: Flags): JobPrompt | null {
  const prompts = [
    given(flags, 'prompt') !== undefined ? { kind: 'text', text: given(flags, 'prompt') } : null,
    given(flags, 'promptFile') !== undefined ? { kind: 'file', path: given(flags, 'promptFile') } : null,
    given(flags, 'promptTokens') !== undefined
      ? { kind: 'tokens', count: given(flags, 'promptTokens') }
      : null,
  ].filter((p) => p !== null);
  if (prompts.length > 1)
    throw new FlagsError('give exactly one of --prompt <text>, --prompt-file <file>, --prompt-tokens <n>');
  return prompts.length === 0 ? null : parse(JobPromptSchema, prompts[0]);
}

export function chainConfigFromFlags(flags: Flags): ChainConfig {
  const tlsGiven = ['tlsCert', 'tlsKey', 'tlsCa'].filter((f) => given(flags, f) !== undefined).length;
  if (tlsGiven !== 0 && tlsGiven !== 3)
    throw new FlagsError('mutual TLS needs all of --tls-cert, --tls-key and --tls-ca');
  let partition: PartitionChoice;
  try {
    partition = partitionFromFlags(given(flags, 'partition'), given(flags, 'split'));
  } catch (err) {
    throw new FlagsError((err as Error).message);
  }
  return parse(ChainConfigSchema, {
    mode: given(flags, 'mode'),
    partition,
    ...(given(flags, 'partitionTable') ? { partitionTable: given(flags, 'partitionTable') } : {}),
    maxNewTokens: given(flags, 'maxNewTokens'),
    maxFrameBytes: given(flags, 'maxFrameBytes'),
    maxQueuedFrames: given(flags, 'maxQueuedFrames'),
    peerTimeoutMs: given(flags, 'peerTimeoutMs'),
    startupTimeoutMs: given(flags, 'startupTimeoutMs'),
    runTimeoutMs: given(flags, 'runTimeoutMs'),
    kvTransport: given(flags, 'kvTransport'),
    tls:
      tlsGiven === 3
        ? { cert: given(flags, 'tlsCert'), key: given(flags, 'tlsKey'), ca: given(flags, 'tlsCa') }
        : null,
  });
}

/** Read `runahead worker`'s flags into its config; a bad flag is refused by name. */
export function workerConfigFromFlags(flags: Flags): WorkerConfig {
  const listen = given(flags, 'listen') ?? '';
  const peers = (given(flags, 'peers') ?? '').split(',').filter((p) => p.length > 0);
  return parse(WorkerConfigSchema, {
    rank: given(flags, 'rank'),
    worldSize: given(flags, 'worldSize'),
    // A group of one needs no peer list: it is its own.
    peers: peers.length === 0 && listen ? [listen] : peers,
    listen,
    kvPort: given(flags, 'kvPort'),
    serve: flags.serve === true,
    engine: engineConfigFromFlags(flags),
    modelOrigin: given(flags, 'modelOrigin') ?? '--model',
    prompt: jobPromptFromFlags(flags),
    chain: chainConfigFromFlags(flags),
    terminationLog: given(flags, 'terminationLog') ?? null,
    resultFile: given(flags, 'resultFile') ?? null,
    json: flags.json === true,
  });
}
