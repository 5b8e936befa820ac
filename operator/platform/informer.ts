// A cache of one kind of object kept current by list-then-watch, on client-node's ListWatch, with
// what it lacks (OPERATOR-NOTES.md: "users report informers silently stopping"):
//  - ListWatch re-lists on 410 Gone and reconnects after a watch timeout, but on any other error
//    (connection reset, API server restart, 403, 500, a failed list) it emits `error` and stops for
//    good. Here every such error restarts it, with exponential backoff, and is logged and counted.
//  - `hasSynced` / `waitForSync()`: a reconciler that acts before the first list is in the cache
//    would see "no children" and create duplicates (client-go's WaitForCacheSync).
//  - Callback errors are caught here: client-node's Watch calls the event callback inside a
//    try/catch meant for JSON parse errors, so a throwing callback would be silently swallowed.
// Objects in the cache are JSON as the API server sent it (see list-collection.ts): the type
// parameter describes that JSON; client-node's model classes would claim Date fields that are strings.
import {
  ADD,
  DELETE,
  ERROR,
  UPDATE,
  ListWatch,
  Watch,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { logger, type Logger } from '../../core/log.ts';
import { backoffDelayMs, jittered } from './backoff.ts';
import { collectionPath, listCollection, type ResourceRef } from './list-collection.ts';

export type ChangeEvent = 'add' | 'update' | 'delete';
export type ChangeCallback<T> = (obj: T, event: ChangeEvent) => void;

export interface InformerOptions {
  readonly kubeConfig: KubeConfig;
  readonly resource: ResourceRef;
  /** Watch only this namespace; all namespaces when missing (needs cluster-wide list/watch RBAC). */
  readonly namespace?: string | undefined;
  /** Only objects with these labels, e.g. `app.kubernetes.io/managed-by=runahead-operator`. */
  readonly labelSelector?: string | undefined;
  /** First restart delay after a failure. Default 1 s (ListWatch's own reconnect base). */
  readonly restartBaseDelayMs?: number | undefined;
  /** Cap of the restart backoff. Default 30 s (ListWatch's own cap). */
  readonly restartMaxDelayMs?: number | undefined;
  /**
   * Failing without a successful list+watch for this long makes `healthy` false (liveness fails and
   * the kubelet restarts the pod, so a stuck process shows as CrashLoopBackOff instead of serving
   * stale data). Retries go on meanwhile. Default 5 min.
   */
  readonly unhealthyAfterMs?: number | undefined;
  /** A failure of more than this long since the last successful start resets the backoff. Default 60 s. */
  readonly backoffResetMs?: number | undefined;
  /** Called on every restart after a failure (e.g. OperatorMetrics.informerRestarted). */
  readonly onRestart?: ((resource: string, error: unknown) => void) | undefined;
  /** Objects per list page. Default 500. */
  readonly listPageSize?: number | undefined;
}

export const INFORMER_DEFAULTS = {
  restartBaseDelayMs: 1000,
  restartMaxDelayMs: 30_000,
  unhealthyAfterMs: 300_000,
  backoffResetMs: 60_000,
  listPageSize: 500,
} as const;

export class Informer<T extends KubernetesObject> {
  /** What this informer watches, for logs: `pods in ns`, `runaheadjobs in all namespaces`. */
  readonly description: string;
  readonly #resourceName: string;
  readonly #options: InformerOptions;
  readonly #lw: ListWatch<T>;
  readonly #log: Logger;
  readonly #callbacks = new Set<ChangeCallback<T>>();
  readonly #syncWaiters = new Set<() => void>();

  #started = false;
  #stopped = false;
  #synced = false;
  #restartTimer: NodeJS.Timeout | null = null;
  /** Failures reported so far (each schedules one restart). */
  #failures = 0;
  #consecutiveFailures = 0;
  /** When the last list+watch start succeeded; null once a failure has been counted since. */
  #lastSuccessAt: number | null = null;
  #failingSince: number | null = null;
  #restarts = 0;
  #lastError: unknown = undefined;

  constructor(options: InformerOptions) {
    this.#options = options;
    const { resource, namespace, labelSelector } = options;
    const path = collectionPath(resource, namespace);
    this.#resourceName = resource.group === '' ? resource.plural : `${resource.plural}.${resource.group}`;
    this.description =
      `${this.#resourceName} in ${namespace === undefined ? 'all namespaces' : `namespace ${namespace}`}` +
      (labelSelector === undefined ? '' : ` with labels ${labelSelector}`);
    this.#log = logger('informer', { resource: this.#resourceName, namespace, labelSelector });
    const list = async () => {
      const result = await listCollection<T>(options.kubeConfig, path, {
        labelSelector,
        pageSize: options.listPageSize ?? INFORMER_DEFAULTS.listPageSize,
      });
      // ListWatch goes on to watch even if stopped while this list was in flight: refuse instead.
      if (this.#stopped) throw new Error(`informer for ${this.description} stopped`);
      // ListWatch fills its cache synchronously once this promise resolves (one await in between,
      // then no other); a macrotask later, the cache holds the whole list.
      setImmediate(() => {
        this.#markSynced();
      });
      return result;
    };
    this.#lw = new ListWatch<T>(path, new Watch(options.kubeConfig), list, false, labelSelector);
    const emit = (event: ChangeEvent) => (obj: T) => {
      this.#emit(obj, event);
    };
    this.#lw.on(ADD, emit('add'));
    this.#lw.on(UPDATE, emit('update'));
    this.#lw.on(DELETE, emit('delete'));
    this.#lw.on(ERROR, (err: unknown) => {
      this.#failed(err);
    });
  }

  /** Starts listing and watching (once). Resolves after the first attempt; see waitForSync. */
  async start(): Promise<void> {
    if (this.#started) throw new Error(`informer for ${this.description} was already started`);
    this.#started = true;
    this.#log.info(`starting informer for ${this.description}`);
    await this.#startListWatch();
  }

  /** Stops watching; the cache keeps its last content. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    // Aborting the watch makes ListWatch report an AbortError; #failed ignores it once stopped.
    await this.#lw.stop();
    for (const wake of this.#syncWaiters) wake();
    this.#syncWaiters.clear();
    this.#log.info(`stopped informer for ${this.description}`);
  }

  /** True once the first full list is in the cache (it stays true across restarts). */
  get hasSynced(): boolean {
    return this.#synced;
  }

  /** False after failing for longer than unhealthyAfterMs without a successful list+watch. */
  get healthy(): boolean {
    if (this.#stopped || this.#failingSince === null) return true;
    const limit = this.#options.unhealthyAfterMs ?? INFORMER_DEFAULTS.unhealthyAfterMs;
    return performance.now() - this.#failingSince < limit;
  }

  /** Restarts after failures so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The last error that stopped the list or watch (undefined if none yet). */
  get lastError(): unknown {
    return this.#lastError;
  }

  /** Resolves once synced; rejects after `timeoutMs` (default 60 s) with the last error, or if stopped. */
  waitForSync(timeoutMs = 60_000): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#syncWaiters.delete(done);
        if (this.#synced) resolve();
        else reject(new Error(`informer for ${this.description} stopped before its cache synced`));
      };
      const timer = setTimeout(() => {
        this.#syncWaiters.delete(done);
        const last = this.#lastError === undefined ? '' : `; last error: ${describeError(this.#lastError)}`;
        reject(
          new Error(
            `cache of ${this.description} did not sync in ${timeoutMs} ms${last}. ` +
              'Check that the API server is reachable and that the service account may list and watch this resource.',
          ),
        );
      }, timeoutMs);
      this.#syncWaiters.add(done);
    });
  }

  /** Every object in the cache, or those of one namespace. */
  list(namespace?: string): readonly T[] {
    return this.#lw.list(namespace);
  }

  /** One object from the cache ('' as namespace for cluster-scoped objects). */
  get(namespace: string, name: string): T | undefined {
    return this.#lw.get(name, namespace);
  }

  /**
   * Calls `cb` when an object is added, updated or deleted (including objects found or gone when the
   * cache is listed again after a restart). Returns a function that unsubscribes.
   */
  onChange(cb: ChangeCallback<T>): () => void {
    this.#callbacks.add(cb);
    return () => {
      this.#callbacks.delete(cb);
    };
  }

  #emit(obj: T, event: ChangeEvent): void {
    for (const cb of this.#callbacks) {
      try {
        cb(obj, event);
      } catch (err) {
        const meta = obj.metadata;
        this.#log.error(
          { err, event, object: `${meta?.namespace ?? ''}/${meta?.name ?? ''}` },
          'change callback threw',
        );
      }
    }
  }

  #markSynced(): void {
    if (this.#synced || this.#stopped) return;
    this.#synced = true;
    this.#log.info({ objects: this.#lw.list().length }, `cache of ${this.description} synced`);
    for (const wake of this.#syncWaiters) wake();
    this.#syncWaiters.clear();
  }

  async #startListWatch(): Promise<void> {
    const failuresBefore = this.#failures;
    try {
      await this.#lw.start();
    } catch (err) {
      // Thrown before the watch request was sent (e.g. credentials could not be obtained).
      this.#failed(err);
      return;
    }
    // No error reported during the start: the list (if one was needed) succeeded and the watch is connected.
    if (this.#stopped || this.#failures !== failuresBefore) return;
    this.#lastSuccessAt = performance.now();
    if (this.#failingSince !== null) this.#log.info(`informer for ${this.description} recovered`);
    this.#failingSince = null;
  }

  #failed(err: unknown): void {
    if (this.#stopped || this.#restartTimer !== null) return;
    const now = performance.now();
    this.#failures++;
    this.#lastError = err;
    this.#failingSince ??= now;
    // A watch that ran long enough before failing starts the backoff over; one that keeps failing
    // right after connecting (or a list that keeps failing) backs off further.
    const resetAfter = this.#options.backoffResetMs ?? INFORMER_DEFAULTS.backoffResetMs;
    if (this.#lastSuccessAt !== null && now - this.#lastSuccessAt > resetAfter) this.#consecutiveFailures = 0;
    this.#lastSuccessAt = null;
    const delay = jittered(
      backoffDelayMs(
        this.#consecutiveFailures,
        this.#options.restartBaseDelayMs ?? INFORMER_DEFAULTS.restartBaseDelayMs,
        this.#options.restartMaxDelayMs ?? INFORMER_DEFAULTS.restartMaxDelayMs,
      ),
      0.2,
    );
    this.#consecutiveFailures++;
    this.#log.warn(
      {
        err: describeError(err),
        restartInMs: Math.round(delay),
        consecutiveFailures: this.#consecutiveFailures,
      },
      `list/watch of ${this.description} failed; restarting`,
    );
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      if (this.#stopped) return;
      this.#restarts++;
      try {
        this.#options.onRestart?.(this.#resourceName, err);
      } catch (cbErr) {
        this.#log.error({ err: cbErr }, 'onRestart callback threw');
      }
      void this.#startListWatch();
    }, delay);
  }
}

