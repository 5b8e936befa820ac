// The native boundary: every use of onnxruntime-node goes through this file.
import ort from 'onnxruntime-node';

// onnxruntime-common 1.30 wraps float16 data in a Float16Array view whenever the global exists
// (Node ≥ 24), but the native binding cannot read a Float16Array and sees 0 bytes ("not enough
// space: expected N, got 0"). Hiding the global during its one-time type check makes it keep
// float16 data as Uint16Array, which the binding reads. Measured on onnxruntime-node 1.30.0.
{
  const g = globalThis as { Float16Array?: unknown };
  const saved = g.Float16Array;
  delete g.Float16Array;
  try {
    new ort.Tensor('float32', new Float32Array(1), [1]);
  } finally {
    g.Float16Array = saved;
  }
}

export type ExecutionProviderName = 'cpu' | 'webgpu' | 'cuda';
export const EXECUTION_PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'webgpu', 'cuda'];

export interface SessionSettings {
  readonly ep: ExecutionProviderName;
  /** CPU threads for one operator (intra-op); 0 lets onnxruntime use every core. */
  readonly threads: number;
  /** GPU index for cuda. */
  readonly deviceId: number;
  /** onnxruntime's per-session CPU arena (faster without MALLOC_TUNING_ENV, far more memory). */
  readonly cpuArena?: boolean;
}

/**
 * glibc settings for worker processes: keep freed blocks for reuse instead of returning every large
 * buffer to the kernel, so per-layer intermediates are recycled across sessions without arenas.
 * Read at process start, so whoever spawns a worker sets them (launcher, pod spec, Dockerfile).
 */
export const MALLOC_TUNING_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(32 << 20),
  MALLOC_TRIM_THRESHOLD_: String(16 * 2 ** 30),
  MALLOC_TOP_PAD_: String(2 ** 30),
};

export class ExecutionProviderError extends Error {
  override readonly name = 'ExecutionProviderError';
}

/** Fail early and clearly when the chosen provider is not in this onnxruntime-node install. */
export function checkExecutionProvider(ep: ExecutionProviderName): void {
  const backend = ort.listSupportedBackends().find((b) => b.name === ep);
  if (!backend) {
    throw new ExecutionProviderError(
      `execution provider "${ep}" is not supported by onnxruntime-node ${ort.env.versions.common}`,
    );
  }
  if (!backend.bundled && ep === 'cuda') {
    throw new ExecutionProviderError(
      'execution provider "cuda" needs onnxruntime-node\'s CUDA 12 libraries, which are not installed here. ' +
        'Install them at image build time (ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci) on a host with CUDA 12 and cuDNN 9, ' +
        'or choose --ep cpu or --ep webgpu.',
    );
  }
}

function providerOptions(settings: SessionSettings): ort.InferenceSession.ExecutionProviderConfig[] {
  switch (settings.ep) {
    case 'cpu':
      return ['cpu'];
    case 'webgpu':
      return [{ name: 'webgpu' }];
    case 'cuda':
      return [{ name: 'cuda', deviceId: settings.deviceId }];
  }
}

export async function createSession(
  model: Uint8Array,
  settings: SessionSettings,
): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    executionProviders: providerOptions(settings),
    graphOptimizationLevel: 'all',
    intraOpNumThreads: settings.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
    // onnxruntime keeps one CPU arena per session at its peak: 24 layer sessions of the small
    // preset held 29 GiB at 8k tokens (bench/results). Without it, and with glibc told to keep
    // freed memory (MALLOC_TUNING_ENV), the same prefill measured 2.1 GiB peak and ran faster.
    enableCpuMemArena: settings.cpuArena ?? false,
  });
}

export type Session = ort.InferenceSession;
export type OrtTensor = ort.Tensor;
export const Tensor = ort.Tensor;
