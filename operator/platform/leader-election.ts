// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection (client-node has
// none): one replica of the operator reconciles, the others stand by with warm caches and take over
// when the leader releases the lease (graceful shutdown: at once) or stops renewing it (crash,
// partition: after the lease duration).
//
// Safety rests on three rules (decisions in lease-record.ts):
//  - every write is a replace carrying the resourceVersion that was read: a 409 means someone else
//    wrote in between, and the elector reads again instead of overwriting;
//  - a candidate judges expiry on its own clock from when it last saw the record change;
//  - the leader steps down once renewDeadline (< leaseDuration) has passed since its last successful
//    renewal, so it has stopped before another replica's lease-duration wait can end.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { ApiException, CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { logger, type Logger } from '../../core/log.ts';
import { jittered } from './backoff.ts';
import {
  acquiredSpec,
  mayAcquire,
  observe,
  recordOf,
  releasedSpec,
  type LeaseRecord,
  type Observation,
} from './lease-record.ts';

export interface LeaderElectionOptions {
  readonly kubeConfig: KubeConfig;
  readonly leaseName: string;
  readonly namespace: string;
  /** Unique per process. Default `<hostname>_<uuid>` (client-go's advice: a restarted pod is a new candidate). */
  readonly identity?: string | undefined;
  /** How long others wait after the last change of the lease before taking it. Whole seconds are written; default 15 000. */
  readonly leaseDurationMs?: number | undefined;
  /** The leader steps down when it could not renew for this long. Default 10 000; must be < leaseDurationMs. */
  readonly renewDeadlineMs?: number | undefined;
  /** Interval between tries to acquire or renew. Default 2000; must be < renewDeadlineMs. */
  readonly retryPeriodMs?: number | undefined;
  /** Called once when this replica becomes the leader; `signal` aborts when it stops leading. */
  readonly onStartedLeading?: ((signal: AbortSignal) => void) | undefined;
  /** Called once when this replica stops leading (lost, released or stopped). The operator should exit. */
  readonly onStoppedLeading?: (() => void) | undefined;
  /** Called when a different holder is seen (including this replica). */
  readonly onNewLeader?: ((identity: string) => void) | undefined;
}

export const LEADER_ELECTION_DEFAULTS = {
  leaseDurationMs: 15_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
} as const;

/** client-go's JitterFactor: tries spread up to 20 % later so candidates do not collide. */
const JITTER = 0.2;

type State = 'new' | 'candidate' | 'leading' | 'stopped';

export class LeaderElector {
  readonly identity: string;
  readonly #opts: LeaderElectionOptions;
  readonly #api: CoordinationV1Api;
  readonly #log: Logger;
  readonly #leaseDurationSeconds: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;

  #state: State = 'new';
  /** The lease as last read or written (its resourceVersion makes the next write conditional). */
  #lease: V1Lease | null = null;
  #observation: Observation | null = null;
  /** Monotonic time at which the last successful acquire/renew request was sent. */
  #renewedAtMs = 0;
  #leading: AbortController | null = null;
  #wake: (() => void) | null = null;
  #timer: NodeJS.Timeout | null = null;
  #loop: Promise<void> | null = null;
  #lastLeader = '';