/** An error as a short string for logs: ApiException bodies can be long, statusCode says most. */
function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code =
      (err as { code?: unknown; statusCode?: unknown }).code ?? (err as { statusCode?: unknown }).statusCode;
    const first = err.message.split('\n')[0] ?? '';
    return typeof code === 'number' || typeof code === 'string'
      ? `${err.name} ${String(code)}: ${first}`
      : `${err.name}: ${first}`;
  }
  return String(err);
}

/** A kind of the core API group (pods, services, namespaces…). */
export const coreResource = (plural: string): ResourceRef => ({ group: '', version: 'v1', plural });

/** What every informer of one controller shares. */
export interface InformerFactoryOptions {
  readonly kubeConfig: KubeConfig;
  /** Namespaced kinds are watched in this namespace only; in all namespaces when undefined. */
  readonly namespace?: string | undefined;
  /** Counts each informer's restarts (OperatorMetrics). */
  readonly metrics: { informerRestarted(resource: string): void };
}

/** Makes a controller's informers: one client, one watched namespace, one restart counter. */
export class InformerFactory {
  readonly #options: InformerFactoryOptions;

  constructor(options: InformerFactoryOptions) {
    this.#options = options;
  }

  /** A namespaced kind, in the watched namespace (or all). */
  namespaced<T extends KubernetesObject>(resource: ResourceRef, labelSelector?: string): Informer<T> {
    return this.#make(resource, this.#options.namespace, labelSelector);
  }

  /** A cluster-scoped kind (namespaces, nodes). */
  cluster<T extends KubernetesObject>(resource: ResourceRef, labelSelector?: string): Informer<T> {
    return this.#make(resource, undefined, labelSelector);
  }

  #make<T extends KubernetesObject>(
    resource: ResourceRef,
    namespace: string | undefined,
    labelSelector: string | undefined,
  ): Informer<T> {
    const { kubeConfig, metrics } = this.#options;
    return new Informer<T>({
      kubeConfig,
      resource,
      namespace,
      labelSelector,
      onRestart: (r) => {
        metrics.informerRestarted(r);
      },
    });
  }
}
