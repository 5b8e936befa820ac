// `runahead`: the command-line entry point.
import { Command, CommanderError } from 'commander';
import { registerPrefill } from './commands/prefill.ts';
import { registerBench } from './commands/bench.ts';
import { registerRun } from './commands/run.ts';
import { registerWorker } from './commands/worker.ts';
import { registerCalibrate } from './commands/calibrate.ts';
import { registerTune } from './commands/tune.ts';
import { registerOperator } from './commands/operator.ts';

export function buildProgram(): Command {
  const program = new Command('runahead')
    .description('KV-Runahead: parallel prefill of one prompt across ranks, for a lower time to first token')
    .showHelpAfterError()
    .exitOverride();
  registerRun(program);
  registerPrefill(program);
  registerWorker(program);
  registerBench(program);
  registerCalibrate(program);
  registerTune(program);
  registerOperator(program);
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(
      `runahead: ${err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err)}\n`,
    );
    return 1;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
