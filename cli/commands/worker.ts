// `runahead worker`: one rank. In a RunaheadJob pod (job mode) rank 0 runs the configured prompt
// once through the chain and every rank exits when its part is over; under the local launcher or a
// benchmark (--serve) the ranks stay up and rank 0 runs whatever Run requests it receives.
import { CommanderError, type Command } from 'commander';
import { readFile, writeFile } from 'node:fs/promises';
import { parsePartitionTable, type PartitionTable } from '../../core/partition-table.ts';
import { partitionProblem } from '../../core/partition-choice.ts';
import { workerConfigFromFlags } from '../../core/worker-config.ts';
import { logger } from '../../core/log.ts';
import type { RunRequest, RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { loadTokenizer } from '../../worker/tokenizer.ts';
import { RankNode } from '../../worker/chain/rank-node.ts';
import { RunFailure } from '../../worker/chain/rank-run.ts';
import { UsageError } from '../options.ts';
import { engineSpecOf } from '../engine-spec.ts';
import { checkModel } from '../model-check.ts';
import { readPromptText } from '../prompt-text.ts';
import { runRequest, toPrompt, withWorkerFlags } from '../worker-flags.ts';
import { runSummary } from '../run-report.ts';
import { runOutcome } from '../run-outcome.ts';
import { failed, succeeded, writeTerminationLog, type WorkerEnd } from '../worker-exit.ts';

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

export function registerWorker(program: Command): void {
  const cmd = program
    .command('worker')
    .description('run one rank of a KV-Runahead group (what a RunaheadJob pod runs)');
  withWorkerFlags(cmd)
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

async function runWorker(flags: Record<string, unknown>): Promise<WorkerEnd> {
  const config = workerConfigFromFlags(flags);
  const { chain } = config;
  const spec = engineSpecOf(config.engine, config.worldSize > 1);
  const coordinator = !config.serve && config.rank === 0;
  const promptText = config.prompt ? await readPromptText(config.prompt) : null;
  const request = config.prompt ? runRequest(chain, toPrompt(config.prompt, promptText)) : null;
  const partitionTable = chain.partitionTable ? await readPartitionTable(chain.partitionTable) : null;
  if (coordinator) {
    const ranks = chain.mode === 'single' ? 1 : config.worldSize;
    const tokens = config.prompt?.kind === 'tokens' ? config.prompt.count : undefined;
    const problem = partitionProblem(chain.partition, ranks, partitionTable, tokens);
    if (problem) throw new UsageError(problem);
  }
  await checkModel(spec.model, config.modelOrigin);

  const log = logger('worker', { rank: config.rank });
  const tokenizer = await loadTokenizer(spec.model);
  const engine = await EngineClient.start(spec, (done, total, what) => {
    log.info({ done, total, what }, `loading model: ${Math.floor((100 * done) / total)}%`);
  });
  let node: RankNode;
  try {
    node = await RankNode.start(
      {
        rank: config.rank,
        worldSize: config.worldSize,
        peers: config.peers,
        listen: config.listen,
        kvPort: config.kvPort,
        kvTransport: chain.kvTransport,
        tls: chain.tls,
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
    if (config.serve) {
      log.info({ reason: await node.closed }, 'stopping');
      return succeeded(config.rank);
    }
    if (request) return await runJob(node, config.rank, request, config.json, config.resultFile ?? undefined);
    return await followJob(node, config.rank, chain.startupTimeoutMs + chain.runTimeoutMs);
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
      resolve(failed(rank, RunFailure.at(rank, `no run finished within ${deadlineMs} ms`)));
    }, deadlineMs);
    node.onRunEnded = (failure) => {
      clearTimeout(timer);
      resolve(failure ? failed(rank, failure) : succeeded(rank));
    };
    void node.closed.then(async (reason) => {
      // Rank 0's Shutdown can overtake its answer to this rank's last report (two connections): a
      // run that has ended well by then must count as ended well.
      await node.runSettled(2000);
      clearTimeout(timer);
      log.info({ reason }, 'stopping');
      // Rank 0 ends the job this way when its run failed before this rank's part began; its own
      // termination message has the cause.
      resolve(failed(rank, RunFailure.at(rank, `stopped by rank 0 before its run ended (${reason})`)));
    });
  });
}
