// Text ↔ token ids through @huggingface/tokenizers (a maintained, pure-JS port of the Rust
// tokenizers library) reading the checkpoint's tokenizer.json. Synthetic models get a generated
// byte-level tokenizer, so every preset can be prompted with text too.
import * as tokenizersJs from '@huggingface/tokenizers';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { presetConfig } from './model/presets.ts';
import { SYNTHETIC_PREFIX, isSynthetic } from './model/load.ts';

export class TokenizerError extends Error {
  override readonly name = 'TokenizerError';
}

export interface TextTokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

// The package's .d.ts files use extensionless relative imports that "nodenext" resolution cannot
// follow, so the part of its API used here is typed once, at this boundary.
interface LibraryTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(
    ids: number[],
    options: { skip_special_tokens: boolean; clean_up_tokenization_spaces: boolean },
  ): string;
}
const Tokenizer = (
  tokenizersJs as unknown as { Tokenizer: new (json: object, config: object) => LibraryTokenizer }
).Tokenizer;

class HfTokenizer implements TextTokenizer {
  private readonly tokenizer: LibraryTokenizer;

  constructor(tokenizer: LibraryTokenizer) {
    this.tokenizer = tokenizer;
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: true }).ids;
  }

  decode(ids: readonly number[]): string {
    return this.tokenizer.decode([...ids], {
      skip_special_tokens: true,
      clean_up_tokenization_spaces: false,
    });
  }
}

async function readJsonFile(path: string): Promise<object | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new TokenizerError(`${path}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as object;
  } catch (err) {
    throw new TokenizerError(`${path}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * tokenizer.json of a synthetic model: GPT-2 style byte-level BPE with no merges (one token per
 * byte), specials <unk>=0 <s>=1 </s>=2, bytes at 3..258 and filler tokens up to the vocabulary size
 * so that every id the model can emit decodes to something readable.
 */
export function syntheticTokenizerJson(vocabSize: number): object {
  const byteToChar = byteLevelAlphabet();
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[byteToChar[b]!] = 3 + b;
  for (let id = 259; id < vocabSize; id++) vocab[`<extra_${id}>`] = id;
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges: [],
    },
  };
}

/** GPT-2's reversible byte → printable character map used by byte-level BPE. */
function byteLevelAlphabet(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const map: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    map[b] = printable.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return map;
}

export async function loadTokenizer(model: string): Promise<TextTokenizer> {
  if (isSynthetic(model)) {
    const config = presetConfig(model.slice(SYNTHETIC_PREFIX.length));
    return new HfTokenizer(new Tokenizer(syntheticTokenizerJson(config.vocabSize), {}));
  }
  const path = join(model, 'tokenizer.json');
  const json = await readJsonFile(path);
  if (!json) throw new TokenizerError(`tokenizer.json not found: ${path}`);
  const config = (await readJsonFile(join(model, 'tokenizer_config.json'))) ?? {};
  try {
    return new HfTokenizer(new Tokenizer(json, config));
  } catch (err) {
    throw new TokenizerError(`${path}: cannot build the tokenizer (${(err as Error).message})`);
  }
}
