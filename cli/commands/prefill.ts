// `runahead prefill`: one process, whole prompt → first token (TTFT), then greedy decoding.
import type { Command } from 'commander';
import { engineSpec, parseFlags, promptSource } from '../options.ts';
import { withEngineFlags, withPromptFlags } from '../engine-options.ts';
import { progress } from '../progress.ts';
import { checkModel } from '../model-check.ts';
import { readPromptText } from '../prompt-text.ts';
import { z } from 'zod';
import { EngineClient } from '../../worker/runtime/engine-client.ts';
import { loadTokenizer } from '../../worker/tokenizer.ts';
import { promptIds } from '../../worker/prompt.ts';
import { prefillAndGenerate } from '../../worker/prefill.ts';

const PrefillFlags = z.object({
  maxNewTokens: z.coerce
    .number()
    .int('--max-new-tokens must be an integer')
    .min(0, '--max-new-tokens must be ≥ 0'),
  json: z.boolean().default(false),
});

export function registerPrefill(program: Command): void {
  const cmd = program
    .command('prefill')
    .description('prefill a prompt in one process and report the first token and TTFT');
  withPromptFlags(withEngineFlags(cmd))
    .option('--max-new-tokens <n>', 'greedy tokens to generate after the first', '0')
    .option('--json', 'print one JSON object on stdout')
    .action(async (flags: Record<string, unknown>) => {
      const spec = engineSpec(flags);
      const { maxNewTokens, json } = parseFlags(PrefillFlags, flags);
      const source = promptSource(flags, spec.seed);
      await checkModel(spec.model, '--model');
      // Read now, so that a missing file is named before the model loads.
      const text = await readPromptText(source);
      const tokenizer = await loadTokenizer(spec.model);
      const bar = progress('loading model');
      const engine = await EngineClient.start(spec, (d, t, w) => {
        bar.update(d, t, w);
      });
      bar.stop();
      try {
        const { config } = engine.info;
        const ids = await promptIds(
          text === null ? source : { kind: 'text', text },
          tokenizer,
          config.vocabSize,
          config.bosTokenId,
        );
        const result = await prefillAndGenerate(engine, ids, {
          maxNewTokens,
          eosTokenIds: config.eosTokenIds,
        });
        const report = {
          model: engine.info.description,
          ep: spec.ep,
          dtype: spec.dtype,
          threads: spec.threads,
          contextLength: result.contextLength,
          firstToken: result.firstToken,
          firstTokenText: tokenizer.decode([result.firstToken]),
          ttftMs: round(result.ttftMs),
          tokens: result.tokens,
          text: tokenizer.decode(result.tokens),
          decodeMsPerToken: result.decodeMsPerToken === null ? null : round(result.decodeMsPerToken),
          cacheFillMs: round(result.cacheFillMs),
          attention: engine.info.attention,
          graphs: engine.info.graphs.length,
          loadMs: round(engine.info.loadMs),
        };
        if (json) process.stdout.write(`${JSON.stringify(report)}\n`);
        else {
          const lines = [
            `first token   ${report.firstToken} ${JSON.stringify(report.firstTokenText)}`,
            `TTFT          ${report.ttftMs} ms  (${report.contextLength} prompt tokens, ${spec.ep} ${spec.dtype}, ${report.attention} attention, ${report.graphs} graph(s), model ${report.model})`,
          ];
          if (maxNewTokens > 0) {
            lines.push(
              `generated     ${JSON.stringify(report.text)}  (${report.tokens.length} tokens, ${report.decodeMsPerToken ?? '-'} ms/token${report.cacheFillMs > 0 ? `, after ${report.cacheFillMs} ms rebuilding the prompt's KV-cache` : ''})`,
            );
          }
          process.stdout.write(`${lines.join('\n')}\n`);
        }
      } finally {
        await engine.close();
      }
    });
}

export function round(ms: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(ms * f) / f;
}
