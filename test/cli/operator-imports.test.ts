// The operator's process loads nothing of onnxruntime (its image need not carry the native library,
// and its start-up and memory do not pay for it), nor any of the worker's code. Two witnesses: a
// module resolve hook records every ES module and CommonJS file the process loads, and glibc's
// LD_DEBUG=files records every shared object it maps. `runahead worker --help` is the control that
// shows both witnesses do see onnxruntime when it is loaded.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { ROOT, RUNAHEAD_BIN } from '../support/cli.ts';
import { COMMANDS } from '../../cli/main.ts';

// Preloaded with --import: records the URL of every module resolved (Node's synchronous hooks see
// require() as well as import) and writes them when the process exits.
const RECORD_MODULES = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const urls = new Set();
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); urls.add(r.url); return r; } });
process.on('exit', () => writeFileSync(process.env.RECORD_MODULES_TO, [...urls].join('\\n')));
`;

interface Loaded {
  /** URLs of the modules the process resolved. */
  readonly modules: readonly string[];
  /** glibc's LD_DEBUG=files log: every shared object the process mapped. */
  readonly sharedObjects: string;
  readonly stdout: string;
  readonly stderr: string;
}

let dir: string;
let run = 0;

/** Runs `runahead <args>`; `until`: a text on stderr after which the process gets SIGTERM. */
function loadedBy(args: readonly string[], until?: string): Promise<Loaded> {
  const tag = `run-${run++}`;
  const moduleLog = join(dir, `${tag}.modules`);
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [`--import=data:text/javascript,${encodeURIComponent(RECORD_MODULES)}`, RUNAHEAD_BIN, ...args],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          RUNAHEAD_LOG_LEVEL: 'info',
          RECORD_MODULES_TO: moduleLog,
          LD_DEBUG: 'files',
          LD_DEBUG_OUTPUT: join(dir, `${tag}.ld`),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    let signalled = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      // Once: the operator's handler is process.once, a second SIGTERM would kill it unrecorded.
      if (until !== undefined && !signalled && stderr.includes(until)) signalled = child.kill('SIGTERM');
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`runahead ${args.join(' ')} did not finish in 30 s\n${stderr}`));
    }, 30_000);
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(timer);
      void (async () => {
        const ldFiles = (await readdir(dir)).filter((f) => f.startsWith(`${tag}.ld`));
        const sharedObjects = (await Promise.all(ldFiles.map((f) => readFile(join(dir, f), 'utf8')))).join(
          '',
        );
        const modules = (await readFile(moduleLog, 'utf8')).split('\n');
        return { modules, sharedObjects, stdout, stderr };
      })().then(resolve, reject);
    });
  });
}

const onnxruntimeModules = (l: Loaded) => l.modules.filter((u) => /onnxruntime/.test(u));
const workerModules = (l: Loaded) =>
  l.modules.filter((u) => u.startsWith(new URL('worker/', `file://${ROOT}/`).href));
const onnxruntimeLibraries = (l: Loaded) =>
  [...l.sharedObjects.matchAll(/file=(\S*onnxruntime\S*)/g)].map((m) => m[1]);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'operator-imports-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('runahead operator loads nothing of onnxruntime or the worker', () => {
  // The control is a command that loads onnxruntime when it is imported (the launcher takes its
  // allocator settings from worker/runtime/ort.ts): it shows that both witnesses would see it.
  it('control: runahead run --help does load onnxruntime, and both witnesses see it', async () => {
    const l = await loadedBy(['run', '--help']);
    expect(l.stdout).toContain('Usage: runahead run');
    expect(onnxruntimeModules(l)).toContainEqual(expect.stringContaining('node_modules/onnxruntime-node/'));
    expect(onnxruntimeLibraries(l)).toContainEqual(expect.stringContaining('libonnxruntime'));
  }, 40_000);

  it('runahead operator --help (the command, its options and everything they import)', async () => {
    const l = await loadedBy(['operator', '--help']);
    expect(l.stdout).toContain('Usage: runahead operator');
    expect(l.modules).toContainEqual(expect.stringContaining('/operator/run-operator.ts'));
    expect(onnxruntimeModules(l)).toEqual([]);
    expect(workerModules(l)).toEqual([]);
    expect(onnxruntimeLibraries(l)).toEqual([]);
  }, 40_000);

  it("runahead render (the operator's planner, offline) loads neither", async () => {
    const l = await loadedBy(['render', '-f', 'examples/synthetic-2ranks.yaml']);
    expect(l.stdout).toContain('kind: Pod');
    expect(l.modules).toContainEqual(expect.stringContaining('/operator/desired-children.ts'));
    expect(onnxruntimeModules(l)).toEqual([]);
    expect(workerModules(l)).toEqual([]);
    expect(onnxruntimeLibraries(l)).toEqual([]);
  }, 40_000);

  it('a running operator (serving, its informers listing from an API server that is not there)', async () => {
    const kubeconfig = join(dir, 'kubeconfig.yaml');
    await writeFile(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        "clusters: [{name: none, cluster: {server: 'https://127.0.0.1:1'}}]",
        'users: [{name: none, user: {token: none}}]',
        'contexts: [{name: none, context: {cluster: none, user: none}}]',
        'current-context: none',
      ].join('\n'),
    );
    const l = await loadedBy(
      ['operator', '--kubeconfig', kubeconfig, '--no-leader-election', '--metrics-address', '127.0.0.1:0'],
      // The first failed list: the controller is running and its SIGTERM handler is installed.
      'failed; restarting',
    );
    expect(l.stderr).toContain('operator serving');
    expect(l.modules).toContainEqual(expect.stringContaining('node_modules/@kubernetes/client-node/'));
    expect(onnxruntimeModules(l)).toEqual([]);
    expect(workerModules(l)).toEqual([]);
    expect(onnxruntimeLibraries(l)).toEqual([]);
  }, 40_000);
});

describe('runahead --help without loading the commands', () => {
  it('lists every command with the description its module gives it', async () => {
    const l = await loadedBy(['--help']);
    for (const entry of COMMANDS) {
      const real = new Command('runahead');
      (await entry.load())(real);
      const command = real.commands.find((c) => c.name() === entry.name);
      expect(command?.description()).toBe(entry.description);
      // commander wraps descriptions at 80 columns: compare word by word.
      expect(l.stdout.replace(/\s+/g, ' ')).toContain(`${entry.name} ${entry.description}`);
    }
    expect(onnxruntimeModules(l)).toEqual([]);
  }, 60_000);
});
