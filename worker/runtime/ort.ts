// The native boundary: every use of onnxruntime-node goes through this file.
import ort from 'onnxruntime-node';
import { GraphBuilder, type BuiltModel } from '../onnx/graph-builder.ts';
import { stageModel } from './weight-staging.ts';
import { ExecutionProviderError, type ExecutionProviderName } from '../../core/execution-providers.ts';

// onnxruntime-common 1.30 wraps float16 data in a Float16Array view whenever the global exists
// (Node ≥ 24), but the native binding cannot read a Float16Array and sees 0 bytes ("not enough
// space: expected N, got 0"). Hiding the global during its one-time type check makes it keep
// float16 data as Uint16Array, which the binding reads. Measured on onnxruntime-node 1.30.0 and 1.29.0.
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

export {
  EXECUTION_PROVIDERS,
  ExecutionProviderError,
  type ExecutionProviderName,
} from '../../core/execution-providers.ts';

export interface SessionSettings {
  readonly ep: ExecutionProviderName;
  /** CPU threads for one operator (intra-op); 0 lets onnxruntime use every core. */
  readonly threads: number;
  /** GPU index for cuda. */
  readonly deviceId: number;
  /** onnxruntime's per-session CPU arena (faster without MALLOC_TUNING_ENV, far more memory). */
  readonly cpuArena?: boolean;
  /** onnxruntime's graph optimization level; default 'all'. */
  readonly graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** onnxruntime's memory pattern; default: on for the CPU, off on GPUs (see createSession). */
  readonly memPattern?: boolean;
}

/**
 * glibc settings for worker processes: blocks under the mmap threshold are kept for reuse (never
 * trimmed), blocks from the threshold up are mapped and returned to the kernel when freed. Read at
 * process start, so whoever spawns a worker sets them (launcher, pod spec, Dockerfile).
 *
 * The threshold is 4 MiB, chosen by measurement (bench/results/cpu-small-memory.md): with 32 MiB the
 * per-layer tensors of 4–32 MiB (a layer's K or V, hidden states, queries: 1–3 KiB per token of the
 * small preset) stayed in the compute thread's malloc arenas, whose fragments no later layer could
 * reuse, and a rank's RSS grew layer after layer: peak 2.09 and 2.15 GiB per rank at 32768 tokens
 * on 2 ranks, 1.76 and 1.85 GiB with 4 MiB; 1.28 and 1.25 against 1.02 and 1.06 GiB at 8192 tokens.
 * What it costs: fresh pages for those tensors (about 13 % more CPU time at 8k tokens, system time;
 * the same at 32k, where attention dominates).
 */
export const MALLOC_TUNING_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(4 << 20),
  MALLOC_TRIM_THRESHOLD_: String(16 * 2 ** 30),
  MALLOC_TOP_PAD_: String(2 ** 30),
};

/** Where onnxruntime's CUDA provider comes from (scripts/setup-cuda-provider.sh; DEVICE.md). */
export const CUDA_PROVIDER_HELP =
  'onnxruntime-node ' +
  ort.env.versions.common +
  " needs onnxruntime's CUDA provider (libonnxruntime_providers_cuda.so, built for CUDA 13 and cuDNN 9) " +
  'beside its native library: run `make cuda` (scripts/setup-cuda-provider.sh), and put the CUDA 13 ' +
  'runtime, cuBLAS and cuDNN 9 libraries on LD_LIBRARY_PATH; or choose --ep cpu';

const probed = new Map<string, Promise<void>>();

/**
 * Fail early and clearly when the chosen provider cannot run here. For CUDA the binding's
 * listSupportedBackends() says `bundled: false` even where the provider works, so the answer
 * comes from creating a one-node session on it.
 */
export function checkExecutionProvider(ep: ExecutionProviderName, deviceId = 0): Promise<void> {
  const key = `${ep}:${deviceId}`;
  let check = probed.get(key);
  if (!check) {
    check = probeExecutionProvider(ep, deviceId);
    probed.set(key, check);
  }
  return check;
}

