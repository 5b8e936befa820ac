// Start one real `runahead worker` process for a test, with its log captured (and shown with a
// failing test, test-logs.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { RUNAHEAD_BIN } from './cli.ts';
import { eventually } from './eventually.ts';
import { recordLog } from './test-logs.ts';

export interface WorkerProcess {
  readonly child: ChildProcess;
  log: string;
  /** Resolves once the process has exited and everything it wrote is in `log`. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolve when the log contains `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs: number): Promise<void>;
}

export function startWorker(args: readonly string[], env: NodeJS.ProcessEnv = {}): WorkerProcess {
  const child = spawn(process.execPath, [RUNAHEAD_BIN, 'worker', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUNAHEAD_LOG_LEVEL: 'debug', ...env },
  });
  const rank = args[args.indexOf('--rank') + 1];
  const source = `worker${args.includes('--rank') && rank ? ` rank ${rank}` : ''} pid ${child.pid ?? '?'}`;
  const proc: WorkerProcess = {
    child,
    log: '',
    // 'close', not 'exit': by then every line it wrote has been read.
    exited: new Promise((resolve) => {
      child.on('close', (code, signal) => {
        resolve({ code, signal });
      });
    }),
    async waitForLog(pattern, timeoutMs) {
      try {
        await eventually(
          `${String(pattern)} in the log of ${source}`,
          () => pattern.test(proc.log),
          timeoutMs,
        );
      } catch (err) {
        throw new Error(`${(err as Error).message}\n${proc.log.slice(-2000)}`, { cause: err });
      }
    },
  };
  child.stdout.on('data', (d: Buffer) => (proc.log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (proc.log += d.toString()));
  createInterface({ input: child.stderr }).on('line', (line) => {
    recordLog(source, line);
  });
  return proc;
}
