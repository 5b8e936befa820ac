// The committed reference checkpoints and transformers' outputs for them (make_reference.py).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = join(import.meta.dirname, '../fixtures');
export const REFERENCE_MODELS = ['llama3-tiny', 'llama2-tiny'] as const;
export type ReferenceModel = (typeof REFERENCE_MODELS)[number];

export interface ReferencePrompt {
  readonly text: string;
  readonly ids: number[];
  readonly lastLogits: number[];
  readonly greedy: number[];
  readonly greedyText: string[];
  readonly minTop2Margin: number;
}

export interface ReferenceModelOutputs {
  readonly tokenization: { text: string; ids: number[]; decoded: string }[];
  readonly prompts: ReferencePrompt[];
}

interface ReferenceFile {
  readonly generator: Record<string, string>;
  readonly models: Record<ReferenceModel, ReferenceModelOutputs>;
}

export const reference = JSON.parse(readFileSync(join(FIXTURES, 'reference.json'), 'utf8')) as ReferenceFile;

export function modelDir(name: ReferenceModel): string {
  return join(FIXTURES, 'models', name);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}
