// The local launcher's rank group: N `runahead worker --serve` processes on this machine, connected
// over real gRPC on loopback — the same workers, flags and code paths as the pods of a RunaheadJob.
// It watches every process: one that dies fails the pending run at once, naming the rank, its exit
// status and the end of its log; close() asks all to shut down and kills what does not.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type {
  FirstTokenEvent,
  RunEvent,
  RunRequest,
  RunResult,
  TokenEvent,
} from '../../core/gen/runahead/v1/rank.ts';
import { DEFAULT_LIMITS, type KvTransport, type LinkLimits } from '../../core/protocol.ts';
import { WorkerExit } from '../../core/api/termination-message.ts';
import { EVEN } from '../../core/partition-choice.ts';
import { DEFAULT_CHAIN_TIMEOUTS, workerArgv, type EngineConfig } from '../../core/worker-config.ts';
import type { EngineSpec } from '../../worker/runtime/layer-engine.ts';
import { Peers, type TlsFiles } from '../../worker/chain/transport.ts';
import { MALLOC_TUNING_ENV } from '../../worker/runtime/ort.ts';
import { abortError } from '../../core/abort-error.ts';
import { freePorts } from './ports.ts';

export interface RankGroupOptions {
  readonly ranks: number;
  readonly spec: EngineSpec;
  readonly limits?: LinkLimits;
  readonly tls?: TlsFiles | null;
  readonly startupTimeoutMs?: number;
  readonly runTimeoutMs?: number;
  /** Balanced splits for rank 0 (a `runahead tune` table file). */
  readonly partitionTable?: string;
  /** How ranks send K/V (default: socket). */
  readonly kvTransport?: KvTransport;
  /** Pin rank i to CPU cores [i·k, (i+1)·k) with taskset, so ranks do not share cores. */
  readonly pinCores?: number;
  /** Where each rank's stderr goes (default: a fresh temporary directory). */
  readonly logDir?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Model-load progress summed over ranks. */
  readonly onProgress?: (done: number, total: number) => void;
}

interface RankProcess {
  readonly rank: number;
  readonly child: ChildProcess;
  readonly address: string;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const BIN = new URL('../../bin/runahead.js', import.meta.url).pathname;
/** How long ranks get to stop after one of them died or the run failed, before they are killed. */
export const FAILED_GRACE_MS = 1500;

/** The worker flags' engine part, from the engine spec a command built. */
function engineConfigOf(spec: EngineSpec): EngineConfig {
  return {
    model: spec.model,
    ep: spec.ep,
    dtype: spec.dtype,
    threads: spec.threads,
    seed: spec.seed,
    device: spec.deviceId,
    layersPerGraph: spec.layersPerGraph ?? 'auto',
    attention: spec.attention ?? 'auto',
    io: spec.io ?? 'auto',
  };
}

export class RankGroupError extends Error {
  override readonly name = 'RankGroupError';
  /** How the launcher should exit: 2 when a rank exited with a configuration error, else 1. */
  readonly exitCode: number;
  /**
   * What went wrong, for a caller that answers for it (runahead serve): a rank process exited, the
   * run failed in a way another attempt may not (ABORTED: a rank failed; UNAVAILABLE: busy), or
   * rank 0 refused it (another gRPC status).
   */
  readonly failure:
    { readonly kind: 'rank-exited'; readonly rank: number } | { readonly kind: 'run'; readonly code: status };
  constructor(
    message: string,
    exitCode: number = WorkerExit.Failed,
    failure: RankGroupError['failure'] = { kind: 'run', code: status.UNKNOWN },
  ) {
    super(message);
    this.exitCode = exitCode;
    this.failure = failure;
  }
}

/** A failed call to rank 0 as the group's error, keeping its gRPC status. */
function callError(err: ServiceError): RankGroupError {
  return new RankGroupError(err.details || err.message, WorkerExit.Failed, { kind: 'run', code: err.code });
}

export interface StreamOptions {
  /** Aborting it cancels the call: rank 0 stops the run on every rank. */
  readonly signal?: AbortSignal;
  /** The first token, the moment rank 0 has it. */
  readonly onFirstToken?: (event: FirstTokenEvent) => void;
  /** Each later token, in order, as rank 0 gets it. */
  readonly onToken?: (event: TokenEvent) => void;
}

function tail(file: string, lines = 8): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Ask rank 0 of `peers` to run `request`, streamed: `onFirstToken` hears the first token as soon as it
 * exists, `onToken` each later one. Aborting `signal` cancels the call (the run stops on every rank)
 * and rejects with its reason; a failed call rejects as a RankGroupError keeping its gRPC status. Any
 * group that reaches its ranks over gRPC runs requests this way (the launcher's, a server's front).
 */
export function streamRun(
  peers: Peers,
  request: RunRequest,
  options: StreamOptions,
  runTimeoutMs: number,
): Promise<RunResult> {
  const { signal, onFirstToken, onToken } = options;
  return new Promise<RunResult>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError(signal));
      return;
    }
    const stream = peers
      .client(0)
      .runStream(request, new Metadata(), { deadline: Date.now() + runTimeoutMs + 10_000 });
    let result: RunResult | null = null;
    const cancel = () => {
      stream.cancel();
    };
    signal?.addEventListener('abort', cancel, { once: true });
    stream.on('data', (e: RunEvent) => {
      if (e.event?.$case === 'firstToken') onFirstToken?.(e.event.value);
      else if (e.event?.$case === 'token') onToken?.(e.event.value);
      else if (e.event?.$case === 'result') result = e.event.value;
    });
    stream.on('error', (err: ServiceError) => {
      signal?.removeEventListener('abort', cancel);
      reject(signal?.aborted ? abortError(signal) : callError(err));
    });
    stream.on('end', () => {
      signal?.removeEventListener('abort', cancel);
      if (result) resolve(result);
      else reject(new RankGroupError('rank 0 ended the run stream without a result'));
    });
  });
}

