// Main-thread handle on a compute thread. Calls are queued by the thread in order; each resolves
// with its value and the span it ran, so the rank loop can draw its timeline.
import { Worker } from 'node:worker_threads';
import { siblingModule } from '../../core/module-path.ts';
import type { PoolStats } from './kv-buffer-pool.ts';
import type {
  EngineInfo,
  EngineSpec,
  GraphRunOptions,
  KvBlock,
  LayerKv,
  LoadProgress,
} from './layer-engine.ts';
import type {
  CallRequest,
  EngineMethod,
  EngineMethods,
  Span,
  ThreadInit,
  ThreadMessage,
} from './engine-protocol.ts';

export class EngineError extends Error {
  override readonly name: string;
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export interface Timed<T> {
  readonly value: T;
  readonly span: Span;
}

interface Pending {
  resolve(result: Timed<unknown>): void;
  reject(err: Error): void;
}

/** How long close() waits for the engine to release what it holds before ending its thread. */
const CLOSE_GRACE_MS = 10_000;

export class EngineClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;
  readonly info: EngineInfo;

  private constructor(worker: Worker, info: EngineInfo) {
    this.worker = worker;
    this.info = info;
    worker.on('message', (m: ThreadMessage) => {
      if (m.kind === 'result') this.settle(m.id)?.resolve({ value: m.value, span: m.span });
      else if (m.kind === 'error' && m.id !== null)
        this.settle(m.id)?.reject(new EngineError(m.name, m.message));
    });
    worker.on('error', (err: Error) => {
      this.fail(err);
    });
    worker.on('exit', (code) => {
      this.fail(new EngineError('EngineExited', `compute thread exited (code ${code})`));
    });
  }

  /** Start a compute thread, load the model in it, and resolve once it is ready. */
  static start(spec: EngineSpec, progress: LoadProgress = () => undefined): Promise<EngineClient> {
    const init: ThreadInit = { spec };
    const worker = new Worker(siblingModule(import.meta.url, './compute-thread'), { workerData: init });
    return new Promise((resolve, reject) => {
      const onMessage = (m: ThreadMessage) => {
        if (m.kind === 'progress') progress(m.done, m.total, m.what);
        else if (m.kind === 'ready') {
          cleanup();
          resolve(new EngineClient(worker, m.info));
        } else if (m.kind === 'error' && m.id === null) {
          cleanup();
          void worker.terminate();
          reject(new EngineError(m.name, m.message));
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const onExit = (code: number) => {
        cleanup();
        reject(
          new EngineError('EngineExited', `compute thread exited while loading the model (code ${code})`),
        );
      };
      const cleanup = () => {
        worker.off('message', onMessage).off('error', onError).off('exit', onExit);
      };
      worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    });
  }

  private settle(id: number): Pending | undefined {
    const p = this.pending.get(id);
    this.pending.delete(id);
    return p;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  call<M extends EngineMethod>(
    method: M,
    ...args: Parameters<EngineMethods[M]>
  ): Promise<Timed<ReturnType<EngineMethods[M]>>> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const request: CallRequest = { kind: 'call', id, method, args };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (r: Timed<unknown>) => void, reject });
      this.worker.postMessage(request);
    });
  }

  async startChunk(ids: readonly number[], start: number): Promise<void> {
    await this.call('startChunk', ids, start);
  }

  /** Graph `index` of the current chunk (see LayerEngine.runGraph). */
  runGraph(
    index: number,
    pasts: readonly (KvBlock | null)[],
    options: GraphRunOptions,
  ): Promise<Timed<LayerKv[]>> {
    return this.call('runGraph', index, pasts, options);
  }

  /** The whole stack for one chunk over the local KV-cache; `keep` extends the cache. */
  async forward(ids: readonly number[], start: number, keep: boolean): Promise<Span> {
    return (await this.call('forward', ids, start, keep)).span;
  }

  /** Float32 logits of the last position of the last chunk. */
  async logits(): Promise<Float32Array> {
    return (await this.call('logits')).value;
  }

  async cache(): Promise<(KvBlock | null)[]> {
    return (await this.call('cache')).value;
  }

  async setCache(layer: number, block: KvBlock): Promise<void> {
    await this.call('setCache', layer, block);
  }

  async resetCache(): Promise<void> {
    await this.call('resetCache');
  }

  /**
   * Hands back blocks that runGraph emitted, once sent: on the addon's IO path they are views of host
   * buffers the engine reuses for the next K/V (shared memory, not copies). Not awaited by senders:
   * the message is ordered before any later call.
   */
  recycle(blocks: readonly KvBlock[]): void {
    if (blocks.length === 0 || this.failure) return;
    this.call('recycle', blocks).catch(() => undefined);
  }

  async kvPoolStats(): Promise<PoolStats | null> {
    return (await this.call('kvPoolStats')).value;
  }

  /**
   * Releases the engine (its sessions; host memory pinned for the GPU must be unpinned before it is
   * freed, or CUDA keeps a stale registration over it), then ends the thread. A thread that does not
   * answer within CLOSE_GRACE_MS is ended anyway.
   */
  async close(): Promise<void> {
    if (!this.failure) {
      const released = this.call('release').catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
      await Promise.race([released, grace]);
      clearTimeout(timer);
    }
    this.fail(new EngineError('EngineClosed', 'engine closed'));
    await this.worker.terminate();
  }
}
