// JSON files a command takes by flag (--runs, --profile, --link): read, parsed and checked against
// their schema; refused with the flag, the file and what is wrong with it (exit 2: UsageError).
import { readFile } from 'node:fs/promises';
import type { z } from 'zod';
import { UsageError } from './options.ts';

export async function readJsonInput<S extends z.ZodType>(
  flag: string,
  path: string,
  schema: S,
  what: string,
): Promise<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new UsageError(`${flag} ${path}: ${(err as Error).message}`);
  }
  const r = schema.safeParse(json);
  if (!r.success)
    throw new UsageError(
      `${flag} ${path}: not ${what} (${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')})`,
    );
  return r.data;
}
