// Reference prefill in one process: the whole prompt through every layer, the first token from the
// last position, then greedy decoding through the same decoder-with-past graphs. It is the
// single-rank baseline and the ground truth the multi-rank chain is compared with.
import { performance } from 'node:perf_hooks';
import type { EngineClient } from './runtime/engine-client.ts';
import type { KvBlock } from './runtime/layer-engine.ts';
import { argmax } from './sampling.ts';

export interface GenerationOptions {
  /** Tokens generated after the first one. */
  readonly maxNewTokens: number;
  /** Stop early when the model emits one of these ids. */
  readonly eosTokenIds?: readonly number[];
  /** Keep the last-position logits and the full KV-cache in the result (tests). */
  readonly keepState?: boolean;
  /** Told each token after the first as soon as it is chosen (`index` 1 for the second token). */
  readonly onToken?: (token: number, index: number) => void;
}

export interface GenerationResult {
  readonly firstToken: number;
  /** The first token followed by each generated id. */
  readonly tokens: readonly number[];
  readonly contextLength: number;
  /** Prompt released → first token chosen, milliseconds, on this process's clock. */
  readonly ttftMs: number;
  /** Mean time per generated token after the first. */
  readonly decodeMsPerToken: number | null;
  /** Time spent after the first token rebuilding the prompt's KV-cache for decoding (GPU engines). */
  readonly cacheFillMs: number;
  readonly logits?: Float32Array;
  readonly kvCache?: (KvBlock | null)[];
}

/** Greedy decoding after a prefill whose KV-cache the engine holds and whose first token is known. */
export async function decodeGreedy(
  engine: EngineClient,
  firstToken: number,
  position: number,
  options: GenerationOptions,
): Promise<{ tokens: number[]; msPerToken: number | null }> {
  const tokens = [firstToken];
  const eos = new Set(options.eosTokenIds ?? []);
  const started = performance.now();
  let last = firstToken;
  for (let step = 0; step < options.maxNewTokens && !eos.has(last); step++) {
    await engine.forward([last], position + step, true);
    last = argmax(await engine.logits());
    tokens.push(last);
    options.onToken?.(last, tokens.length - 1);
  }
  const generated = tokens.length - 1;
  return { tokens, msPerToken: generated > 0 ? (performance.now() - started) / generated : null };
}

export async function prefillAndGenerate(
  engine: EngineClient,
  promptIds: readonly number[],
  options: GenerationOptions,
): Promise<GenerationResult> {
  if (promptIds.length === 0) throw new Error('the prompt has no tokens');
  await engine.resetCache();
  const needCache = options.maxNewTokens > 0 || options.keepState === true;
  // Where K/V leaving the engine cost real time (a GPU), the first token comes without them; the
  // cache for decoding is filled afterwards, on decoding's clock.
  const keepNow = needCache && engine.info.kvOnHostIsFree;
  const released = performance.now();
  await engine.forward(promptIds, 0, keepNow);
  const logits = await engine.logits();
  const firstToken = argmax(logits);
  const ttftMs = performance.now() - released;
  const fillStart = performance.now();
  if (needCache && !keepNow) await engine.forward(promptIds, 0, true);
  const cacheFillMs = performance.now() - fillStart;
  const state = options.keepState ? { logits, kvCache: await engine.cache() } : {};
  const decoded = await decodeGreedy(engine, firstToken, promptIds.length, options);
  return {
    firstToken,
    tokens: decoded.tokens,
    contextLength: promptIds.length,
    ttftMs,
    decodeMsPerToken: decoded.msPerToken,
    cacheFillMs,
    ...state,
  };
}
