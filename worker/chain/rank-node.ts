// A worker process's gRPC face: it serves the Rank service (and the standard health service used
// by peers and by Kubernetes probes), runs the rank's part of each run, and on rank 0 coordinates.
import { performance } from 'node:perf_hooks';
import {
  Metadata,
  Server,
  status,
  type ServerReadableStream,
  type ServiceError,
  type handleUnaryCall,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type {
  AbortRequest,
  Ack,
  FirstTokenReport,
  Identity,
  KvMessage,
  KvStreamSummary,
  RankReport,
  RunRequest,
  RunResult,
  ShutdownRequest,
  StartReply,
  StartRequest,
} from '../../core/gen/runahead/v1/rank.ts';
import {
  PROTOCOL_VERSION,
  dtypeOf,
  grpcOptions,
  identityProblem,
  type LinkLimits,
} from '../../core/protocol.ts';
import { logger, type Logger } from '../../core/log.ts';
import type { PartitionTable } from '../../core/partition-table.ts';
import type { EngineClient } from '../runtime/engine-client.ts';
import type { TextTokenizer } from '../tokenizer.ts';
import { FrameError, type KvGeometry } from './frames.ts';
import { CoordinatedRun, coordinate, type CoordinatorEnv } from './coordinator.ts';
import { RankRun, RunFailure, participants } from './rank-run.ts';
import { Peers, RankServiceDefinition, serverCredentials, type TlsFiles } from './transport.ts';

export interface RankNodeConfig {
  readonly rank: number;
  readonly worldSize: number;
  /** host:port of every rank, by rank. */
  readonly peers: readonly string[];
  /** Address this rank's server binds. */
  readonly listen: string;
  readonly tls: TlsFiles | null;
  readonly limits: LinkLimits;
  readonly startupTimeoutMs: number;
  readonly runTimeoutMs: number;
  /** Rank 0: balanced splits by context length, for runs that ask for partition "balanced". */
  readonly partitionTable?: PartitionTable | null;
}

const now = () => performance.timeOrigin + performance.now();

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: undefined as never });
}

export class RankNode {
  private readonly config: RankNodeConfig;
  private readonly engine: EngineClient;
  private readonly tokenizer: TextTokenizer;
  private readonly server: Server;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  readonly peers: Peers;
  private readonly log: Logger;
  private readonly runs = new Map<string, RankRun>();
  private readonly runWaiters = new Map<string, (() => void)[]>();
  private coordinated: CoordinatedRun | null = null;
  private busy = false;
  /** Runs whose failure this rank already reported to the coordinator. */
  private readonly abortsSent = new Set<string>();
  /** Settles when the run executing on this (non-coordinator) rank has ended. */
  private executing: Promise<void> = Promise.resolve();
  private closing: ((reason: string) => void) | null = null;
  /** Resolves with a reason when the process should exit (Shutdown, or a finished job). */
  readonly closed: Promise<string>;
  /** Called after each run of this rank ends (reports sent), with its error or ''. */
  onRunEnded: (error: string) => void = () => undefined;
  boundPort = 0;

  private constructor(config: RankNodeConfig, engine: EngineClient, tokenizer: TextTokenizer) {
    this.config = config;
    this.engine = engine;
    this.tokenizer = tokenizer;
    this.log = logger('rank', { rank: config.rank });
    this.peers = new Peers(config.peers, config.tls, config.limits);
    this.server = new Server(grpcOptions(config.limits));
    this.closed = new Promise((resolve) => (this.closing = resolve));
  }

  static async start(
    config: RankNodeConfig,
    engine: EngineClient,
    tokenizer: TextTokenizer,
  ): Promise<RankNode> {
    const node = new RankNode(config, engine, tokenizer);
    node.health.addToServer(node.server);
    node.server.addService(RankServiceDefinition, node.handlers());
    node.boundPort = await new Promise<number>((resolve, reject) => {
      node.server.bindAsync(config.listen, serverCredentials(config.tls), (err, port) => {
        if (err) reject(new Error(`rank ${config.rank}: cannot listen on ${config.listen}: ${err.message}`));
        else resolve(port);
      });
    });
    node.health.setStatus('', 'SERVING');
    node.log.info({ listen: config.listen, port: node.boundPort, tls: config.tls !== null }, 'serving');
    return node;
  }

