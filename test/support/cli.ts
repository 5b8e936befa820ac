// Run the real `runahead` command as a child process, the way a user does. Its stderr is returned,
// and shown with a failing test too (test-logs.ts).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { recordLog } from './test-logs.ts';

export const ROOT = join(import.meta.dirname, '../..');
export const RUNAHEAD_BIN = join(ROOT, 'bin/runahead.js');

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(
  args: readonly string[],
  /** `stdin`: written to the command's standard input (else it reads nothing). */
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; stdin?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUNAHEAD_BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, RUNAHEAD_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // An empty stdin ends at once, as 'ignore' would; a command that exits without reading it
    // closes the pipe first (EPIPE), which its exit status already tells.
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`runahead ${args.join(' ')} did not finish in ${options.timeoutMs ?? 60000} ms\n${stderr}`),
      );
    }, options.timeoutMs ?? 60000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      recordLog(`runahead ${args[0] ?? ''} (exit ${code ?? 'signal'})`, stderr);
      resolve({ code, stdout, stderr });
    });
  });
}