  constructor(options: LeaderElectionOptions) {
    this.#opts = options;
    this.identity = options.identity ?? `${hostname()}_${randomUUID()}`;
    const leaseDurationMs = options.leaseDurationMs ?? LEADER_ELECTION_DEFAULTS.leaseDurationMs;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? LEADER_ELECTION_DEFAULTS.renewDeadlineMs;
    this.#retryPeriodMs = options.retryPeriodMs ?? LEADER_ELECTION_DEFAULTS.retryPeriodMs;
    this.#leaseDurationSeconds = Math.ceil(leaseDurationMs / 1000);
    if (this.identity === '') throw new Error('leader election: identity must not be empty');
    if (!(this.#retryPeriodMs > 0))
      throw new Error(`leader election: retryPeriodMs must be > 0, got ${this.#retryPeriodMs}`);
    if (!(this.#renewDeadlineMs > this.#retryPeriodMs * (1 + JITTER)))
      throw new Error(
        `leader election: renewDeadlineMs (${this.#renewDeadlineMs}) must exceed retryPeriodMs × 1.2 (${this.#retryPeriodMs * 1.2}), or one slow try loses the lease`,
      );
    if (!(leaseDurationMs > this.#renewDeadlineMs))
      throw new Error(
        `leader election: leaseDurationMs (${leaseDurationMs}) must exceed renewDeadlineMs (${this.#renewDeadlineMs}), or a leader could still act after others took over`,
      );
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.#log = logger('leader-election', {
      lease: `${options.namespace}/${options.leaseName}`,
      identity: this.identity,
    });
  }

  /**
   * True while this replica holds the lease. Checked against the clock too: false as soon as
   * renewDeadline has passed since the last renewal, even if a timer has not fired yet (a blocked
   * event loop must not let a stale leader act).
   */
  get isLeader(): boolean {
    return this.#state === 'leading' && performance.now() - this.#renewedAtMs < this.#renewDeadlineMs;
  }

  /** The holder last seen in the lease ('' if none or not read yet). */
  get leader(): string {
    return this.#observation?.record.holderIdentity ?? '';
  }

  /** The lease's transition count last seen. */
  get leaseTransitions(): number {
    return this.#observation?.record.leaseTransitions ?? 0;
  }

  /** Starts competing for the lease; resolves at once (see onStartedLeading). Once only. */
  start(): void {
    if (this.#state !== 'new') throw new Error(`leader election for ${this.#leaseRef} was already started`);
    this.#state = 'candidate';
    this.#log.info(`competing for lease ${this.#leaseRef}`);
    this.#loop = this.#run().catch((err: unknown) => {
      this.#log.error({ err }, 'leader election loop failed');
      this.#stopLeading('error');
    });
  }

  /**
   * Stops competing and renewing without touching the lease (as a crash would): another replica
   * takes over once the lease expires. For shutdowns where the API server is unreachable, and tests.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped' || this.#state === 'new') {
      this.#state = 'stopped';
      return;
    }
    this.#stopLeading('stopped');
    await this.#loop;
  }

  /**
   * Graceful shutdown: stops, and if this replica holds the lease, clears its holder so another
   * replica takes over at its next try. Call after the work that needs leadership has stopped.
   */
  async release(): Promise<void> {
    await this.stop();
    // Decided on the lease as last read or written, not on isLeader: a write that landed while
    // stopping may have made this replica the holder after all.
    if (this.#lease === null) return;
    const previous = recordOf(this.#lease.spec);
    if (previous.holderIdentity !== this.identity) return;
    try {
      const body: V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: this.#lease.metadata ?? { name: this.#opts.leaseName, namespace: this.#opts.namespace },
        spec: releasedSpec(previous, new Date()),
      };
      this.#lease = await this.#withDeadline(
        this.#api.replaceNamespacedLease({
          name: this.#opts.leaseName,
          namespace: this.#opts.namespace,
          body,
        }),
        this.#renewDeadlineMs,
      );
      this.#log.info(`released lease ${this.#leaseRef}`);
    } catch (err) {
      // 409: someone wrote since our last renewal, so the lease is no longer ours to release.
      if (err instanceof ApiException && err.code === 409) return;
      this.#log.warn(
        { err: short(err) },
        `could not release lease ${this.#leaseRef}; another replica takes over when it expires`,
      );
    }
  }

