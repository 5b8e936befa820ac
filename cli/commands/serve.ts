// `runahead serve`: a warm rank group on this machine behind an OpenAI-style completions endpoint.
// N ranks load the model once (the launcher's RankGroup, as `runahead run`) — or, with --ranks-at,
// ranks someone else runs (a RunaheadServer's rank pods) are reached by address — then every request is
// routed by its length — one rank where the cost model says one is faster, the chain with its split
// from there — and run through rank 0 (cli/serve/). Everything checkable is checked before the ranks
// load, in seconds.
import type { Command } from 'commander';
import { z } from 'zod';
import type { CostProfile } from '../../core/cost-model.ts';
import { routePrompt, splitFrom, type RouteContext, type RoutePolicy } from '../../core/length-routing.ts';
import { logger } from '../../core/log.ts';
import { partitionProblem } from '../../core/partition-choice.ts';
import { chainConfigFromFlags, engineConfigFromFlags } from '../../core/worker-config.ts';
import { loadTokenizer } from '../../worker/tokenizer.ts';
import { withEngineFlags } from '../engine-options.ts';
import { engineSpecOf } from '../engine-spec.ts';
import { modelConfig } from '../model-info.ts';
import { checkModel } from '../model-check.ts';
import { parseFlags, UsageError } from '../options.ts';
import { progress } from '../progress.ts';
import { AdmissionQueue } from '../serve/admission-queue.ts';
import { COMPLETION_LIMIT_DEFAULTS } from '../serve/completions-api.ts';
import { LocalGroup } from '../serve/local-group.ts';
import { RemoteGroup } from '../serve/remote-group.ts';
import { ServeFront } from '../serve/serve-front.ts';
import { ServeMetrics } from '../serve/serve-metrics.ts';
import { groupOptionsOf, withChainFlags } from '../worker-flags.ts';
import { readProfile } from './calibrate.ts';
import { readPartitionTable } from './worker.ts';

const int = (flag: string, min: number) =>
  z.coerce
    .number({ error: `${flag} must be a number` })
    .int(`${flag} must be an integer`)
    .min(min, `${flag} must be ≥ ${min}`);

/** host:port or [v6]:port, as --peers takes them. */
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[-a-zA-Z0-9_.]+):[0-9]{1,5}$/;

const ServeFlags = z.object({
  ranks: int('--ranks', 1).max(64, '--ranks must be ≤ 64'),
  host: z.string().min(1),
  port: int('--port', 0).max(65535, '--port must be ≤ 65535'),
  route: z.enum(['auto', 'single', 'split'], { error: '--route must be auto, single or split' }),
  profile: z.string().min(1).optional(),
  singleBelow: int('--single-below', 1).optional(),
  maxQueue: int('--max-queue', 0),
  maxPromptTokens: int('--max-prompt-tokens', 1),
  maxTokens: int('--max-tokens', 1),
  maxBodyBytes: int('--max-body-bytes', 1024),
  requestTimeoutMs: int('--request-timeout-ms', 1),
  servedModelName: z.string().min(1).optional(),
  pinCores: int('--pin-cores', 1).optional(),
  ranksAt: z
    .string()
    .transform((list) => list.split(',').filter((a) => a.length > 0))
    .pipe(
      z
        .array(z.string().regex(HOST_PORT, '--ranks-at takes host:port addresses, comma-separated'))
        .min(1, '--ranks-at must list every rank (host:port, comma-separated)')
        .max(64, '--ranks-at lists at most 64 ranks'),
    )
    .optional(),
});

/** One request holds the chain at a time: a rank node runs one run at a time (run-lifecycle.ts). */
const CONCURRENCY = 1;

async function readProfileFor(path: string, model: string): Promise<CostProfile> {
  const profile = await readProfile(path);
  if (profile.model !== model)
    throw new UsageError(
      `--profile ${path} is calibrated for ${profile.model}; this server serves ${model} (calibrate one for it with runahead bench and runahead calibrate)`,
    );
  return profile;
}

/** --route with --profile or --single-below, as a policy; auto needs one of the two. */
async function routePolicy(f: z.infer<typeof ServeFlags>, model: string): Promise<RoutePolicy> {
  if (f.route !== 'auto') {
    if (f.profile || f.singleBelow)
      throw new UsageError(
        `--profile and --single-below choose where auto routing splits; --route ${f.route} takes neither`,
      );
    return { kind: f.route };
  }
  if (f.profile && f.singleBelow) throw new UsageError('give one of --profile and --single-below, not both');
  if (f.singleBelow) return { kind: 'threshold', singleBelow: f.singleBelow };
  if (f.profile) return { kind: 'cost-model', profile: await readProfileFor(f.profile, model) };
  throw new UsageError(
    '--route auto (the default) needs --profile <cost profile> (runahead calibrate) or --single-below <tokens> to know where one rank is faster; or give --route split or --route single',
  );
}