export class RankGroup {
  readonly processes: readonly RankProcess[];
  readonly logDir: string;
  private readonly peers: Peers;
  private closing = false;
  private readonly died: Promise<never>;
  private readonly runTimeoutMs: number;
  /** Aborted when a rank dies: nothing waits on the others any longer. */
  private readonly stopWaiting = new AbortController();

  private constructor(processes: RankProcess[], logDir: string, peers: Peers, runTimeoutMs: number) {
    this.processes = processes;
    this.logDir = logDir;
    this.peers = peers;
    this.runTimeoutMs = runTimeoutMs;
    this.died = new Promise<never>((_, reject) => {
      for (const p of processes) {
        void p.exited.then(({ code, signal }) => {
          if (!this.closing) {
            this.stopWaiting.abort(`rank ${p.rank} exited`);
            reject(
              new RankGroupError(
                `rank ${p.rank} exited unexpectedly (${signal ? `signal ${signal}` : `code ${code}`}); the end of its log (${p.logFile}):\n${tail(p.logFile)}`,
                code === WorkerExit.ConfigError ? WorkerExit.ConfigError : WorkerExit.Failed,
                { kind: 'rank-exited', rank: p.rank },
              ),
            );
          }
        });
      }
    });
    this.died.catch(() => undefined);
  }

