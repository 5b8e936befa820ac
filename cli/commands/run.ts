// `runahead run`: the local launcher — the embedded default for trying KV-Runahead without a
// cluster. N worker processes on this machine, real gRPC on loopback, one prompt through the chain.
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseFlags, UsageError } from '../options.ts';
import { withEngineFlags, withPromptFlags } from '../engine-options.ts';
import { progress } from '../progress.ts';
import { FAILED_GRACE_MS, RankGroup } from '../launcher/rank-group.ts';
import { groupOptionsOf, runRequest, toPrompt, withChainFlags } from '../worker-flags.ts';
import { engineSpecOf } from '../engine-spec.ts';
import { checkModel } from '../model-check.ts';
import { readPromptText } from '../prompt-text.ts';
import { readPartitionTable } from './worker.ts';
import { partitionProblem } from '../../core/partition-choice.ts';
import { chainConfigFromFlags, engineConfigFromFlags, jobPromptFromFlags } from '../../core/worker-config.ts';
import { loadTokenizer } from '../../worker/tokenizer.ts';
import { rankTable, runSummary, svgTimeline, textTimeline, timelineTitle } from '../run-report.ts';
import { logger } from '../../core/log.ts';

const RunFlags = z.object({
  ranks: z.coerce
    .number({ error: '--ranks must be a number' })
    .int('--ranks must be an integer')
    .min(1, '--ranks must be ≥ 1')
    .max(64, '--ranks must be ≤ 64'),
  json: z.boolean().default(false),
  plot: z.string().optional(),
  pinCores: z.coerce.number().int().min(1, '--pin-cores must be ≥ 1').optional(),
});

export function registerRun(program: Command): void {
  const cmd = program
    .command('run')
    .description('run one prompt through N local ranks (KV-Runahead, TSP or single) and report TTFT');
  withChainFlags(withPromptFlags(withEngineFlags(cmd)))
    .option('--ranks <n>', 'number of ranks (worker processes)', '2')
    .option('--json', 'print one JSON object on stdout')
    .option('--plot <file.svg>', 'draw the chain timeline into an SVG file')
    .option('--pin-cores <k>', 'pin rank i to CPU cores [i·k, (i+1)·k) (Linux taskset)')
    .action(async (flags: Record<string, unknown>) => {
      // Everything that can be checked before N ranks load the model is checked here, in seconds.
      const f = parseFlags(RunFlags, flags);
      const engine = engineConfigFromFlags(flags);
      const spec = engineSpecOf(engine);
      const chain = chainConfigFromFlags(flags);
      const source = jobPromptFromFlags(flags);
      if (!source)
        throw new UsageError('give one of --prompt <text>, --prompt-file <file>, --prompt-tokens <n>');
      await checkModel(engine.model, '--model');
      const text = await readPromptText(source);
      const table = chain.partitionTable ? await readPartitionTable(chain.partitionTable) : null;
      const tokens =
        source.kind === 'tokens'
          ? source.count
          : (await loadTokenizer(engine.model)).encode(text ?? '').length;
      const problem = partitionProblem(chain.partition, chain.mode === 'single' ? 1 : f.ranks, table, tokens);
      if (problem) throw new UsageError(problem);
      const request = runRequest(chain, toPrompt(source, text));
      const log = logger('launcher');
      const bar = progress(`loading model on ${f.ranks} rank(s)`);
      let group: RankGroup;
      try {
        group = await RankGroup.start({
          ranks: f.ranks,
          spec,
          ...groupOptionsOf(chain),
          ...(f.pinCores ? { pinCores: f.pinCores } : {}),
          onProgress: (d, t) => {
            bar.update(d, t, '');
          },
        });
      } finally {
        bar.stop();
      }
      try {
        log.info({ ranks: f.ranks, mode: chain.mode, logs: group.logDir }, 'prefill running');
        const summary = runSummary(await group.run(request));
        if (f.plot) await writeFile(f.plot, svgTimeline(summary, timelineTitle(summary, spec.model)));
        if (f.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        else {
          process.stdout.write(
            [
              `first token   ${summary.firstToken} ${JSON.stringify(summary.firstTokenText)}`,
              `TTFT          ${summary.ttftMs.toFixed(1)} ms  (${summary.mode}, ${f.ranks} rank(s), ${summary.contextLength} prompt tokens, split ${summary.boundaries.join(',')})`,
              ...(summary.tokens.length > 1 ? [`generated     ${JSON.stringify(summary.text)}`] : []),
              '',
              rankTable(summary),
              '',
              textTimeline(summary),
              ...(f.plot ? ['', `timeline drawn in ${f.plot}`] : []),
              '',
            ].join('\n'),
          );
        }
      } catch (err) {
        // A rank died or the run failed: the others get seconds, not the normal grace, to stop.
        await group.close(FAILED_GRACE_MS);
        throw err;
      }
      await group.close();
    });
}