async function probeExecutionProvider(ep: ExecutionProviderName, deviceId: number): Promise<void> {
  if (!ort.listSupportedBackends().some((b) => b.name === ep)) {
    throw new ExecutionProviderError(
      `execution provider "${ep}" is not supported by onnxruntime-node ${ort.env.versions.common}`,
    );
  }
  if (ep !== 'cuda') return;
  try {
    const session = await createSession(probeModel(), { ep, threads: 1, deviceId });
    const x = new Tensor('float16', Uint16Array.of(0x3c00), [1, 1]);
    await session.run({ x });
    await session.release();
  } catch (err) {
    const cause = (err as Error).message.split('\n')[0];
    throw new ExecutionProviderError(
      `execution provider "cuda" does not load (${cause}). ${CUDA_PROVIDER_HELP}.`,
    );
  }
}

/** x·x in float16: creating and running it loads the provider, the CUDA runtime and cuBLAS. */
function probeModel(): BuiltModel {
  const g = new GraphBuilder('probe');
  const x = g.input('x', 'float16', [1, 1]);
  g.output(g.node('MatMul', [x, x]), 'y', 'float16', [1, 1]);
  return g.build();
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

/**
 * Session configuration entries. On a GPU the weights go to the device with plain allocations,
 * outside the provider's arena: the arena grows by powers of two, and a 7B model's weights in it
 * left no room for activations at 4k tokens (DEVICE.md, the 2026-12-02 OOM).
 */
export function configEntries(settings: SessionSettings): Record<string, string> {
  return settings.ep === 'cpu' ? {} : { 'session.use_device_allocator_for_initializers': '1' };
}

/**
 * On a GPU the memory pattern reserves one block of intermediates per prompt length in the
 * provider's arena, which never returns it: llama-7b at 32768 tokens peaked at 116 GB with it
 * and 51 GB without, and ran its first token in 2169 instead of 1398 ms (H200, fresh process).
 */
export function memPatternOf(settings: SessionSettings): boolean {
  return settings.memPattern ?? settings.ep === 'cpu';
}

/**
 * RUNAHEAD_ORT_PROFILE=<file prefix>: onnxruntime's profiler records how each session was created
 * (model load, graph transforms, initializers, kernels), written as <prefix>_<date>.json once the
 * session exists. A diagnostic for load times (bench/gpu/run.sh), off by default.
 */
const PROFILE_PREFIX = process.env.RUNAHEAD_ORT_PROFILE;

export async function createSession(
  model: BuiltModel,
  settings: SessionSettings,
): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    ...(PROFILE_PREFIX ? { enableProfiling: true, profileFilePrefix: PROFILE_PREFIX } : {}),
    executionProviders: providerOptions(settings),
    graphOptimizationLevel: settings.graphOptimization ?? 'all',
    intraOpNumThreads: settings.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
    // onnxruntime keeps one CPU arena per session at its peak: 24 layer sessions of the small
    // preset held 29 GiB at 8k tokens (bench/results). Without it, and with glibc told to keep
    // freed memory (MALLOC_TUNING_ENV), the same prefill measured 2.1 GiB peak and ran faster.
    enableCpuMemArena: settings.cpuArena ?? false,
    enableMemPattern: memPatternOf(settings),
    extra: configEntries(settings),
  };
  // Weights are never copied into the model's protobuf: they are files beside it (weight-staging.ts)
  // or, where no memory-backed directory has room, views of the arrays that hold them.
  const staged = await stageModel(model);
  let session: ort.InferenceSession;
  try {
    session = staged
      ? await ort.InferenceSession.create(staged.path, options)
      : await ort.InferenceSession.create(model.bytes, {
          ...options,
          externalData: model.externalData.map(({ path, data }) => ({ path, data })),
        });
  } finally {
    await staged?.remove();
  }
  if (PROFILE_PREFIX) session.endProfiling();
  return session;
}

export type Session = ort.InferenceSession;
export type OrtTensor = ort.Tensor;
export const Tensor = ort.Tensor;
