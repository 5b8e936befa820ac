// `runahead worker`: one rank. In a RunaheadJob pod (job mode) rank 0 runs the configured prompt
// once through the chain and every rank exits when its part is over; under the local launcher or a
// benchmark (--serve) the ranks stay up and rank 0 runs whatever Run requests it receives.
import { CommanderError, type Command } from 'commander';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { DEFAULT_LIMITS, MODE_BY_NAME } from '../../core/protocol.ts';
import { parseSplit } from '../../core/partition.ts';
import { parsePartitionTable, type PartitionTable } from '../../core/partition-table.ts';
import { logger } from '../../core/log.ts';
import type { RunRequest, RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { loadTokenizer } from '../../worker/tokenizer.ts';
import { RankNode } from '../../worker/chain/rank-node.ts';
import { RunFailure } from '../../worker/chain/rank-run.ts';
import { isSynthetic, SYNTHETIC_PREFIX } from '../../worker/model/load.ts';
import { presetConfig } from '../../worker/model/presets.ts';
import type { PromptSource } from '../../worker/prompt.ts';
import type { TlsFiles } from '../../worker/chain/transport.ts';
import { engineSpec, parseFlags, promptSource, UsageError } from '../options.ts';
import { withEngineFlags, withPromptFlags } from '../engine-options.ts';
import { runSummary } from '../run-report.ts';
import { runOutcome } from '../run-outcome.ts';
import { failed, succeeded, writeTerminationLog, WorkerConfigError, type WorkerEnd } from '../worker-exit.ts';

const ms = (flag: string) =>
  z.coerce.number().int(`${flag} must be an integer`).positive(`${flag} must be > 0`);

export const ChainFlagsSchema = z.object({
  mode: z.enum(['runahead', 'tsp', 'single'], { error: '--mode must be runahead, tsp or single' }),
  split: z.string().optional(),
  partition: z.enum(['even', 'balanced'], { error: '--partition must be even or balanced' }),
  partitionTable: z.string().optional(),
  maxNewTokens: z.coerce.number().int().min(0, '--max-new-tokens must be ≥ 0'),
  maxFrameBytes: z.coerce.number().int().min(1024, '--max-frame-bytes must be ≥ 1024'),
  maxQueuedFrames: z.coerce.number().int().min(1, '--max-queued-frames must be ≥ 1'),
  peerTimeoutMs: ms('--peer-timeout-ms'),
  startupTimeoutMs: ms('--startup-timeout-ms'),
  runTimeoutMs: ms('--run-timeout-ms'),
  tlsCert: z.string().optional(),
  tlsKey: z.string().optional(),
  tlsCa: z.string().optional(),
});
export type ChainFlags = z.infer<typeof ChainFlagsSchema>;

const WorkerFlags = z.object({
  rank: z.coerce.number({ error: '--rank must be a number' }).int().min(0, '--rank must be ≥ 0'),
  worldSize: z.coerce
    .number({ error: '--world-size must be a number' })
    .int()
    .min(1, '--world-size must be ≥ 1'),
  peers: z.string().optional(),
  listen: z.string().min(1),
  serve: z.boolean().default(false),
  json: z.boolean().default(false),
  resultFile: z.string().optional(),
  modelOrigin: z.string(),
});

/** Flags shared by `worker`, `run` and `bench`: the chain's mode, split, limits and TLS files. */
export function withChainFlags(cmd: Command): Command {
  return cmd
    .option('--mode <mode>', 'runahead (KV-Runahead), tsp (all-gather baseline) or single', 'runahead')
    .option('--split <boundaries>', 'explicit boundaries 0,b1,…,C (overrides --partition)')
    .option('--partition <kind>', 'even, or balanced (from --partition-table)', 'even')
    .option('--partition-table <file>', 'balanced splits by context length (runahead tune)')
    .option('--max-new-tokens <n>', 'greedy tokens after the first', '0')
    .option('--max-frame-bytes <n>', 'largest K/V payload per frame', String(DEFAULT_LIMITS.maxFrameBytes))
    .option(
      '--max-queued-frames <n>',
      'frames queued per outgoing link before the rank waits',
      String(DEFAULT_LIMITS.maxQueuedFrames),
    )
    .option(
      '--peer-timeout-ms <n>',
      'fail the run when a peer is silent this long',
      String(DEFAULT_LIMITS.peerTimeoutMs),
    )
    .option('--startup-timeout-ms <n>', 'wait this long for every rank to be ready', '300000')
    .option('--run-timeout-ms <n>', 'fail a run that takes longer', '600000')
    .option('--tls-cert <file>', 'this rank’s certificate (PEM) for mutual TLS between ranks')
    .option('--tls-key <file>', 'its private key')
    .option('--tls-ca <file>', 'the CA that signed every rank’s certificate');
}

export async function readPartitionTable(path: string): Promise<PartitionTable> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--partition-table ${path}: ${(err as Error).message}`);
  }
  try {
    return parsePartitionTable(JSON.parse(text) as unknown, path);
  } catch (err) {
    throw new UsageError(`--partition-table ${(err as Error).message}`);
  }
}

export function tlsFiles(f: ChainFlags): TlsFiles | null {
  const given = [f.tlsCert, f.tlsKey, f.tlsCa].filter((x) => x !== undefined).length;
  if (given === 0) return null;
  if (given !== 3) throw new UsageError('mutual TLS needs all of --tls-cert, --tls-key and --tls-ca');
  return { cert: f.tlsCert!, key: f.tlsKey!, ca: f.tlsCa! };
}

export function runRequest(f: ChainFlags, prompt: RunRequest['prompt']): RunRequest {
  return {
    prompt,
    mode: MODE_BY_NAME[f.mode],
    boundaries: f.split ? parseSplit(f.split) : [],
    maxNewTokens: f.maxNewTokens,
    partition: f.partition,
    debugState: false,
  };
}

export function toPrompt(source: ReturnType<typeof promptSource>, text: string | null): RunRequest['prompt'] {
  if (source.kind === 'tokens') return { source: { $case: 'syntheticTokens', value: source.count } };
  return { source: { $case: 'text', value: text ?? '' } };
}

export function registerWorker(program: Command): void {
  const cmd = program
    .command('worker')
    .description('run one rank of a KV-Runahead group (what a RunaheadJob pod runs)');
  withChainFlags(withPromptFlags(withEngineFlags(cmd)))
    .requiredOption('--rank <n>', 'this rank', process.env.RUNAHEAD_RANK)
    .requiredOption('--world-size <n>', 'ranks in the group', process.env.RUNAHEAD_WORLD_SIZE)
    .option('--peers <list>', 'host:port of every rank, by rank, comma-separated', process.env.RUNAHEAD_PEERS)
    .option(
      '--listen <address>',
      'address this rank serves on',
      process.env.RUNAHEAD_LISTEN ?? '0.0.0.0:50051',
    )
    .option('--serve', 'stay up and run what Run requests ask for, until Shutdown')
    .option('--json', 'rank 0 prints the run result as one JSON object')
    .option('--result-file <file>', 'rank 0 writes the result (or the error) here as JSON')
    .option(
      '--termination-log <file>',
      'write how this rank ended here, for the operator (the pod’s terminationMessagePath)',
      process.env.RUNAHEAD_TERMINATION_LOG,
    )
    .option(
      '--model-origin <text>',
      'what set --model, named when the model cannot be found (the operator: spec.model.checkpoint.path)',
      process.env.RUNAHEAD_MODEL_ORIGIN ?? '--model',
    )
    // Flags commander itself refuses (unknown, missing) are configuration errors too: exit 2, and
    // say so in the termination log, as for every other way this command ends.
    .exitOverride((err) => {
      if (err.exitCode === 0) throw err;
      const opts = cmd.opts<{ rank?: string; terminationLog?: string }>();
      const end = failed(rankOf(opts.rank), new UsageError(err.message.replace(/^error: /, '')));
      // main() returns the code at once; the pending write keeps the process alive until it is done.
      void writeTerminationLog(opts.terminationLog, end.message);
      throw new CommanderError(end.code, err.code, err.message);
    })
    .action(async (flags: Record<string, unknown>) => {
      const rank = rankOf(flags.rank);
      const terminationLog = typeof flags.terminationLog === 'string' ? flags.terminationLog : undefined;
      let end: WorkerEnd;
      try {
        end = await runWorker(flags);
      } catch (err) {
        end = failed(rank, err);
      }
      if (!end.message.ok) process.stderr.write(`runahead: ${end.message.error}\n`);
      await writeTerminationLog(terminationLog, end.message);
      process.exit(end.code);
    });
}

/** The rank for messages written before (or without) valid flags: 0 when it cannot be read. */
function rankOf(flag: unknown): number {
  const n = Number(flag);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

/** A model that is not there fails the rank now, before it loads or waits for anything. */
async function checkModel(model: string, origin: string): Promise<void> {
  if (isSynthetic(model)) {
    try {
      presetConfig(model.slice(SYNTHETIC_PREFIX.length));
    } catch (err) {
      throw new WorkerConfigError(`model: ${(err as Error).message} (${origin})`);
    }
    return;
  }
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(model)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WorkerConfigError(
      code === 'ENOENT'
        ? `model: checkpoint directory ${model} does not exist (${origin})`
        : `model: cannot read checkpoint directory ${model} (${origin}): ${(err as Error).message}`,
    );
  }
  if (!isDirectory) throw new WorkerConfigError(`model: ${model} is not a directory (${origin})`);
}

async function readPrompt(source: PromptSource): Promise<string | null> {
  if (source.kind === 'text') return source.text;
  if (source.kind !== 'file') return null;
  try {
    return await readFile(source.path, 'utf8');
  } catch (err) {
    throw new WorkerConfigError(`--prompt-file ${source.path}: ${(err as Error).message}`);
  }
}

/** Check what can be checked without the model, so a wrong job fails in seconds, not at a timeout. */
function checkPartition(chain: ChainFlags, worldSize: number, table: PartitionTable | null): void {
  if (chain.split !== undefined || chain.partition !== 'balanced') return;
  const ranks = chain.mode === 'single' ? 1 : worldSize;
  if (ranks === 1) return;
  if (!table)
    throw new UsageError(
      '--partition balanced needs --partition-table <table.json> (runahead tune makes one)',
    );
  if (table.ranks !== ranks)
    throw new UsageError(`the partition table is for ${table.ranks} ranks; this job has ${ranks}`);
}

async function runWorker(flags: Record<string, unknown>): Promise<WorkerEnd> {
  const w = parseFlags(WorkerFlags, flags);
  const spec = engineSpec(flags, w.worldSize > 1);
  const chain = parseFlags(ChainFlagsSchema, flags);
  if (w.rank >= w.worldSize)
    throw new UsageError(`--rank ${w.rank} must be below --world-size ${w.worldSize}`);
  const peers = (w.peers ?? '').split(',').filter((p) => p.length > 0);
  if (w.worldSize > 1 && peers.length !== w.worldSize) {
    throw new UsageError(`--peers must list ${w.worldSize} addresses (one per rank), got ${peers.length}`);
  }
  const tls = tlsFiles(chain);
  const coordinator = !w.serve && w.rank === 0;
  const jobPrompt = coordinator ? promptSource(flags, spec.seed) : null;
  const promptText = jobPrompt ? await readPrompt(jobPrompt) : null;
  const request = jobPrompt ? runRequest(chain, toPrompt(jobPrompt, promptText)) : null;
  const partitionTable = chain.partitionTable ? await readPartitionTable(chain.partitionTable) : null;
  if (coordinator) checkPartition(chain, w.worldSize, partitionTable);
  await checkModel(spec.model, w.modelOrigin);

  const log = logger('worker', { rank: w.rank });
  const tokenizer = await loadTokenizer(spec.model);
  const engine = await EngineClient.start(spec, (done, total, what) => {
    log.info({ done, total, what }, `loading model: ${Math.floor((100 * done) / total)}%`);
  });
  let node: RankNode;
  try {
    node = await RankNode.start(
      {
        rank: w.rank,
        worldSize: w.worldSize,
        peers: peers.length > 0 ? peers : [w.listen],
        listen: w.listen,
        tls,
        limits: {
          maxFrameBytes: chain.maxFrameBytes,
          maxQueuedFrames: chain.maxQueuedFrames,
          peerTimeoutMs: chain.peerTimeoutMs,
        },
        startupTimeoutMs: chain.startupTimeoutMs,
        runTimeoutMs: chain.runTimeoutMs,
        partitionTable,
      },
      engine,
      tokenizer,
    );
  } catch (err) {
    await engine.close();
    throw err;
  }
  try {
    if (w.serve) {
      log.info({ reason: await node.closed }, 'stopping');
      return succeeded(w.rank);
    }
    if (request) return await runJob(node, w.rank, request, w.json, w.resultFile);
    return await followJob(node, w.rank, chain.startupTimeoutMs + chain.runTimeoutMs);
  } finally {
    await node.stop();
    await engine.close();
  }
}

async function runJob(
  node: RankNode,
  rank: number,
  request: RunRequest,
  json: boolean,
  resultFile: string | undefined,
): Promise<WorkerEnd> {
  let result: RunResult | null = null;
  let failure: unknown = null;
  try {
    result = await node.runOnce(request);
  } catch (err) {
    failure = err;
  }
  const summary = result ? runSummary(result) : null;
  const end = summary ? succeeded(rank, runOutcome(summary)) : failed(rank, failure);
  if (resultFile)
    await writeFile(
      resultFile,
      JSON.stringify(summary ?? { error: end.message.ok ? '' : end.message.error }),
    );
  if (summary)
    process.stdout.write(json ? `${JSON.stringify(summary)}\n` : `${JSON.stringify(summary, null, 2)}\n`);
  await node.shutdownPeers();
  return end;
}

/** A non-coordinator rank in job mode: exit once its run is over, or on Shutdown, or at the deadline. */
async function followJob(node: RankNode, rank: number, deadlineMs: number): Promise<WorkerEnd> {
  const log = logger('worker');
  return new Promise<WorkerEnd>((resolve) => {
    const timer = setTimeout(() => {
      log.error({ deadlineMs }, 'no run finished before the deadline');
      resolve(failed(rank, new RunFailure(`rank ${rank}: no run finished within ${deadlineMs} ms`)));
    }, deadlineMs);
    node.onRunEnded = (error) => {
      clearTimeout(timer);
      resolve(error ? failed(rank, new RunFailure(error)) : succeeded(rank));
    };
    void node.closed.then(async (reason) => {
      // Rank 0's Shutdown can overtake its answer to this rank's last report (two connections): a
      // run that has ended well by then must count as ended well.
      await node.runSettled(2000);
      clearTimeout(timer);
      log.info({ reason }, 'stopping');
      // Rank 0 ends the job this way when its run failed before this rank's part began; its own
      // termination message has the cause.
      resolve(
        failed(rank, new RunFailure(`rank ${rank}: stopped by rank 0 before its run ended (${reason})`)),
      );
    });
  });
}
