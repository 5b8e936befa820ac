// The text of a prompt given as text or as a file (a synthetic prompt has none), read the same way
// by every command: a file that cannot be read is a configuration error naming the flag.
import { readFile } from 'node:fs/promises';
import type { JobPrompt } from '../core/worker-config.ts';
import { UsageError } from './options.ts';

export async function readPromptText(
  source: Pick<JobPrompt, 'kind'> & Partial<{ text: string; path: string }>,
): Promise<string | null> {
  if (source.kind === 'text') return source.text ?? '';
  if (source.kind !== 'file') return null;
  try {
    return await readFile(source.path!, 'utf8');
  } catch (err) {
    throw new UsageError(`--prompt-file ${source.path}: ${(err as Error).message}`);
  }
}
