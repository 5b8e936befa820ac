// A command's engine flags (core/worker-config.ts EngineConfig) as the engine's own spec.
import type { EngineConfig } from '../core/worker-config.ts';
import type { EngineSpec } from '../worker/runtime/layer-engine.ts';

/** `inChain`: the process is one rank of several (a GPU rank then cuts its graphs for overlap). */
export function engineSpecOf(e: EngineConfig, inChain = false): EngineSpec {
  return {
    model: e.model,
    ep: e.ep,
    dtype: e.dtype,
    threads: e.threads,
    seed: e.seed,
    deviceId: e.device,
    inChain,
    ...(e.layersPerGraph === 'auto' ? {} : { layersPerGraph: e.layersPerGraph }),
    ...(e.attention === 'auto' ? {} : { attention: e.attention }),
    ...(e.io === 'auto' ? {} : { io: e.io }),
  };
}