export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description(
      'keep N local ranks loaded and serve OpenAI-style completions, each prompt routed by its length',
    );
  withChainFlags(withEngineFlags(cmd))
    .option('--ranks <n>', 'number of ranks (worker processes)', '2')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on (0: a free one)', '8000')
    .option('--route <policy>', 'auto (one rank where it is faster, else the chain), single or split', 'auto')
    .option(
      '--profile <file>',
      'auto: the calibrated cost model (runahead calibrate) decides per prompt length',
    )
    .option('--single-below <tokens>', 'auto: prompts shorter than this run on one rank')
    .option('--max-queue <n>', 'requests waiting at most; more are refused with 429', '16')
    .option(
      '--max-prompt-tokens <n>',
      'longest prompt accepted',
      String(COMPLETION_LIMIT_DEFAULTS.maxPromptTokens),
    )
    .option('--max-tokens <n>', 'largest max_tokens accepted', String(COMPLETION_LIMIT_DEFAULTS.maxTokens))
    .option('--max-body-bytes <n>', 'largest request body', String(COMPLETION_LIMIT_DEFAULTS.maxBodyBytes))
    .option(
      '--request-timeout-ms <n>',
      'answer 504 and stop the run after this long (queue included)',
      '120000',
    )
    .option('--served-model-name <name>', 'the model name clients send (default: --model)')
    .option('--pin-cores <k>', 'pin rank i to CPU cores [i·k, (i+1)·k) (Linux taskset)')
    .option(
      '--ranks-at <addresses>',
      'serve ranks already running (`runahead worker --serve`) at these host:port addresses, in rank order, instead of starting them',
    )
    .action(async (flags: Record<string, unknown>, command: Command) => {
      const parsed = parseFlags(ServeFlags, flags);
      if (parsed.ranksAt) {
        if (command.getOptionValueSource('ranks') !== 'default' && parsed.ranks !== parsed.ranksAt.length)
          throw new UsageError(
            `--ranks ${parsed.ranks} but --ranks-at lists ${parsed.ranksAt.length} address(es); give only --ranks-at`,
          );
        if (parsed.pinCores)
          throw new UsageError('--pin-cores pins ranks this command starts; with --ranks-at it starts none');
      }
      const f = { ...parsed, ranks: parsed.ranksAt?.length ?? parsed.ranks };
      if (flags.split !== undefined)
        throw new UsageError(
          '--split: a server splits each prompt by its length; use --partition even|balanced',
        );
      if (flags.mode !== 'runahead')
        throw new UsageError('--mode: a server routes each prompt itself; use --route single|split|auto');
      if (flags.maxNewTokens !== '0')
        throw new UsageError(
          '--max-new-tokens: each request says its own max_tokens (capped by --max-tokens)',
        );
      const engine = engineConfigFromFlags(flags);
      const chain = chainConfigFromFlags(flags);
      await checkModel(engine.model, '--model');
      const table = chain.partitionTable ? await readPartitionTable(chain.partitionTable) : null;
      const problem = partitionProblem(chain.partition, f.ranks, table);
      if (problem) throw new UsageError(problem);
      const policy = await routePolicy(f, engine.model);
      const config = await modelConfig(engine.model);
      const tokenizer = await loadTokenizer(engine.model);
      const ctx: RouteContext = { ranks: f.ranks, partition: chain.partition, table };
      const limits = {
        maxBodyBytes: f.maxBodyBytes,
        maxPromptTokens: f.maxPromptTokens,
        maxTokens: f.maxTokens,
      };
      const log = logger('serve');
      const queue = new AdmissionQueue({ concurrency: CONCURRENCY, capacity: f.maxQueue });
      let backend: LocalGroup | RemoteGroup | null = null;
      const metrics = new ServeMetrics({
        queue: () => queue,
        ready: () => backend?.ready() ?? false,
      });
      const group = groupOptionsOf(chain);
      if (f.ranksAt)
        // The ranks load the model in their own pods; /readyz says when every one serves.
        backend = new RemoteGroup({
          addresses: f.ranksAt,
          tls: chain.tls,
          limits: group.limits,
          runTimeoutMs: chain.runTimeoutMs,
        });
      else {
        const bar = progress(`loading model on ${f.ranks} rank(s)`);
        try {
          backend = await LocalGroup.start({
            ranks: f.ranks,
            spec: engineSpecOf(engine),
            ...group,
            ...(f.pinCores ? { pinCores: f.pinCores } : {}),
            onProgress: (d, t) => {
              bar.update(d, t, '');
            },
            onRestarted: () => {
              metrics.restarted();
            },
          });
        } finally {
          bar.stop();
        }
      }
      const front = await ServeFront.start({
        host: f.host,
        port: f.port,
        model: f.servedModelName ?? engine.model,
        backend,
        queue,
        metrics,
        limits,
        promptCheck: { vocabSize: config.vocabSize, maxPositions: config.maxPositionEmbeddings, limits },
        requestTimeoutMs: f.requestTimeoutMs,
        encode: (text) => tokenizer.encode(text),
        eosTokenIds: config.eosTokenIds,
        route: (contextLength) => routePrompt(policy, contextLength, ctx),
      });
      const from = splitFrom(policy, ctx, f.maxPromptTokens);
      const routing =
        from === null
          ? 'every prompt on one rank'
          : from <= f.ranks
            ? 'every prompt split'
            : `one rank below ${from} tokens`;
      log.info(
        {
          ...(backend instanceof LocalGroup ? { logs: backend.logDir } : { ranksAt: f.ranksAt }),
          port: front.port,
          splitFrom: from,
        },
        'serving',
      );
      process.stdout.write(
        `serving ${f.servedModelName ?? engine.model} on http://${f.host}:${front.port} (${f.ranks} rank(s), ${routing}; queue ${f.maxQueue}, concurrency ${CONCURRENCY})\n`,
      );
      const signal = await new Promise<string>((resolve) => {
        for (const name of ['SIGINT', 'SIGTERM'] as const)
          process.once(name, () => {
            resolve(name);
          });
      });
      log.info({ signal }, 'shutting down');
      await front.close();
      await backend.close();
    });
}
