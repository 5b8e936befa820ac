// Helpers for tests of the rank chain: decoding a run's debug state, reference prefill in-process.
import { Mode, type RunRequest, type RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { decodeSafetensors } from '../../worker/model/safetensors.ts';
import { convertStored } from '../../worker/model/tensor.ts';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { prefillAndGenerate } from '../../worker/prefill.ts';
import type { KvBlock } from '../../worker/runtime/layer-engine.ts';

export interface ModelState {
  readonly logits: Float32Array;
  readonly cache: { key: Float32Array; value: Float32Array }[];
}

/** The last rank's logits and KV-cache from a run made with debugState. */
export function stateOf(result: RunResult): ModelState {
  const last = result.ranks.at(-1)!;
  const tensors = decodeSafetensors(last.debugState);
  const f32 = (name: string) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`debug state has no ${name}`);
    return convertStored(t.data, t.dtype, 'float32') as Float32Array;
  };
  const layers = [...tensors.keys()].filter((k) => k.endsWith('.key')).length;
  return {
    logits: f32('logits'),
    cache: Array.from({ length: layers }, (_, l) => ({
      key: f32(`layers.${l}.key`),
      value: f32(`layers.${l}.value`),
    })),
  };
}

export async function referenceState(model: string, ids: readonly number[]): Promise<ModelState> {
  const engine = await EngineClient.start({
    model,
    seed: 0,
    dtype: 'float32',
    ep: 'cpu',
    threads: 1,
    deviceId: 0,
  });
  try {
    const r = await prefillAndGenerate(engine, ids, { maxNewTokens: 0, keepState: true });
    return {
      logits: r.logits!,
      cache: (r.kvCache as KvBlock[]).map((b) => ({
        key: b.key as Float32Array,
        value: b.value as Float32Array,
      })),
    };
  } finally {
    await engine.close();
  }
}

export function request(
  ids: readonly number[],
  mode: Mode,
  boundaries: readonly number[] = [],
  extra: Partial<RunRequest> = {},
): RunRequest {
  return {
    prompt: { source: { $case: 'tokenIds', value: { ids: [...ids] } } },
    mode,
    boundaries: [...boundaries],
    maxNewTokens: 0,
    partition: 'even',
    debugState: true,
    ...extra,
  };
}
