// The serving front's rank group as local processes (the launcher's RankGroup), kept whole: when a
// rank exits, the run in flight fails at once (RankGroup names the rank), the others are stopped and
// a fresh group is started — with backoff while starting fails — and requests queued meanwhile wait
// for it. Readiness is every rank's own gRPC health check, polled.
import { abortError } from '../../core/abort-error.ts';
import type { RunRequest, RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { logger } from '../../core/log.ts';
import { backoffDelayMs } from '../../operator/platform/backoff.ts';
import { channelCredentials, healthClient, type HealthCheckClient } from '../../worker/chain/transport.ts';
import {
  FAILED_GRACE_MS,
  RankGroup,
  type RankGroupOptions,
  type StreamOptions,
} from '../launcher/rank-group.ts';
import { allServing, HEALTH_POLL_MS } from './group-health.ts';
import type { RankBackend } from './rank-backend.ts';

/** Restart attempts back off from 1 s to 30 s. */
const RESTART_BACKOFF = { baseMs: 1000, maxMs: 30_000 } as const;

export interface LocalGroupOptions extends RankGroupOptions {
  /** Told each time a fresh group serves after a rank exited. */
  readonly onRestarted?: () => void;
}

export class LocalGroup implements RankBackend {
  readonly ranks: number;
  private readonly options: LocalGroupOptions;
  private readonly log = logger('serve');
  private group: RankGroup | null = null;
  private health: HealthCheckClient[] = [];
  private serving = false;
  private closed = false;
  private readonly poller: NodeJS.Timeout;
  /** Requests waiting for a group (while one starts again). */
  private waiters: (() => void)[] = [];

  private constructor(options: LocalGroupOptions) {
    this.options = options;
    this.ranks = options.ranks;
    this.poller = setInterval(() => {
      void this.poll();
    }, HEALTH_POLL_MS);
    this.poller.unref();
  }

  /** Start the group; fails as RankGroup.start does (the command exits then: nothing to serve). */
  static async start(options: LocalGroupOptions): Promise<LocalGroup> {
    const backend = new LocalGroup(options);
    try {
      backend.adopt(await RankGroup.start(options));
    } catch (err) {
      clearInterval(backend.poller);
      throw err;
    }
    return backend;
  }

  ready(): boolean {
    return this.group !== null && this.serving;
  }

  /** Where each rank writes its log (the current group's). */
  get logDir(): string | null {
    return this.group?.logDir ?? null;
  }

  async run(
    request: RunRequest,
    options: StreamOptions & { readonly signal: AbortSignal },
  ): Promise<RunResult> {
    const group = await this.current(options.signal);
    return group.runStream(request, options);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.poller);
    this.closeHealth();
    await this.group?.close();
    this.group = null;
  }

  /** The group, once there is one; rejects when `signal` aborts first. */
  private current(signal: AbortSignal): Promise<RankGroup> {
    if (this.group) return Promise.resolve(this.group);
    if (this.closed) return Promise.reject(new Error('the server is shutting down'));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        reject(abortError(signal));
      };
      const wake = () => {
        signal.removeEventListener('abort', onAbort);
        if (this.group) resolve(this.group);
        else reject(new Error('the server is shutting down'));
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(wake);
    });
  }

  private adopt(group: RankGroup): void {
    this.group = group;
    this.serving = true;
    const creds = channelCredentials(this.options.tls ?? null);
    this.health = group.processes.map((p) => healthClient(p.address, creds));
    for (const wake of this.waiters.splice(0)) wake();
    void group.whenDied().then((err) => {
      if (this.group !== group || this.closed) return;
      this.log.error({ err: err.message }, 'a rank exited: starting the group again');
      this.group = null;
      this.serving = false;
      this.closeHealth();
      void this.restart(group);
    });
  }

  private async restart(dead: RankGroup): Promise<void> {
    await dead.close(FAILED_GRACE_MS);
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const group = await RankGroup.start(this.options);
        // close() may have come while the group started.
        if (this.isClosed()) {
          await group.close();
          return;
        }
        this.adopt(group);
        this.log.info({ logs: group.logDir }, 'the rank group serves again');
        this.options.onRestarted?.();
        return;
      } catch (err) {
        const delay = backoffDelayMs(attempt, RESTART_BACKOFF.baseMs, RESTART_BACKOFF.maxMs);
        this.log.error({ err: (err as Error).message, retryInMs: delay }, 'starting the rank group failed');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
    for (const wake of this.waiters.splice(0)) wake();
  }

  private isClosed(): boolean {
    return this.closed;
  }

  /** Ask every rank's health service; ready only when all say SERVING. */
  private async poll(): Promise<void> {
    const clients = this.health;
    if (!this.group || clients.length === 0) return;
    const serving = await allServing(clients);
    if (clients === this.health) this.serving = serving;
  }

  private closeHealth(): void {
    for (const c of this.health) c.close();
    this.health = [];
  }
}
