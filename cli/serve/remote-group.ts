// The serving front's rank group as ranks it reaches by address — the rank pods of a RunaheadServer
// group, each `runahead worker --serve` behind its stable DNS name — started and restarted by someone
// else (the operator), never by this process. Readiness is every rank's gRPC health check, polled;
// a request waits while the group is not ready (its own deadline bounds the wait). A run whose rank 0
// went away fails at once as `rank-exited` (the front answers 503 with Retry-After) instead of being
// retried until its deadline: the operator is starting the group again.
import { status as grpcStatus } from '@grpc/grpc-js';
import { abortError } from '../../core/abort-error.ts';
import type { RunRequest, RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { logger } from '../../core/log.ts';
import type { LinkLimits } from '../../core/protocol.ts';
import {
  channelCredentials,
  healthClient,
  Peers,
  type HealthCheckClient,
  type TlsFiles,
} from '../../worker/chain/transport.ts';
import { RankGroupError, streamRun, type StreamOptions } from '../launcher/rank-group.ts';
import { WorkerExit } from '../../core/api/termination-message.ts';
import { allServing, HEALTH_POLL_MS, isServing } from './group-health.ts';
import type { RankBackend } from './rank-backend.ts';

export interface RemoteGroupOptions {
  /** host:port of each rank's gRPC service, in rank order. */
  readonly addresses: readonly string[];
  readonly tls: TlsFiles | null;
  readonly limits: LinkLimits;
  /** A run's gRPC deadline is this plus 10 s (rank 0 ends a longer run itself). */
  readonly runTimeoutMs: number;
}

export class RemoteGroup implements RankBackend {
  readonly ranks: number;
  private readonly options: RemoteGroupOptions;
  private readonly log = logger('serve');
  private readonly peers: Peers;
  private readonly health: HealthCheckClient[];
  private serving = false;
  private closed = false;
  private readonly poller: NodeJS.Timeout;
  /** Requests waiting for the group to be ready. */
  private waiters: (() => void)[] = [];

  constructor(options: RemoteGroupOptions) {
    if (options.addresses.length === 0) throw new Error('a rank group needs at least one rank address');
    this.options = options;
    this.ranks = options.addresses.length;
    this.peers = new Peers(options.addresses, options.tls, options.limits);
    const creds = channelCredentials(options.tls);
    this.health = options.addresses.map((a) => healthClient(a, creds));
    this.poller = setInterval(() => {
      void this.poll();
    }, HEALTH_POLL_MS);
    this.poller.unref();
    void this.poll();
  }

  ready(): boolean {
    return this.serving && !this.closed;
  }

  async run(
    request: RunRequest,
    options: StreamOptions & { readonly signal: AbortSignal },
  ): Promise<RunResult> {
    await this.whenServing(options.signal);
    try {
      return await streamRun(this.peers, request, options, this.options.runTimeoutMs);
    } catch (err) {
      // UNAVAILABLE is also rank 0 busy finishing an abandoned run (the front retries that); only a
      // rank 0 that no longer answers its health check is gone.
      if (
        err instanceof RankGroupError &&
        err.failure.kind === 'run' &&
        err.failure.code === grpcStatus.UNAVAILABLE &&
        !(await isServing(this.health[0]!))
      ) {
        this.setServing(false);
        throw new RankGroupError(
          `rank 0 at ${this.options.addresses[0]} does not answer (${err.message})`,
          WorkerExit.Failed,
          { kind: 'rank-exited', rank: 0 },
        );
      }
      throw err;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poller);
    for (const c of this.health) c.close();
    this.peers.close();
    for (const wake of this.waiters.splice(0)) wake();
    return Promise.resolve();
  }

  /** Resolves once every rank serves; rejects when `signal` aborts or the front closes first. */
  private whenServing(signal: AbortSignal): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the server is shutting down'));
    if (this.serving) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        reject(abortError(signal));
      };
      const wake = () => {
        signal.removeEventListener('abort', onAbort);
        if (this.closed) reject(new Error('the server is shutting down'));
        else resolve();
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(wake);
    });
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    this.setServing(await allServing(this.health));
  }

  private setServing(serving: boolean): void {
    if (this.closed || serving === this.serving) return;
    this.serving = serving;
    this.log.info({ ranks: this.options.addresses }, serving ? 'every rank serves' : 'a rank does not serve');
    if (serving) for (const wake of this.waiters.splice(0)) wake();
  }
}
