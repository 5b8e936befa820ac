// `runahead`: the command-line entry point. A command's module is imported only when that command
// runs or its help is asked for: `runahead operator` must not load onnxruntime's native library (nor
// the worker's code), and `runahead worker` does not load the Kubernetes client.
import { Command, CommanderError } from 'commander';
import { CONFIG_ERROR_NAMES } from './config-errors.ts';

/** Adds one command, with its options and action, to the program. */
type Register = (program: Command) => void;

export interface CommandEntry {
  readonly name: string;
  /** What `runahead --help` shows without loading the command; the module's own must say the same. */
  readonly description: string;
  readonly load: () => Promise<Register>;
}

/** Every command, in the order `runahead --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'run',
    description: 'run one prompt through N local ranks (KV-Runahead, TSP or single) and report TTFT',
    load: async () => (await import('./commands/run.ts')).registerRun,
  },
  {
    name: 'serve',
    description:
      'keep N local ranks loaded and serve OpenAI-style completions, each prompt routed by its length',
    load: async () => (await import('./commands/serve.ts')).registerServe,
  },
  {
    name: 'prefill',
    description: 'prefill a prompt in one process and report the first token and TTFT',
    load: async () => (await import('./commands/prefill.ts')).registerPrefill,
  },
  {
    name: 'worker',
    description: 'run one rank of a KV-Runahead group (what a RunaheadJob pod runs)',
    load: async () => (await import('./commands/worker.ts')).registerWorker,
  },
  {
    name: 'bench',
    description: 'measure TTFT of single, TSP and KV-Runahead side by side and write a markdown report',
    load: async () => (await import('./commands/bench.ts')).registerBench,
  },
  {
    name: 'calibrate',
    description: 'fit the cost model (compute, attention, transfer) to runs from runahead bench --json-out',
    load: async () => (await import('./commands/calibrate.ts')).registerCalibrate,
  },
  {
    name: 'tune',
    description: 'search the balanced split for each context length and write the lookup table',
    load: async () => (await import('./commands/tune.ts')).registerTune,
  },
  {
    name: 'render',
    description:
      'print the Service, ConfigMap and rank pods the operator would create for a RunaheadJob manifest (offline)',
    load: async () => (await import('./commands/render.ts')).registerRender,
  },
  {
    name: 'operator',
    description:
      'run the RunaheadJob operator (reconciles jobs into rank pods; serves metrics and a dashboard)',
    load: async () => (await import('./commands/operator.ts')).registerOperator,
  },
];

/**
 * The command the arguments name: the first operand, or the one after `help`. The program itself
 * takes no options but --help, so the first operand is the command.
 */
export function requestedCommand(argv: readonly string[]): string | undefined {
  const operands = argv.filter((a) => !a.startsWith('-'));
  return operands[0] === 'help' ? operands[1] : operands[0];
}

/**
 * The program for these arguments: the requested command fully registered (options, action), the
 * others by name and description only, enough for `runahead --help` and for commander's
 * "unknown command" suggestions.
 */
export async function buildProgram(argv: readonly string[] = []): Promise<Command> {
  const program = new Command('runahead')
    .description('KV-Runahead: parallel prefill of one prompt across ranks, for a lower time to first token')
    .showHelpAfterError()
    // A command's options end where its subcommand begins (`bench --repeats 3` vs `bench link
    // --repeats 5`); without this at every level, a parent takes its options from anywhere.
    .enablePositionalOptions()
    .exitOverride();
  const wanted = requestedCommand(argv);
  for (const entry of COMMANDS) {
    if (entry.name === wanted) (await entry.load())(program);
    else program.command(entry.name).description(entry.description);
  }
  return program;
}

/**
 * 2 for a configuration error (a flag, a model path, a split: running again cannot help), 1 for
 * any other failure; an error may say which itself (the launcher's, when a rank exited 2).
 */
function exitCodeOf(err: unknown): number {
  if (err instanceof Error && 'exitCode' in err && typeof err.exitCode === 'number') return err.exitCode;
  return err instanceof Error && CONFIG_ERROR_NAMES.has(err.name) ? 2 : 1;
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    await (await buildProgram(argv)).parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(
      `runahead: ${err instanceof Error ? `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}` : String(err)}\n`,
    );
    return exitCodeOf(err);
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
