// The execution providers a rank can run on, known without onnxruntime: the command line checks
// `--ep` against this list in every process, and the operator's process must not load onnxruntime's
// native library to do so. worker/runtime/ort.ts re-exports it for the worker side.
export type ExecutionProviderName = 'cpu' | 'webgpu' | 'cuda';
export const EXECUTION_PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'webgpu', 'cuda'];

/** The chosen provider cannot run here (not built in, or its libraries do not load). */
export class ExecutionProviderError extends Error {
  override readonly name = 'ExecutionProviderError';
}
