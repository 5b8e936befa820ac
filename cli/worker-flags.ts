// The flags of `runahead worker` (and the chain flags `run` and `bench` share with it), apart from
// what the worker does with them: the contract test (core/worker-config.test.ts) parses
// workerArgv()'s output with exactly these definitions, without loading an engine.
import type { Command } from 'commander';
import { DEFAULT_LIMITS, MODE_BY_NAME } from '../core/protocol.ts';
import { partitionToRequest } from '../core/partition-choice.ts';
import { DEFAULT_CHAIN_TIMEOUTS, type ChainConfig, type JobPrompt } from '../core/worker-config.ts';
import type { RunRequest } from '../core/gen/runahead/v1/rank.ts';
import { withEngineFlags, withPromptFlags } from './engine-options.ts';
import type { RankGroupOptions } from './launcher/rank-group.ts';

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
    .option(
      '--startup-timeout-ms <n>',
      'wait this long for every rank to be ready',
      String(DEFAULT_CHAIN_TIMEOUTS.startupTimeoutMs),
    )
    .option(
      '--run-timeout-ms <n>',
      'fail a run that takes longer',
      String(DEFAULT_CHAIN_TIMEOUTS.runTimeoutMs),
    )
    .option(
      '--kv-transport <kind>',
      'how ranks send K/V: socket (a socket of its own beside gRPC) or grpc (StreamKv calls)',
      'socket',
    )
    .option('--tls-cert <file>', 'this rank’s certificate (PEM) for mutual TLS between ranks')
    .option('--tls-key <file>', 'its private key')
    .option('--tls-ca <file>', 'the CA that signed every rank’s certificate');
}

/** Every flag of `runahead worker`. The operator and the launcher pass all of them (workerArgv). */
export function withWorkerFlags(cmd: Command): Command {
  return withChainFlags(withPromptFlags(withEngineFlags(cmd)))
    .requiredOption('--rank <n>', 'this rank')
    .requiredOption('--world-size <n>', 'ranks in the group')
    .option('--peers <list>', 'host:port of every rank, by rank, comma-separated')
    .option('--listen <address>', 'address this rank serves on', '0.0.0.0:50051')
    .option(
      '--kv-port <n>',
      'port of this rank’s K/V socket, on the host of --listen (0: any free port)',
      '0',
    )
    .option('--serve', 'stay up and run what Run requests ask for, until Shutdown')
    .option('--json', 'rank 0 prints the run result as one JSON object')
    .option('--result-file <file>', 'rank 0 writes the result (or the error) here as JSON')
    .option(
      '--termination-log <file>',
      'write how this rank ended here, for the operator (the pod’s terminationMessagePath)',
    )
    .option(
      '--model-origin <text>',
      'what set --model, named when the model cannot be found (the operator: spec.model.checkpoint.path)',
      '--model',
    );
}

/** What a chain's flags set of a local rank group (run and serve start theirs alike). */
export function groupOptionsOf(
  chain: ChainConfig,
): Required<Pick<RankGroupOptions, 'limits' | 'kvTransport' | 'startupTimeoutMs' | 'runTimeoutMs'>> &
  Pick<RankGroupOptions, 'tls' | 'partitionTable'> {
  return {
    limits: {
      maxFrameBytes: chain.maxFrameBytes,
      maxQueuedFrames: chain.maxQueuedFrames,
      peerTimeoutMs: chain.peerTimeoutMs,
    },
    tls: chain.tls,
    kvTransport: chain.kvTransport,
    startupTimeoutMs: chain.startupTimeoutMs,
    runTimeoutMs: chain.runTimeoutMs,
    ...(chain.partitionTable ? { partitionTable: chain.partitionTable } : {}),
  };
}

export function runRequest(chain: ChainConfig, prompt: RunRequest['prompt']): RunRequest {
  return {
    prompt,
    mode: MODE_BY_NAME[chain.mode],
    ...partitionToRequest(chain.partition),
    maxNewTokens: chain.maxNewTokens,
    debugState: false,
  };
}

/** The prompt of a Run request: a synthetic prompt's length, or text (read from a file already). */
export function toPrompt(source: JobPrompt, text: string | null): RunRequest['prompt'] {
  if (source.kind === 'tokens') return { source: { $case: 'syntheticTokens', value: source.count } };
  return { source: { $case: 'text', value: text ?? '' } };
}
