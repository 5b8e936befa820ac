// `runahead worker`: one rank. In a RunaheadJob pod (job mode) rank 0 runs the configured prompt
// once through the chain and every rank exits when its part is over; under the local launcher or a
// benchmark (--serve) the ranks stay up and rank 0 runs whatever Run requests it receives.
import type { Command } from 'commander';
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { DEFAULT_LIMITS, MODE_BY_NAME } from '../../core/protocol.ts';
import { parseSplit } from '../../core/partition.ts';
import { parsePartitionTable, type PartitionTable } from '../../core/partition-table.ts';
import { logger } from '../../core/log.ts';
import type { RunRequest, RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { loadTokenizer } from '../../worker/tokenizer.ts';
import { RankNode, type RankNodeConfig } from '../../worker/chain/rank-node.ts';
import type { TlsFiles } from '../../worker/chain/transport.ts';
import { engineSpec, parseFlags, promptSource, UsageError } from '../options.ts';
import { withEngineFlags, withPromptFlags } from '../engine-options.ts';
import { runSummary } from '../run-report.ts';

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
    .action(async (flags: Record<string, unknown>) => {
      const spec = engineSpec(flags);
      const w = parseFlags(WorkerFlags, flags);
      const chain = parseFlags(ChainFlagsSchema, flags);
      if (w.rank >= w.worldSize)
        throw new UsageError(`--rank ${w.rank} must be below --world-size ${w.worldSize}`);
      const peers = (w.peers ?? '').split(',').filter((p) => p.length > 0);
      if (w.worldSize > 1 && peers.length !== w.worldSize) {
        throw new UsageError(
          `--peers must list ${w.worldSize} addresses (one per rank), got ${peers.length}`,
        );
      }
      const jobPrompt = !w.serve && w.rank === 0 ? promptSource(flags, spec.seed) : null;
      const log = logger('worker', { rank: w.rank });
      const tokenizer = await loadTokenizer(spec.model);
      const engine = await EngineClient.start(spec, (done, total, what) => {
        log.info({ done, total, what }, `loading model: ${Math.floor((100 * done) / total)}%`);
      });
      const config: RankNodeConfig = {
        rank: w.rank,
        worldSize: w.worldSize,
        peers: peers.length > 0 ? peers : [w.listen],
        listen: w.listen,
        tls: tlsFiles(chain),
        limits: {
          maxFrameBytes: chain.maxFrameBytes,
          maxQueuedFrames: chain.maxQueuedFrames,
          peerTimeoutMs: chain.peerTimeoutMs,
        },
        startupTimeoutMs: chain.startupTimeoutMs,
        runTimeoutMs: chain.runTimeoutMs,
        partitionTable: chain.partitionTable ? await readPartitionTable(chain.partitionTable) : null,
      };
      const node = await RankNode.start(config, engine, tokenizer);
      let exitCode = 0;
      try {
        if (w.serve) {
          log.info({ reason: await node.closed }, 'stopping');
        } else if (jobPrompt) {
          exitCode = await runJob(node, chain, jobPrompt, w.json, w.resultFile);
        } else {
          exitCode = await followJob(node, chain.startupTimeoutMs + chain.runTimeoutMs);
        }
      } finally {
        await node.stop();
        await engine.close();
      }
      process.exit(exitCode);
    });
}

async function runJob(
  node: RankNode,
  chain: ChainFlags,
  source: ReturnType<typeof promptSource>,
  json: boolean,
  resultFile: string | undefined,
): Promise<number> {
  const text =
    source.kind === 'text'
      ? source.text
      : source.kind === 'file'
        ? await readFile(source.path, 'utf8')
        : null;
  const request = runRequest(chain, toPrompt(source, text));
  let result: RunResult | null = null;
  let error = '';
  try {
    result = await node.runOnce(request);
  } catch (err) {
    error = (err as Error).message;
  }
  if (resultFile) await writeFile(resultFile, JSON.stringify(result ? runSummary(result) : { error }));
  if (result)
    process.stdout.write(
      json ? `${JSON.stringify(runSummary(result))}\n` : `${JSON.stringify(runSummary(result), null, 2)}\n`,
    );
  else process.stderr.write(`runahead: ${error}\n`);
  await node.shutdownPeers();
  return result ? 0 : 1;
}

/** A non-coordinator rank in job mode: exit once its run is over, or on Shutdown, or at the deadline. */
async function followJob(node: RankNode, deadlineMs: number): Promise<number> {
  const log = logger('worker');
  return new Promise<number>((resolve) => {
    const timer = setTimeout(() => {
      log.error({ deadlineMs }, 'no run finished before the deadline');
      resolve(1);
    }, deadlineMs);
    node.onRunEnded = (error) => {
      clearTimeout(timer);
      resolve(error ? 1 : 0);
    };
    void node.closed.then((reason) => {
      clearTimeout(timer);
      log.info({ reason }, 'stopping');
      resolve(1);
    });
  });
}
