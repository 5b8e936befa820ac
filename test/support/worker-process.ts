// Start one real `runahead worker` process for a test, with its log captured.
import { spawn, type ChildProcess } from 'node:child_process';
import { RUNAHEAD_BIN } from './cli.ts';

export interface WorkerProcess {
  readonly child: ChildProcess;
  log: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolve when the log contains `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs: number): Promise<void>;
}

export function startWorker(args: readonly string[], env: NodeJS.ProcessEnv = {}): WorkerProcess {
  const child = spawn(process.execPath, [RUNAHEAD_BIN, 'worker', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUNAHEAD_LOG_LEVEL: 'debug', ...env },
  });
  const proc: WorkerProcess = {
    child,
    log: '',
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        resolve({ code, signal });
      });
    }),
    async waitForLog(pattern, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(proc.log)) {
        if (Date.now() > deadline)
          throw new Error(
            `no ${String(pattern)} in the worker log after ${timeoutMs} ms:\n${proc.log.slice(-2000)}`,
          );
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  child.stdout.on('data', (d: Buffer) => (proc.log += d.toString()));
  child.stderr.on('data', (d: Buffer) => (proc.log += d.toString()));
  return proc;
}