  get #leaseRef(): string {
    return `${this.#opts.namespace}/${this.#opts.leaseName}`;
  }

  async #run(): Promise<void> {
    // Candidate: try until acquired.
    while (this.#is('candidate')) {
      if (await this.#tryAcquireOrRenew(this.#renewDeadlineMs)) break;
      await this.#sleep(jittered(this.#retryPeriodMs, JITTER));
    }
    if (!this.#is('candidate')) return;
    this.#startLeading();
    // Leader: renew every retry period; step down once renewDeadline passed without success.
    while (this.#is('leading')) {
      await this.#sleep(this.#retryPeriodMs);
      if (!this.#is('leading')) return;
      const left = this.#renewedAtMs + this.#renewDeadlineMs - performance.now();
      if (left > 0 && (await this.#tryAcquireOrRenew(left))) continue;
      if (!this.#is('leading')) return;
      if (this.leader !== '' && this.leader !== this.identity) {
        this.#log.error(`lease ${this.#leaseRef} is now held by ${this.leader}; stepping down`);
        this.#stopLeading('lost');
        return;
      }
      if (performance.now() - this.#renewedAtMs >= this.#renewDeadlineMs) {
        this.#log.error(
          `could not renew lease ${this.#leaseRef} for ${this.#renewDeadlineMs} ms; stepping down`,
        );
        this.#stopLeading('lost');
        return;
      }
    }
  }

  /** The state, read through a call so that awaits in between do not confuse type narrowing. */
  #is(state: State): boolean {
    return this.#state === state;
  }

  /** One read and (if allowed) one conditional write. True if this replica holds the lease now. */
  async #tryAcquireOrRenew(timeoutMs: number): Promise<boolean> {
    const { leaseName: name, namespace } = this.#opts;
    const sentAt = performance.now();
    let current: V1Lease;
    try {
      current = await this.#withDeadline(this.#api.readNamespacedLease({ name, namespace }), timeoutMs);
    } catch (err) {
      if (!(err instanceof ApiException && err.code === 404)) {
        this.#log.warn({ err: short(err) }, `could not read lease ${this.#leaseRef}`);
        return false;
      }
      return this.#create(sentAt, timeoutMs);
    }
    this.#lease = current;
    if (this.#is('stopped')) return false;
    const record = recordOf(current.spec);
    this.#see(record, performance.now());
    if (!mayAcquire(this.#observation!, this.identity, performance.now())) return false;

    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      // metadata.resourceVersion makes the replace conditional: 409 if anyone wrote since the read.
      metadata: current.metadata ?? { name, namespace },
      spec: acquiredSpec(record, this.identity, this.#leaseDurationSeconds, new Date()),
    };
    try {
      const left = timeoutMs - (performance.now() - sentAt);
      const written = await this.#withDeadline(
        this.#api.replaceNamespacedLease({ name, namespace, body }),
        Math.max(left, 1),
      );
      return this.#written(written, sentAt);
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) {
        this.#log.debug(`lease ${this.#leaseRef} changed since it was read; reading it again`);
      } else {
        this.#log.warn({ err: short(err) }, `could not write lease ${this.#leaseRef}`);
      }
      return false;
    }
  }

  async #create(sentAt: number, timeoutMs: number): Promise<boolean> {
    const { leaseName: name, namespace } = this.#opts;
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace },
      spec: acquiredSpec(null, this.identity, this.#leaseDurationSeconds, new Date()),
    };
    try {
      const created = await this.#withDeadline(
        this.#api.createNamespacedLease({ namespace, body }),
        Math.max(timeoutMs - (performance.now() - sentAt), 1),
      );
      return this.#written(created, sentAt);
    } catch (err) {
      // 409: another candidate created it first; the next try reads it.
      if (!(err instanceof ApiException && err.code === 409))
        this.#log.warn({ err: short(err) }, `could not create lease ${this.#leaseRef}`);
      return false;
    }
  }

  #written(lease: V1Lease, sentAt: number): boolean {
    // Kept even after stop(): release() writes on top of the latest resourceVersion.
    this.#lease = lease;
    // A write that lands after stop() must not revive leadership.
    if (this.#is('stopped')) return false;
    this.#see(recordOf(lease.spec), performance.now());
    // Renewal counts from when the request was sent: the lease cannot have been renewed earlier.
    this.#renewedAtMs = sentAt;
    return true;
  }

  #see(record: LeaseRecord, nowMs: number): void {
    this.#observation = observe(this.#observation, record, nowMs);
    const holder = record.holderIdentity;
    if (holder !== '' && holder !== this.#lastLeader) {
      this.#lastLeader = holder;
      this.#log.info({ leader: holder }, `lease ${this.#leaseRef} is held by ${holder}`);
      this.#call('onNewLeader', () => this.#opts.onNewLeader?.(holder));
    }
  }

  #startLeading(): void {
    this.#state = 'leading';
    this.#leading = new AbortController();
    this.#log.info({ leaseTransitions: this.leaseTransitions }, `became the leader of ${this.#leaseRef}`);
    const signal = this.#leading.signal;
    this.#call('onStartedLeading', () => this.#opts.onStartedLeading?.(signal));
  }

  #stopLeading(why: 'lost' | 'stopped' | 'error'): void {
    const wasLeading = this.#state === 'leading';
    this.#state = 'stopped';
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#wake?.();
    if (!wasLeading) return;
    this.#log.info({ why }, `stopped leading ${this.#leaseRef}`);
    this.#leading?.abort(new Error(`leadership of ${this.#leaseRef} ended (${why})`));
    this.#call('onStoppedLeading', () => this.#opts.onStoppedLeading?.());
  }

  #call(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err }, `${name} callback threw`);
    }
  }

  /** Waits `ms`, or less if stopped meanwhile. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = null;
        resolve();
      };
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#wake?.();
      }, ms);
    });
  }

  /**
   * Rejects after `ms`: a request hanging past the renew deadline must not hold the leader in place.
   * (client-node's typed calls take no AbortSignal; the late request may still land, which only
   * makes other candidates wait one more lease duration.)
   */
  #withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`no answer from the API server in ${Math.round(ms)} ms`));
      }, ms);
    });
    return Promise.race([promise, deadline]).finally(() => {
      clearTimeout(timer);
    });
  }
}

/** ApiException messages hold whole response headers; logs need the code and the first line. */
function short(err: unknown): string {
  if (err instanceof ApiException) return `HTTP ${String(err.code)}: ${String(err.body).slice(0, 300)}`;
  return err instanceof Error ? err.message : String(err);
}
