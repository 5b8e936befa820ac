// Prompts as token ids: from text through the tokenizer, or synthetic (a deterministic sequence of
// a given length, for benchmarks where only the context length matters).
import { readFile } from 'node:fs/promises';
import type { TextTokenizer } from './tokenizer.ts';

export type PromptSource =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'tokens'; readonly count: number; readonly seed: number };

/** BOS followed by `count - 1` pseudo-random ids in [3, vocabSize) (0..2 are the specials). */
export function syntheticPromptIds(
  count: number,
  vocabSize: number,
  seed: number,
  bosTokenId: number | null,
): number[] {
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`a synthetic prompt needs at least 1 token, got ${count}`);
  let state = (seed * 2654435761 + 1) >>> 0 || 1;
  const ids: number[] = bosTokenId === null ? [] : [bosTokenId];
  const span = Math.max(1, vocabSize - 3);
  while (ids.length < count) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    ids.push(3 + ((state >>> 0) % span));
  }
  return ids;
}

export async function promptIds(
  source: PromptSource,
  tokenizer: TextTokenizer,
  vocabSize: number,
  bosTokenId: number | null,
): Promise<number[]> {
  switch (source.kind) {
    case 'text':
      return tokenizer.encode(source.text);
    case 'file':
      return tokenizer.encode(await readFile(source.path, 'utf8'));
    case 'tokens':
      return syntheticPromptIds(source.count, vocabSize, source.seed, bosTokenId);
  }
}
