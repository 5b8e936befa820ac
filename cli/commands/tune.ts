// `runahead tune`: the lookup table of balanced splits for one rank count, from a cost profile.
import type { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { searchBalanced } from '../../core/partition-search.ts';
import { SPLIT_MODES } from '../../core/api/v1alpha1/runahead-job.ts';
import { PartitionTableSchema, TABLE_VERSION, type PartitionTable } from '../../core/partition-table.ts';
import { parseFlags } from '../options.ts';
import { readProfile } from './calibrate.ts';

const positiveList = (flag: string) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => Number(x.trim())))
    .refine(
      (xs) => xs.length > 0 && xs.every((x) => Number.isInteger(x) && x > 0),
      `${flag} must be a comma-separated list of positive integers`,
    );

const Flags = z.object({
  ranks: z.coerce
    .number()
    .int('--ranks must be an integer')
    .min(2, '--ranks must be ≥ 2')
    .max(64, '--ranks must be ≤ 64'),
  profile: z.string(),
  out: z.string(),
  contexts: positiveList('--contexts'),
  granularity: z.coerce.number().int().min(1, '--granularity must be ≥ 1'),
  scheme: z.enum(SPLIT_MODES, { error: `--scheme must be ${SPLIT_MODES.join(' or ')}` }),
});

export const DEFAULT_TABLE_CONTEXTS =
  '512,1024,1536,2048,3072,4096,6144,8192,12288,16384,24576,32768,49152,65536';

export function registerTune(program: Command): void {
  program
    .command('tune')
    .description('search the balanced split for each context length and write the lookup table')
    .requiredOption('--ranks <n>', 'number of ranks')
    .requiredOption('--profile <file>', 'cost profile (runahead calibrate)')
    .requiredOption('--out <file>', 'write the table here (JSON)')
    .option('--contexts <list>', 'context lengths to tabulate', DEFAULT_TABLE_CONTEXTS)
    .option('--granularity <tokens>', 'boundaries are multiples of this', '1')
    .option('--scheme <scheme>', 'runahead (KV-Runahead) or tsp', 'runahead')
    .action(async (flags: Record<string, unknown>) => {
      const f = parseFlags(Flags, flags);
      const profile = await readProfile(f.profile);
      const started = performance.now();
      const entries = f.contexts
        .filter((c) => c >= f.ranks * f.granularity)
        .sort((a, b) => a - b)
        .map((contextLength) => {
          const r = searchBalanced(profile.coefficients, profile, contextLength, f.ranks, {
            scheme: f.scheme,
            granularity: f.granularity,
          });
          return {
            contextLength,
            boundaries: r.boundaries,
            predictedMs: r.predictedMs,
            evenPredictedMs: r.evenPredictedMs,
            searchMs: r.searchMs,
          };
        });
      const table: PartitionTable = PartitionTableSchema.parse({
        version: TABLE_VERSION,
        model: profile.model,
        ranks: f.ranks,
        scheme: f.scheme,
        granularity: f.granularity,
        profile: `${f.profile} (${profile.hardware})`,
        entries: entries.map((e) => ({
          contextLength: e.contextLength,
          boundaries: e.boundaries,
          predictedMs: e.predictedMs,
          evenPredictedMs: e.evenPredictedMs,
        })),
      });
      await mkdir(dirname(f.out), { recursive: true });
      await writeFile(f.out, `${JSON.stringify(table, null, 2)}\n`);
      const lines = [
        `${f.ranks}-rank table for ${profile.model} → ${f.out} (search: ${(performance.now() - started).toFixed(1)} ms for ${entries.length} lengths)`,
        '',
        '| context | balanced split | predicted ms | even predicted ms | gain | search ms |',
        '|---|---|---|---|---|---|',
        ...entries.map(
          (e) =>
            `| ${e.contextLength} | ${e.boundaries.join(',')} | ${e.predictedMs.toFixed(0)} | ${e.evenPredictedMs.toFixed(0)} | ${(e.evenPredictedMs / e.predictedMs).toFixed(2)}× | ${e.searchMs.toFixed(1)} |`,
        ),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