  private identity(runId: string): Identity {
    return {
      protocolVersion: PROTOCOL_VERSION,
      modelFingerprint: this.engine.info.fingerprint,
      runId,
      rank: this.config.rank,
      worldSize: this.config.worldSize,
    };
  }

  private geometry(): KvGeometry {
    const { config, dtype } = this.engine.info;
    return {
      dtype: dtypeOf(dtype),
      kvHeads: config.numKvHeads,
      headDim: config.headDim,
      bytesPerElement: dtype === 'float32' ? 4 : 2,
    };
  }

  private env(): CoordinatorEnv {
    return {
      rank: this.config.rank,
      worldSize: this.config.worldSize,
      engine: this.engine,
      peers: this.peers,
      limits: this.config.limits,
      geometry: this.geometry(),
      eosTokenIds: this.engine.info.config.eosTokenIds,
      identity: (runId) => this.identity(runId),
      log: this.log,
      tokenizer: this.tokenizer,
      runTimeoutMs: this.config.runTimeoutMs,
      startupTimeoutMs: this.config.startupTimeoutMs,
      partitionTable: this.config.partitionTable ?? null,
      register: (run) => {
        this.register(run);
      },
      unregister: (run) => this.runs.delete(run.plan.runId),
    };
  }

  private register(run: RankRun): void {
    this.runs.set(run.plan.runId, run);
    for (const wake of this.runWaiters.get(run.plan.runId) ?? []) wake();
    this.runWaiters.delete(run.plan.runId);
  }