  static async start(opts: RankGroupOptions): Promise<RankGroup> {
    const limits = opts.limits ?? DEFAULT_LIMITS;
    const startupTimeoutMs = opts.startupTimeoutMs ?? DEFAULT_CHAIN_TIMEOUTS.startupTimeoutMs;
    const runTimeoutMs = opts.runTimeoutMs ?? DEFAULT_CHAIN_TIMEOUTS.runTimeoutMs;
    const logDir = opts.logDir ?? (await mkdtemp(join(tmpdir(), 'runahead-ranks-')));
    const ports = await freePorts(opts.ranks);
    const addresses = ports.map((p) => `127.0.0.1:${p}`);
    const progress = new Array<[number, number]>(opts.ranks).fill([0, 1]);
    const { spec } = opts;
    const engine = engineConfigOf(spec);
    const processes = addresses.map((address, rank): RankProcess => {
      const args = [
        BIN,
        ...workerArgv({
          rank,
          worldSize: opts.ranks,
          peers: addresses,
          listen: address,
          // Any free port: a sender asks its receiver for it (KvEndpoint).
          kvPort: 0,
          serve: true,
          engine,
          modelOrigin: '--model',
          prompt: null,
          chain: {
            // A serving rank takes mode and split from each Run request; these are only defaults.
            mode: 'runahead',
            partition: EVEN,
            ...(opts.partitionTable ? { partitionTable: opts.partitionTable } : {}),
            maxNewTokens: 0,
            ...limits,
            startupTimeoutMs,
            runTimeoutMs,
            kvTransport: opts.kvTransport ?? 'socket',
            tls: opts.tls ?? null,
          },
          terminationLog: null,
          resultFile: null,
          json: false,
        }),
      ];
      const [command, argv] = opts.pinCores
        ? [
            'taskset',
            ['-c', `${rank * opts.pinCores}-${(rank + 1) * opts.pinCores - 1}`, process.execPath, ...args],
          ]
        : [process.execPath, args];
      const logFile = join(logDir, `rank-${rank}.log`);
      const log: WriteStream = createWriteStream(logFile);
      const child = spawn(command, argv, {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...MALLOC_TUNING_ENV, ...process.env, ...opts.env },
      });
      child.stdout.pipe(log, { end: false });
      createInterface({ input: child.stderr }).on('line', (line) => {
        log.write(`${line}\n`);
        const m = /"done":(\d+),"total":(\d+)/.exec(line);
        if (m && opts.onProgress) {
          progress[rank] = [Number(m[1]), Number(m[2])];
          opts.onProgress(
            progress.reduce((s, [d]) => s + d, 0),
            progress.reduce((s, [, t]) => s + t, 0),
          );
        }
      });
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        child.on('exit', (code, signal) => {
          resolve({ code, signal });
        });
        child.on('error', () => {
          resolve({ code: -1, signal: null });
        });
      });
      void exited.then(() => log.end());
      return { rank, child, address, logFile, exited };
    });
    const group = new RankGroup(
      processes,
      logDir,
      new Peers(addresses, opts.tls ?? null, limits),
      runTimeoutMs,
    );
    try {
      await Promise.race([
        Promise.all(
          processes.map((p) => group.peers.waitServing(p.rank, startupTimeoutMs, group.stopWaiting.signal)),
        ),
        group.died,
      ]);
    } catch (err) {
      await group.close(FAILED_GRACE_MS);
      throw err;
    }
    return group;
  }

  /** A client of one rank (tests call rank 0 directly to see the coordinator's own errors). */
  client(rank: number) {
    return this.peers.client(rank);
  }

  /** Ask rank 0 to run `request` through the chain. */
  run(request: RunRequest): Promise<RunResult> {
    const call = new Promise<RunResult>((resolve, reject) => {
      this.peers
        .client(0)
        .run(
          request,
          new Metadata(),
          { deadline: Date.now() + this.runTimeoutMs + 10_000 },
          (err, result) => {
            if (err) reject(callError(err));
            else resolve(result);
          },
        );
    });
    return Promise.race([call, this.died]);
  }

  /**
   * Ask rank 0 to run `request`, streamed: `onFirstToken` hears the first token as soon as it exists,
   * `onToken` each later one.
   * Aborting `signal` cancels the call (the run stops on every rank) and rejects with its reason.
   */
  runStream(request: RunRequest, options: StreamOptions = {}): Promise<RunResult> {
    return Promise.race([streamRun(this.peers, request, options, this.runTimeoutMs), this.died]);
  }

  /** Resolves with the error once a rank has exited unexpectedly (never after close()). */
  whenDied(): Promise<RankGroupError> {
    return this.died.then(
      () => new RankGroupError('unreachable'),
      (err: unknown) => err as RankGroupError,
    );
  }

  /**
   * Shut every rank down; kill those still running after `graceMs`. After a rank died the others
   * get FAILED_GRACE_MS, so the launcher exits within seconds of the death (issue: fail fast).
   */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    this.stopWaiting.abort('closing');
    await Promise.all(
      this.processes.map(
        (p, r) =>
          new Promise<void>((resolve) => {
            if (p.child.exitCode !== null || p.child.signalCode !== null) {
              resolve();
              return;
            }
            this.peers
              .client(r)
              .shutdown({}, new Metadata(), { deadline: Date.now() + Math.min(2000, graceMs) }, () => {
                resolve();
              });
          }),
      ),
    );
    await Promise.all(
      this.processes.map(async (p) => {
        const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
        await p.exited;
        clearTimeout(timer);
      }),
    );
    this.peers.close();
  }
}
