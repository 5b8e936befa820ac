// Messages between the main thread (EngineClient) and the compute thread (compute-thread.ts).
import type { EngineInfo, EngineSpec, GraphRunOptions, KvBlock, LayerKv } from './layer-engine.ts';
import type { PoolStats } from './kv-buffer-pool.ts';

/** What the compute thread can be asked to do; each maps to a LayerEngine method. */
export interface EngineMethods {
  startChunk(ids: readonly number[], start: number): void;
  runGraph(index: number, pasts: readonly (KvBlock | null)[], options: GraphRunOptions): LayerKv[];
  forward(ids: readonly number[], start: number, keep: boolean): void;
  logits(): Float32Array;
  cache(): (KvBlock | null)[];
  setCache(layer: number, block: KvBlock): void;
  resetCache(): void;
  recycle(blocks: readonly KvBlock[]): void;
  /** Releases sessions and unpins host buffers; the thread is terminated after it. */
  release(): void;
  kvPoolStats(): PoolStats | null;
}
export type EngineMethod = keyof EngineMethods;

export interface CallRequest {
  readonly kind: 'call';
  readonly id: number;
  readonly method: EngineMethod;
  readonly args: readonly unknown[];
}

/** Wall-clock span of a call inside the compute thread (epoch milliseconds, shared by all threads). */
export interface Span {
  readonly start: number;
  readonly end: number;
}

export type ThreadMessage =
  | { readonly kind: 'ready'; readonly info: EngineInfo }
  | { readonly kind: 'progress'; readonly done: number; readonly total: number; readonly what: string }
  | { readonly kind: 'result'; readonly id: number; readonly value: unknown; readonly span: Span }
  | { readonly kind: 'error'; readonly id: number | null; readonly name: string; readonly message: string };

export interface ThreadInit {
  readonly spec: EngineSpec;
}
