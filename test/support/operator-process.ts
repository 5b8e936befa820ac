// `runahead operator` as a real process (the way a Deployment runs it), for integration tests: its
// logs are kept (and shown with a failing test, test-logs.ts), its HTTP address is read from its
// 'operator serving' log line, and it stops on SIGTERM (graceful) or SIGKILL (a crash).
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { repoPath } from './operator.ts';
import { recordLog } from './test-logs.ts';

export interface OperatorProcessOptions {
  readonly kubeconfig: string;
  readonly leaderElection?: boolean;
  readonly identity?: string;
  readonly leaseNamespace?: string;
  readonly namespace?: string;
  readonly extraArgs?: readonly string[];
}

export class OperatorProcess {
  readonly logs: string[] = [];
  readonly exited: Promise<number | null>;
  #url = '';
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
    // 'close', not 'exit': by then every line it wrote has been read.
    this.exited = new Promise((resolve) =>
      child.on('close', (code) => {
        resolve(code);
      }),
    );
  }

  static async start(opts: OperatorProcessOptions): Promise<OperatorProcess> {
    const args = [
      repoPath('bin/runahead.js'),
      'operator',
      '--kubeconfig',
      opts.kubeconfig,
      '--metrics-address',
      '127.0.0.1:0',
      ...(opts.leaderElection
        ? ['--lease-duration', '3', '--renew-deadline', '2', '--retry-period', '0.5']
        : ['--no-leader-election']),
      ...(opts.identity ? ['--identity', opts.identity] : []),
      ...(opts.leaseNamespace ? ['--leader-election-namespace', opts.leaseNamespace] : []),
      ...(opts.namespace ? ['--namespace', opts.namespace] : []),
      ...(opts.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const op = new OperatorProcess(child);
    const source = `operator${opts.identity ? ` ${opts.identity}` : ''}`;
    const serving = new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stderr }).on('line', (line) => {
        op.logs.push(line);
        recordLog(source, line);
        if (!op.#url && line.includes('"operator serving"')) {
          const address = (JSON.parse(line) as { address: string }).address;
          op.#url = `http://${address}`;
          resolve();
        }
      });
      child.on('close', (code) => {
        reject(new Error(`operator exited with ${code}:\n${op.logs.join('\n')}`));
      });
    });
    await serving;
    return op;
  }

  /** http://host:port of its metrics, probes and dashboard. */
  get url(): string {
    return this.#url;
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${this.#url}${path}`);
    return { status: res.status, body: await res.text() };
  }

  /** The value of one metric series (`name{labels}` exactly as exposed), or undefined. */
  async metric(series: string): Promise<number | undefined> {
    const { body } = await this.get('/metrics');
    const line = body.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  }

  /** SIGTERM: the graceful shutdown a Deployment's rollout sends. */
  async stop(): Promise<number | null> {
    this.#child.kill('SIGTERM');
    return this.exited;
  }

  /** SIGKILL: a crash (no Lease release, nothing flushed). */
  async kill(): Promise<void> {
    this.#child.kill('SIGKILL');
    await this.exited;
  }
}
