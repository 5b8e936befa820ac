// `runahead run`: the local launcher — the embedded default for trying KV-Runahead without a
// cluster. N worker processes on this machine, real gRPC on loopback, one prompt through the chain.
import type { Command } from 'commander';
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { engineSpec, parseFlags, promptSource } from '../options.ts';
import { withEngineFlags, withPromptFlags } from '../engine-options.ts';
import { progress } from '../progress.ts';
import { RankGroup } from '../launcher/rank-group.ts';
import { ChainFlagsSchema, runRequest, tlsFiles, toPrompt, withChainFlags } from './worker.ts';
import { rankTable, runSummary, svgTimeline, textTimeline } from '../run-report.ts';
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
      const spec = engineSpec(flags);
      const f = parseFlags(RunFlags, flags);
      const chain = parseFlags(ChainFlagsSchema, flags);
      const source = promptSource(flags, spec.seed);
      const text =
        source.kind === 'text'
          ? source.text
          : source.kind === 'file'
            ? await readFile(source.path, 'utf8')
            : null;
      const request = runRequest(chain, toPrompt(source, text));
      const log = logger('launcher');
      const bar = progress(`loading model on ${f.ranks} rank(s)`);
      const group = await RankGroup.start({
        ranks: f.ranks,
        spec,
        limits: {
          maxFrameBytes: chain.maxFrameBytes,
          maxQueuedFrames: chain.maxQueuedFrames,
          peerTimeoutMs: chain.peerTimeoutMs,
        },
        tls: tlsFiles(chain),
        startupTimeoutMs: chain.startupTimeoutMs,
        runTimeoutMs: chain.runTimeoutMs,
        ...(chain.partitionTable ? { partitionTable: chain.partitionTable } : {}),
        ...(f.pinCores ? { pinCores: f.pinCores } : {}),
        onProgress: (d, t) => {
          bar.update(d, t, '');
        },
      });
      bar.stop();
      try {
        log.info({ ranks: f.ranks, mode: chain.mode, logs: group.logDir }, 'prefill running');
        const summary = runSummary(await group.run(request));
        if (f.plot)
          await writeFile(
            f.plot,
            svgTimeline(summary, `runahead ${summary.mode}, ${f.ranks} rank(s), ${spec.model}`),
          );
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
      } finally {
        await group.close();
      }
    });
}