  /** A stream may arrive before its Start: wait for the run to exist, up to the peer timeout. */
  private async runFor(runId: string): Promise<RankRun> {
    const found = this.runs.get(runId);
    if (found) return found;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new RunFailure(
            `rank ${this.config.rank} has no run ${runId} (no Start within ${this.config.limits.peerTimeoutMs} ms)`,
          ),
        );
      }, this.config.limits.peerTimeoutMs);
      const list = this.runWaiters.get(runId) ?? [];
      list.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.runWaiters.set(runId, list);
    });
    return this.runs.get(runId)!;
  }

  /** This rank's run failed: stop it and tell the coordinator why (the first reason wins there). */
  private failRun(run: RankRun, err: Error): void {
    const reason = err.message.startsWith('rank ') ? err.message : `rank ${this.config.rank}: ${err.message}`;
    if (this.abortsSent.has(run.plan.runId)) return;
    this.abortsSent.add(run.plan.runId);
    this.log.error({ runId: run.plan.runId, reason }, 'run failed');
    run.fail(new RunFailure(reason));
    if (this.config.rank === 0) this.coordinated?.fail(new RunFailure(reason));
    else {
      this.peers
        .client(0)
        .abort(
          { from: this.identity(run.plan.runId), reason },
          new Metadata(),
          { deadline: Date.now() + 2000 },
          () => undefined,
        );
    }
  }

  /** Run a Start on this (non-coordinator) rank in the background, and report to rank 0. */
  private execute(run: RankRun): void {
    const coordinator = this.peers.client(0);
    const deadline = () => ({ deadline: Date.now() + this.config.limits.peerTimeoutMs });
    this.executing = run
      .execute(
        (token) =>
          new Promise<void>((resolve, reject) => {
            coordinator.firstToken(
              { from: this.identity(run.plan.runId), token },
              new Metadata(),
              deadline(),
              (err) => {
                if (err)
                  reject(
                    new RunFailure(`cannot report the first token to rank 0: ${err.details || err.message}`),
                  );
                else resolve();
              },
            );
          }),
      )
      .then(
        (report) =>
          new Promise<string>((resolve) => {
            // The engine is free again: a new Start may come while the report is on its way.
            this.runs.delete(run.plan.runId);
            this.busy = false;
            if (report.error) this.failRun(run, new Error(report.error));
            coordinator.report(report, new Metadata(), deadline(), (err) => {
              if (err && !report.error)
                this.failRun(run, new RunFailure(`cannot report to rank 0: ${err.details || err.message}`));
              resolve(report.error || (err ? `cannot report to rank 0: ${err.details || err.message}` : ''));
            });
          }),
      )
      .then((error) => {
        this.abortsSent.delete(run.plan.runId);
        this.onRunEnded(error);
      });
  }

  private handlers() {
    const unary =
      <Req, Res>(fn: (req: Req) => Promise<Res> | Res): handleUnaryCall<Req, Res> =>
      (call, callback: sendUnaryData<Res>) => {
        Promise.resolve()
          .then(() => fn(call.request))
          .then(
            (res) => {
              callback(null, res);
            },
            (err: unknown) => {
              const e = err as Partial<ServiceError> & Error;
              callback(
                grpcError(
                  typeof e.code === 'number' ? e.code : status.FAILED_PRECONDITION,
                  e.details ?? e.message,
                ),
              );
            },
          );
      };
    const checkIdentity = (from: Identity | undefined): Identity => {
      if (!from) throw grpcError(status.INVALID_ARGUMENT, 'the request carries no identity');
      const problem = identityProblem(this.identity(from.runId), from);
      if (problem) throw grpcError(status.FAILED_PRECONDITION, problem);
      return from;
    };
    const ack: Ack = {};
    return {
      run: unary<RunRequest, RunResult>(async (req) => {
        if (this.config.rank !== 0)
          throw grpcError(
            status.FAILED_PRECONDITION,
            `rank ${this.config.rank} is not the coordinator; send Run to rank 0`,
          );
        if (this.busy) throw grpcError(status.UNAVAILABLE, 'a run is already in progress');
        this.busy = true;
        try {
          return await coordinate(this.env(), req, (c) => (this.coordinated = c));
        } finally {
          this.busy = false;
          this.onRunEnded('');
        }
      }),
      start: unary<StartRequest, StartReply>((req) => {
        const receivedAtMs = now();
        const from = checkIdentity(req.from);
        if (this.busy)
          throw grpcError(status.UNAVAILABLE, `rank ${this.config.rank} is busy with another run`);
        let run: RankRun;
        try {
          run = new RankRun(this.env(), {
            runId: from.runId,
            mode: req.mode,
            boundaries: req.boundaries,
            chunkIds: req.chunkTokenIds,
            maxNewTokens: req.maxNewTokens,
            debugState: req.debugState,
          });
        } catch (err) {
          throw grpcError(status.INVALID_ARGUMENT, (err as Error).message);
        }
        this.busy = true;
        this.register(run);
        this.execute(run);
        return { receivedAtMs };
      }),
      streamKv: (
        call: ServerReadableStream<KvMessage, KvStreamSummary>,
        callback: sendUnaryData<KvStreamSummary>,
      ) => {
        this.receiveKv(call, callback, checkIdentity);
      },
      firstToken: unary<FirstTokenReport, Ack>((req) => {
        checkIdentity(req.from);
        if (this.coordinated?.runId === req.from?.runId) this.coordinated?.onFirstToken(req.token);
        return ack;
      }),
      report: unary<RankReport, Ack>((req) => {
        checkIdentity(req.from);
        if (this.coordinated?.runId === req.from?.runId) this.coordinated?.onReport(req);
        return ack;
      }),
      abort: unary<AbortRequest, Ack>((req) => {
        const runId = req.from?.runId ?? '';
        const run = this.runs.get(runId);
        if (run) run.fail(new RunFailure(req.reason));
        if (this.coordinated?.runId === runId) this.coordinated.fail(new RunFailure(req.reason));
        return ack;
      }),
      shutdown: unary<ShutdownRequest, Ack>(() => {
        setImmediate(() => this.closing?.('shutdown requested'));
        return ack;
      }),
    };
  }

  private receiveKv(
    call: ServerReadableStream<KvMessage, KvStreamSummary>,
    callback: sendUnaryData<KvStreamSummary>,
    checkIdentity: (from: Identity | undefined) => Identity,
  ): void {
    let run: RankRun | null = null;
    let from = -1;
    let frames = 0;
    let bytes = 0;
    let answered = false;
    let chain: Promise<void> = Promise.resolve();
    const answer = (err: ServiceError | null) => {
      if (answered) return;
      answered = true;
      if (err) callback(err);
      else callback(null, { frames, bytes });
    };
    const refuse = (code: status, err: Error) => {
      if (run) this.failRun(run, err);
      answer(grpcError(code, err.message));
      call.destroy();
    };
    const handle = async (message: KvMessage): Promise<void> => {
      const body = message.body;
      if (body?.$case === 'hello') {
        const hello = body.value;
        let identity: Identity;
        try {
          identity = checkIdentity(hello.from);
        } catch (err) {
          refuse(status.FAILED_PRECONDITION, err as Error);
          return;
        }
        const g = this.geometry();
        const layers = this.engine.info.config.numLayers;
        if (
          hello.toRank !== this.config.rank ||
          hello.dtype !== g.dtype ||
          hello.kvHeads !== g.kvHeads ||
          hello.headDim !== g.headDim ||
          hello.numLayers !== layers
        ) {
          refuse(
            status.FAILED_PRECONDITION,
            new FrameError(
              `rank ${identity.rank} opened a KV stream for rank ${hello.toRank} with ${hello.numLayers} layers × [${hello.kvHeads}, ${hello.headDim}] dtype ${hello.dtype}; rank ${this.config.rank} has ${layers} × [${g.kvHeads}, ${g.headDim}] dtype ${g.dtype}`,
            ),
          );
          return;
        }
        run = await this.runFor(identity.runId);
        from = identity.rank;
        if (!run.expectsFrom(from))
          refuse(
            status.FAILED_PRECONDITION,
            new FrameError(`rank ${from} is not a K/V source of rank ${this.config.rank} in this run`),
          );
        return;
      }
      if (body?.$case !== 'frame' || !run) {
        refuse(status.INVALID_ARGUMENT, new FrameError('a KV stream must start with a hello'));
        return;
      }
      await run.onFrame(from, body.value);
      frames++;
      bytes += body.value.key.byteLength + body.value.value.byteLength;
    };
    call.on('data', (message: KvMessage) => {
      call.pause();
      chain = chain
        .then(() => (answered ? undefined : handle(message)))
        .catch((err: unknown) => {
          refuse(err instanceof FrameError ? status.DATA_LOSS : status.ABORTED, err as Error);
        })
        .finally(() => call.resume());
    });
    call.on('end', () => {
      void chain.then(() => {
        run?.onStreamClosed(from, null);
        answer(null);
      });
    });
    call.on('error', (err: Error) => {
      void chain.then(() => {
        run?.onStreamClosed(from, err.message.replace(/^\d+ [A-Z_]+: /, ''));
        answer(grpcError(status.CANCELLED, err.message));
      });
    });
    call.on('cancelled', () => {
      void chain.then(() => {
        run?.onStreamClosed(from, 'cancelled by the sender, or by gRPC for a message over the size limit');
        answer(grpcError(status.CANCELLED, 'cancelled'));
      });
    });
  }

  /** Ask every other rank to exit (best effort), e.g. when a job ends. */
  async shutdownPeers(): Promise<void> {
    const others = [...Array(this.config.worldSize).keys()].filter((r) => r !== this.config.rank);
    await Promise.all(
      others.map(
        (r) =>
          new Promise<void>((resolve) => {
            this.peers.client(r).shutdown({}, new Metadata(), { deadline: Date.now() + 2000 }, () => {
              resolve();
            });
          }),
      ),
    );
  }

  /** Coordinate one run from this process (rank 0 in job mode). */
  async runOnce(request: RunRequest): Promise<RunResult> {
    if (this.busy) throw new RunFailure('a run is already in progress');
    this.busy = true;
    try {
      return await coordinate(this.env(), request, (c) => (this.coordinated = c));
    } finally {
      this.busy = false;
    }
  }

  /** Settles once the run executing on this rank (if any) has ended and reported, or after `timeoutMs`. */
  async runSettled(timeoutMs: number): Promise<void> {
    const ended = this.executing.catch(() => undefined);
    await Promise.race([ended, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  requestClose(reason: string): void {
    this.closing?.(reason);
  }

  async stop(): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    for (const run of this.runs.values())
      run.fail(new RunFailure(`rank ${this.config.rank} is shutting down`));
    // Let a failing run deliver its report before the channels close.
    await Promise.race([this.executing, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.peers.close();
    await new Promise<void>((resolve) => {
      this.server.tryShutdown(() => {
        resolve();
      });
      setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000).unref();
    });
  }

  static participants = participants;
}
