// Worker-thread entry: owns the onnxruntime sessions (LayerEngine) and answers EngineClient calls.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { LayerEngine, type KvBlock } from './layer-engine.ts';
import type { CallRequest, EngineMethods, ThreadInit, ThreadMessage } from './engine-protocol.ts';

const port = parentPort;
if (!port) throw new Error('compute-thread.ts must run as a worker thread');
const post = (message: ThreadMessage, transfer: ArrayBuffer[] = []) => {
  port.postMessage(message, transfer);
};
const now = () => performance.timeOrigin + performance.now();

/** Buffers of a result that can move to the main thread without a copy (never shared ones). */
function transferables(value: unknown): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) return value.buffer instanceof ArrayBuffer ? [value.buffer] : [];
  if (Array.isArray(value)) return value.flatMap(transferables);
  if (value && typeof value === 'object') return Object.values(value).flatMap(transferables);
  return [];
}

function copyBlock(b: KvBlock | null): KvBlock | null {
  return b && { tokens: b.tokens, key: b.key.slice(), value: b.value.slice() };
}

const { spec } = workerData as ThreadInit;
let engine: LayerEngine;
try {
  engine = await LayerEngine.create(spec, (done, total, what) => {
    post({ kind: 'progress', done, total, what });
  });
} catch (err) {
  post({ kind: 'error', id: null, name: (err as Error).name, message: (err as Error).message });
  process.exit(1);
}

const handlers: {
  [M in keyof EngineMethods]: (
    ...args: Parameters<EngineMethods[M]>
  ) => Promise<ReturnType<EngineMethods[M]>> | ReturnType<EngineMethods[M]>;
} = {
  startChunk: (ids, start) => {
    engine.startChunk(ids, start);
  },
  runGraph: (index, pasts, options) => engine.runGraph(index, pasts, options),
  forward: (ids, start, keep) => engine.forward(ids, start, keep),
  logits: () => engine.logits(),
  // The cache stays in use here: the caller gets copies it may keep.
  cache: () => engine.cache().map(copyBlock),
  setCache: (layer, block) => {
    engine.setCache(layer, block);
  },
  resetCache: () => {
    engine.resetCache();
  },
  recycle: (blocks) => {
    engine.recycle(blocks);
  },
  kvPoolStats: () => engine.kvPoolStats(),
  release: () => engine.release(),
};

port.on('message', (request: CallRequest) => {
  void (async () => {
    const start = now();
    try {
      const handler = handlers[request.method] as (...args: readonly unknown[]) => unknown;
      const value = await handler(...request.args);
      post({ kind: 'result', id: request.id, value, span: { start, end: now() } }, transferables(value));
    } catch (err) {
      post({ kind: 'error', id: request.id, name: (err as Error).name, message: (err as Error).message });
    }
  })();
});
post({ kind: 'ready', info: engine.engineInfo });
