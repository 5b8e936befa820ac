// A worker process's gRPC face: it serves the Rank service (and the standard health service used
// by peers and by Kubernetes probes), runs the rank's part of each run, and on rank 0 coordinates.
// Which run holds the engine is one state machine (run-lifecycle.ts): a Run or a Start that the
// state refuses is answered UNAVAILABLE. Runs are found by id in a registry (run-registry.ts) by the
// K/V streams (kv-receiver.ts), which may arrive before their Start, and by Aborts.
import { performance } from 'node:perf_hooks';
import {
  Metadata,
  Server,
  status,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type handleUnaryCall,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import type {
  AbortRequest,
  Ack,
  FirstTokenReport,
  GeneratedTokenReport,
  Identity,
  KvEndpointReply,
  KvEndpointRequest,
  KvMessage,
  KvStreamSummary,
  RankReport,
  RunEvent,
  RunRequest,
  RunResult,
  ShutdownRequest,
  StartReply,
  StartRequest,
} from '../../core/gen/runahead/v1/rank.ts';
import {
  PROTOCOL_VERSION,
  dtypeOf,
  identityProblem,
  maxMessageBytes,
  type KvTransport,
  type LinkLimits,
} from '../../core/protocol.ts';
import { logger, type Logger } from '../../core/log.ts';
import type { PartitionTable } from '../../core/partition-table.ts';
import type { EngineClient } from '../runtime/engine-client.ts';
import type { TextTokenizer } from '../tokenizer.ts';
import type { KvGeometry } from './frames.ts';
import { coordinate, type CoordinateHooks, type CoordinatorEnv } from './coordinator.ts';
import { grpcError } from './grpc-error.ts';
import { InboxBuffers } from './inbox-buffers.ts';
import { serveKvStream, type KvReceiverContext } from './kv-receiver.ts';
import { KvSocketServer, hostOf } from './kv-socket.ts';
import { attributeFailure, RankRun, RunFailure } from './rank-run.ts';
import { RunLifecycle, type NodeEvent, type NodeState } from './run-lifecycle.ts';
import { RunRegistry } from './run-registry.ts';
import { Peers, RankServiceDefinition, rankServer, serverCredentials, type TlsFiles } from './transport.ts';

export interface RankNodeConfig {
  readonly rank: number;
  readonly worldSize: number;
  /** host:port of every rank, by rank. */
  readonly peers: readonly string[];
  /** Address this rank's server binds. */
  readonly listen: string;
  /** Port of this rank's K/V socket, on the host of `listen` (0: any free port). */
  readonly kvPort: number;
  /** How this rank sends K/V (it takes them both ways). */
  readonly kvTransport: KvTransport;
  readonly tls: TlsFiles | null;
  readonly limits: LinkLimits;
  readonly startupTimeoutMs: number;
  readonly runTimeoutMs: number;
  /** Rank 0: balanced splits by context length, for runs that ask for partition "balanced". */
  readonly partitionTable?: PartitionTable | null;
}

const now = () => performance.timeOrigin + performance.now();

/**
 * How much received K/V a rank keeps for its next run: a llama3-8b rank at position 32768 receives
 * 4 GiB per run (32 layers × 2 × 8 KV heads × 128 × 2 B per token).
 */
const INBOX_KEEP_BYTES = 8 * 2 ** 30;

/**
 * An error as a handler answers it: its own gRPC code if it has one; ABORTED for a failed run that
 * another attempt may get through (RunFailure: a rank failed, a peer went silent, the client
 * cancelled); else FAILED_PRECONDITION (fix the request or the group).
 */
function asServiceError(err: unknown): ServiceError {
  const e = err as Partial<ServiceError> & Error & { retriable?: unknown };
  const code =
    typeof e.code === 'number' ? e.code : e.retriable === true ? status.ABORTED : status.FAILED_PRECONDITION;
  return grpcError(code, e.details ?? e.message);
}

/** Aborts when the client cancels `call` (or its deadline passes): the run it asked for stops. */
function cancelledSignal(
  call: { on(event: 'cancelled', listener: () => void): unknown },
  rpc: string,
): AbortSignal {
  const cancelled = new AbortController();
  call.on('cancelled', () => {
    cancelled.abort(`the client cancelled its ${rpc} call`);
  });
  return cancelled.signal;
}

export class RankNode {
  private readonly config: RankNodeConfig;
  private readonly engine: EngineClient;
  private readonly tokenizer: TextTokenizer;
  private readonly server: Server;
  private kvSocket: KvSocketServer | null = null;
  private readonly health = new HealthImplementation({ '': 'NOT_SERVING' });
  private readonly peers: Peers;
  private readonly log: Logger;
  /** Which run holds the engine: every change of it goes through `lifecycle.apply`. */
  private readonly lifecycle: RunLifecycle;
  /** This rank's runs by id (rank 0's own part while it coordinates, a Start's elsewhere). */
  private readonly runs = new RunRegistry<RankRun>();
  /** Received K/V buffers kept between runs (a run takes its own; they come back when it is over). */
  private readonly inboxBuffers = new InboxBuffers(INBOX_KEEP_BYTES);
  /** Runs whose failure this rank already reported to the coordinator. */
  private readonly abortsSent = new Set<string>();
  /** Settles when the last run executed on this (non-coordinator) rank has ended and reported. */
  private lastRunSettled: Promise<void> = Promise.resolve();
  private closing: ((reason: string) => void) | null = null;
  /** Resolves with a reason when the process should exit (Shutdown, or a finished job). */
  readonly closed: Promise<string>;
  /** Called after each run of this rank ends (reports sent), with its error or ''. */
  onRunEnded: (failure: RunFailure | null) => void = () => undefined;

  private constructor(config: RankNodeConfig, engine: EngineClient, tokenizer: TextTokenizer) {
    this.config = config;
    this.engine = engine;
    this.tokenizer = tokenizer;
    this.log = logger('rank', { rank: config.rank });
    this.lifecycle = new RunLifecycle(config.rank);
    this.peers = new Peers(config.peers, config.tls, config.limits, config.kvTransport);
    this.server = rankServer(config.limits);
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
    const port = await new Promise<number>((resolve, reject) => {
      node.server.bindAsync(config.listen, serverCredentials(config.tls), (err, port) => {
        if (err) reject(new Error(`rank ${config.rank}: cannot listen on ${config.listen}: ${err.message}`));
        else resolve(port);
      });
    });
    node.kvSocket = await KvSocketServer.listen(
      hostOf(config.listen),
      config.kvPort,
      config.tls,
      maxMessageBytes(config.limits),
      () => node.kvContext(),
    ).catch((err: unknown) => {
      node.server.forceShutdown();
      throw new Error(`rank ${config.rank}: ${(err as Error).message}`);
    });
    node.health.setStatus('', 'SERVING');
    node.log.info(
      { listen: config.listen, port, kvPort: node.kvSocket.port, tls: config.tls !== null },
      'serving',
    );
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
      inboxBuffers: this.inboxBuffers,
      tokenizer: this.tokenizer,
      runTimeoutMs: this.config.runTimeoutMs,
      startupTimeoutMs: this.config.startupTimeoutMs,
      partitionTable: this.config.partitionTable ?? null,
      register: (run) => {
        this.runs.add(run.plan.runId, run);
      },
      unregister: (run) => {
        this.runs.delete(run.plan.runId);
      },
    };
  }

  /** What every K/V stream to this rank is checked against, and where its frames go. */
  private kvContext(): KvReceiverContext<RankRun> {
    const { rank, limits } = this.config;
    return {
      rank,
      geometry: this.geometry(),
      numLayers: this.engine.info.config.numLayers,
      checkIdentity: (from) => this.checkIdentity(from),
      runFor: (runId) =>
        this.runs.waitFor(
          runId,
          limits.peerTimeoutMs,
          () =>
            new RunFailure(
              `rank ${rank} has no run ${runId} (no Start within ${limits.peerTimeoutMs} ms)`,
              rank,
            ),
        ),
      failRun: (run, err) => {
        this.failRun(run, err);
      },
    };
  }

  private checkIdentity(from: Identity | undefined): Identity {
    if (!from) throw grpcError(status.INVALID_ARGUMENT, 'the request carries no identity');
    const problem = identityProblem(this.identity(from.runId), from);
    if (problem) throw grpcError(status.FAILED_PRECONDITION, problem);
    return from;
  }

  /** An event that the current state always allows here: a refusal would be a bug, and is logged. */
  private must(event: NodeEvent): void {
    const refused = this.lifecycle.apply(event);
    if (refused) this.log.error({ event: event.type, refused }, 'run lifecycle refused an event');
  }

  /** This rank's run failed: stop it and tell the coordinator why (the first reason wins there). */
  private failRun(run: RankRun, err: Error): void {
    // A failure relayed from another rank keeps that rank; anything else began here.
    const failure = attributeFailure(err, this.config.rank);
    if (this.abortsSent.has(run.plan.runId)) return;
    this.abortsSent.add(run.plan.runId);
    this.log.error({ runId: run.plan.runId, reason: failure.message }, 'run failed');
    run.fail(failure);
    if (this.config.rank === 0) this.lifecycle.coordinated?.fail(failure);
    else {
      this.peers
        .client(0)
        .abort(
          { from: this.identity(run.plan.runId), reason: failure.message, reasonRank: failure.rank },
          new Metadata(),
          { deadline: Date.now() + 2000 },
          () => undefined,
        );
    }
  }

  /**
   * Coordinate one run (rank 0): refused with `busy(reason)` while another holds the engine;
   * `ended` is called once it is over.
   */
  private async coordinateRun(
    request: RunRequest,
    busy: (reason: string) => Error,
    ended: () => void = () => undefined,
    hooks: CoordinateHooks = {},
  ): Promise<RunResult> {
    const refused = this.lifecycle.apply({ type: 'coordinate' });
    if (refused) throw busy(refused);
    try {
      return await coordinate(
        this.env(),
        request,
        (run) => {
          this.must({ type: 'track', run });
        },
        hooks,
      );
    } finally {
      this.must({ type: 'coordinated' });
      ended();
    }
  }

  /** Take a Start on this (non-coordinator) rank: the run holds the engine until its part ends. */
  private startRun(req: StartRequest, from: Identity): void {
    const runId = from.runId;
    const refused = this.lifecycle.apply({ type: 'execute', runId });
    if (refused) throw grpcError(status.UNAVAILABLE, refused);
    let run: RankRun;
    try {
      run = new RankRun(this.env(), {
        runId,
        mode: req.mode,
        boundaries: req.boundaries,
        chunkIds: req.chunkTokenIds,
        maxNewTokens: req.maxNewTokens,
        debugState: req.debugState,
      });
    } catch (err) {
      this.must({ type: 'executed', runId });
      throw grpcError(status.INVALID_ARGUMENT, (err as Error).message);
    }
    this.runs.add(runId, run);
    this.execute(run);
  }

  /** Run a Start's part in the background, and report to rank 0. */
  private execute(run: RankRun): void {
    const coordinator = this.peers.client(0);
    const deadline = () => ({ deadline: Date.now() + this.config.limits.peerTimeoutMs });
    this.lastRunSettled = run
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
        // Each later token goes to rank 0 as it is chosen, unawaited: decoding does not wait for
        // the round trip, and one lost changes only a stream (the report carries every token).
        (token, index) => {
          coordinator.generatedToken(
            { from: this.identity(run.plan.runId), index, token },
            new Metadata(),
            deadline(),
            () => undefined,
          );
        },
      )
      .then(
        (report) =>
          new Promise<RunFailure | null>((resolve) => {
            // The engine is free again: a new Start may come while the report is on its way.
            this.runs.delete(run.plan.runId);
            this.must({ type: 'executed', runId: run.plan.runId });
            const failed = report.error ? new RunFailure(report.error, report.errorRank ?? null) : null;
            if (failed) this.failRun(run, failed);
            coordinator.report(report, new Metadata(), deadline(), (err) => {
              const lost = err
                ? RunFailure.at(this.config.rank, `cannot report to rank 0: ${err.details || err.message}`)
                : null;
              if (lost && !failed) this.failRun(run, lost);
              resolve(failed ?? lost);
            });
          }),
      )
      .then((failure) => {
        this.abortsSent.delete(run.plan.runId);
        this.onRunEnded(failure);
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
              callback(asServiceError(err));
            },
          );
      };
    const ack: Ack = {};
    const notCoordinator = () =>
      grpcError(
        status.FAILED_PRECONDITION,
        `rank ${this.config.rank} is not the coordinator; send Run to rank 0`,
      );
    const busy = (reason: string) => grpcError(status.UNAVAILABLE, reason);
    const runEnded = () => {
      this.onRunEnded(null);
    };
    return {
      run: (call: ServerUnaryCall<RunRequest, RunResult>, callback: sendUnaryData<RunResult>) => {
        const signal = cancelledSignal(call, 'Run');
        unary<RunRequest, RunResult>((req) => {
          if (this.config.rank !== 0) throw notCoordinator();
          return this.coordinateRun(req, busy, runEnded, { signal });
        })(call, callback);
      },
      runStream: (call: ServerWritableStream<RunRequest, RunEvent>) => {
        const hooks: CoordinateHooks = {
          signal: cancelledSignal(call, 'RunStream'),
          onFirstToken: (firstToken) => {
            call.write({ event: { $case: 'firstToken', value: firstToken } });
          },
          onToken: (token) => {
            call.write({ event: { $case: 'token', value: token } });
          },
        };
        (this.config.rank !== 0
          ? Promise.reject(notCoordinator())
          : this.coordinateRun(call.request, busy, runEnded, hooks)
        ).then(
          (result) => {
            call.write({ event: { $case: 'result', value: result } });
            call.end();
          },
          (err: unknown) => {
            // grpc-js turns an 'error' on a server stream into the call's status.
            call.emit('error', asServiceError(err));
          },
        );
      },
      start: unary<StartRequest, StartReply>((req) => {
        const receivedAtMs = now();
        this.startRun(req, this.checkIdentity(req.from));
        return { receivedAtMs };
      }),
      streamKv: (
        call: ServerReadableStream<KvMessage, KvStreamSummary>,
        callback: sendUnaryData<KvStreamSummary>,
      ) => {
        serveKvStream(call, callback, this.kvContext());
      },
      kvEndpoint: unary<KvEndpointRequest, KvEndpointReply>((req) => {
        this.checkIdentity(req.from);
        return { port: this.kvSocket?.port ?? 0 };
      }),
      firstToken: unary<FirstTokenReport, Ack>((req) => {
        this.checkIdentity(req.from);
        this.lifecycle.coordinatedRun(req.from?.runId)?.onFirstToken(req.token);
        return ack;
      }),
      generatedToken: unary<GeneratedTokenReport, Ack>((req) => {
        this.checkIdentity(req.from);
        this.lifecycle.coordinatedRun(req.from?.runId)?.onGeneratedToken(req.token, req.index);
        return ack;
      }),
      report: unary<RankReport, Ack>((req) => {
        this.checkIdentity(req.from);
        this.lifecycle.coordinatedRun(req.from?.runId)?.onReport(req);
        return ack;
      }),
      abort: unary<AbortRequest, Ack>((req) => {
        const runId = req.from?.runId ?? '';
        const failure =
          req.reasonRank !== undefined
            ? new RunFailure(req.reason, req.reasonRank)
            : RunFailure.at(req.from?.rank ?? 0, req.reason);
        this.runs.get(runId)?.fail(failure);
        this.lifecycle.coordinatedRun(runId)?.fail(failure);
        return ack;
      }),
      shutdown: unary<ShutdownRequest, Ack>(() => {
        setImmediate(() => this.closing?.('shutdown requested'));
        return ack;
      }),
    };
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
  runOnce(request: RunRequest): Promise<RunResult> {
    return this.coordinateRun(request, (reason) => new RunFailure(reason));
  }

  /** Which run holds the engine now (logs, tests). */
  get state(): NodeState {
    return this.lifecycle.state;
  }

  /** Settles once the run executing on this rank (if any) has ended and reported, or after `timeoutMs`. */
  async runSettled(timeoutMs: number): Promise<void> {
    const ended = this.lastRunSettled.catch(() => undefined);
    await Promise.race([ended, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  async stop(): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    for (const run of this.runs.values())
      run.fail(new RunFailure(`rank ${this.config.rank} is shutting down`, this.config.rank));
    // Let a failing run deliver its report before the channels close.
    await Promise.race([this.lastRunSettled, new Promise((r) => setTimeout(r, 2000).unref())]);
    this.peers.close();
    await this.kvSocket?.close();
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
}
