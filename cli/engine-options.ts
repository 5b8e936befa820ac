import type { Command } from 'commander';
import { ENGINE_FLAG_HELP } from './options.ts';

/** Add --model, --ep, --dtype, --threads, --seed, --device to a command. */
export function withEngineFlags(cmd: Command): Command {
  for (const [key, [flag, help, def]] of Object.entries(ENGINE_FLAG_HELP) as [string, readonly string[]][]) {
    if (key === 'model') cmd.requiredOption(flag!, help);
    else cmd.option(flag!, help, def);
  }
  return cmd;
}

export function withPromptFlags(cmd: Command): Command {
  return cmd
    .option('--prompt <text>', 'the prompt text')
    .option('--prompt-file <file>', 'read the prompt from a file')
    .option('--prompt-tokens <n>', 'a synthetic prompt of n tokens (benchmarks)');
}
