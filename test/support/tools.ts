// The command-line tools the chart and image tests run: helm and dockerfile-check, built by
// scripts/setup-tools.sh (`make tools`). Found through $HELM_BIN / $DOCKERFILE_CHECK_BIN, else in
// $RUNAHEAD_TOOLS (the script's last line of output).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export type Tool = 'helm' | 'dockerfile-check';

const OVERRIDE: Record<Tool, string> = { helm: 'HELM_BIN', 'dockerfile-check': 'DOCKERFILE_CHECK_BIN' };

/** Path of a tool; throws, saying how to get it, when it is not there. */
export function toolPath(tool: Tool): string {
  const explicit = process.env[OVERRIDE[tool]];
  if (explicit) {
    if (!existsSync(explicit)) throw new Error(`${OVERRIDE[tool]}=${explicit} does not exist`);
    return explicit;
  }
  const dir = process.env['RUNAHEAD_TOOLS'];
  if (!dir)
    throw new Error(
      `${tool} not found: set RUNAHEAD_TOOLS="$(scripts/setup-tools.sh | tail -n1)" (or ${OVERRIDE[tool]}), or run make test`,
    );
  const path = join(dir, tool);
  if (!existsSync(path)) throw new Error(`${path} is missing: run scripts/setup-tools.sh`);
  return path;
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to its end; never rejects for a non-zero exit (tests look at the code). */
export function run(
  file: string,
  args: readonly string[],
  opts: { input?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      { env: { ...process.env, ...opts.env }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(new Error(`${file}: ${err.message}`, { cause: err }));
        else resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
      },
    );
    // A command that exits before reading stdin (helm lint never reads it) closes the pipe first:
    // the EPIPE says nothing its exit status does not, and unhandled it fails the test (seen in CI
    // on a busy machine).
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}

// Helm keeps caches and repository settings under $HOME: a temp home per test process keeps runs
// independent of the machine and of each other.
let helmHome: string | undefined;
function helmEnv(): NodeJS.ProcessEnv {
  helmHome ??= mkdtempSync(join(tmpdir(), 'runahead-helm-'));
  return {
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_DATA_HOME: join(helmHome, 'data'),
  };
}

export function helm(args: readonly string[], input?: string): Promise<RunResult> {
  return run(toolPath('helm'), args, { env: helmEnv(), ...(input === undefined ? {} : { input }) });
}
