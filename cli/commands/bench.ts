// `runahead bench`: TTFT side by side. Medians of several runs after warm-up, one engine load per
// model, a markdown report carrying the exact command.
import type { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { engineSpec, parseFlags } from '../options.ts';
import { withEngineFlags } from '../engine-options.ts';
import { progress } from '../progress.ts';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { syntheticPromptIds } from '../../worker/prompt.ts';
import { prefillAndGenerate } from '../../worker/prefill.ts';
import { parameterCount } from '../../worker/model/config.ts';
import { summarize } from '../bench/stats.ts';
import { machineDescription } from '../bench/machine.ts';
import { renderMarkdown, type BenchRow } from '../bench/report.ts';
import { logger } from '../../core/log.ts';

const list = (flag: string) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => Number(x.trim())))
    .refine(
      (xs) => xs.length > 0 && xs.every((x) => Number.isInteger(x) && x > 0),
      `${flag} must be a comma-separated list of positive integers`,
    );

const BenchFlags = z.object({
  contexts: list('--contexts'),
  repeats: z.coerce.number().int().min(1, '--repeats must be ≥ 1'),
  warmup: z.coerce.number().int().min(0, '--warmup must be ≥ 0'),
  out: z.string().optional(),
  json: z.boolean().default(false),
});

export function registerBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description('measure TTFT for several context lengths and write a markdown report');
  withEngineFlags(cmd)
    .option('--contexts <list>', 'context lengths in tokens', '1024,2048,4096')
    .option('--repeats <n>', 'measured runs per point (the report quotes the median)', '3')
    .option('--warmup <n>', 'unmeasured runs first', '1')
    .option('--out <file>', 'write the markdown report here')
    .option('--json', 'print the rows as JSON on stdout')
    .action(async (flags: Record<string, unknown>) => {
      const spec = engineSpec(flags);
      const f = parseFlags(BenchFlags, flags);
      const log = logger('bench');
      const bar = progress('loading model');
      const engine = await EngineClient.start(spec, (d, t, w) => {
        bar.update(d, t, w);
      });
      bar.stop();
      const rows: BenchRow[] = [];
      try {
        const { config } = engine.info;
        for (const context of f.contexts) {
          const ids = syntheticPromptIds(context, config.vocabSize, spec.seed, config.bosTokenId);
          const times: number[] = [];
          for (let run = 0; run < f.warmup + f.repeats; run++) {
            const r = await prefillAndGenerate(engine, ids, { maxNewTokens: 0 });
            if (run >= f.warmup) times.push(r.ttftMs);
            log.info(
              { context, mode: 'single', run, warmup: run < f.warmup, ttftMs: Math.round(r.ttftMs) },
              'run',
            );
          }
          rows.push({ context, mode: 'single', ranks: 1, ttft: summarize(times) });
        }
      } finally {
        await engine.close();
      }
      const { config } = engine.info;
      const report = renderMarkdown({
        title: `runahead bench: ${engine.info.description}`,
        command: `runahead bench ${process.argv.slice(3).join(' ')}`,
        machine: machineDescription(),
        settings: [
          `model: ${engine.info.description}, ${(parameterCount(config) / 1e6).toFixed(1)}M parameters, ${config.numLayers} layers, hidden ${config.hiddenSize}, ${config.numHeads} heads / ${config.numKvHeads} kv heads`,
          `execution provider ${spec.ep}, ${spec.dtype}, ${spec.threads} intra-op threads per rank, model load ${(engine.info.loadMs / 1000).toFixed(1)} s`,
          `${f.warmup} warm-up run(s), then ${f.repeats} measured; TTFT = prompt released → first token chosen`,
        ],
        rows,
      });
      if (f.out) {
        await mkdir(dirname(f.out), { recursive: true });
        await writeFile(f.out, report);
      }
      process.stdout.write(f.json ? `${JSON.stringify(rows)}\n` : report);
    });
}
