// A real Kubernetes control plane for integration tests, the envtest way: etcd + kube-apiserver (and
// optionally kube-controller-manager, for garbage collection and namespace deletion) from the
// binaries in KUBEBUILDER_ASSETS (built by scripts/setup-envtest.sh), on free loopback ports, with
// a temp dir for data, certificates, kubeconfig and logs. Nothing outlives the test process: every
// server runs in its own process group, and a watchdog shell (its own session) kills those groups and
// removes the temp dir when its stdin pipe from this process closes, i.e. when this process exits
// or dies, even from SIGKILL. `stop()` does the same at once.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { get as httpGet } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { freePorts } from '../../cli/launcher/ports.ts';
import { eventually } from './eventually.ts';
import { join } from 'node:path';

export interface ControlPlaneOptions {
  /** Directory with etcd, kube-apiserver, kube-controller-manager, kubectl (default: $KUBEBUILDER_ASSETS). */
  assets?: string | undefined;
  /** Also run kube-controller-manager (garbage collection of owner-referenced objects, namespace deletion). */
  controllerManager?: boolean | undefined;
  /**
   * CRD manifests (files or directories) installed before kube-controller-manager starts: its
   * garbage collector maps owner kinds through discovery, which it refreshes only every 30 s, so a
   * CRD installed after it starts leaves dependents of that kind uncollected for a while.
   */
  crds?: readonly string[] | undefined;
  /** Controllers kube-controller-manager runs (default: garbagecollector, namespace). */
  controllers?: readonly string[] | undefined;
  /** Extra kube-apiserver flags (`--name=value`), after the defaults, so they win. */
  apiServerFlags?: readonly string[] | undefined;
  /** Time allowed for everything to be ready (default 60 s). */
  startTimeoutMs?: number | undefined;
}

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<void>;
}

const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kubectl'] as const;

// Kills the process groups whose ids arrive on stdin, then removes the temp dir, once stdin closes.
const WATCHDOG = `trap '' HUP INT TERM PIPE
pids=
while IFS= read -r line; do pids="$pids $line"; done
for p in $pids; do kill -s KILL -- "-$p" 2>/dev/null; done
rm -rf -- "$1"`;

export class ControlPlane {
  /** Temp dir with etcd data, certificates, the kubeconfig and the logs (`<name>.log`). */
  readonly dir: string;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** Bearer token of the admin user (group system:masters). */
  readonly token: string;
  /** Kubeconfig (context `envtest`, user `admin` with the token, CA = the apiserver's serving cert). */
  readonly kubeconfigPath: string;
  /** PEM of the CA that verifies the apiserver's serving certificate. */
  readonly caPem: string;
  /** Path of the kubectl binary. */
  readonly kubectlPath: string;
  /** Milliseconds `start` took. */
  readonly startupMs: number;

  readonly #servers: Proc[];
  readonly #watchdog: ChildProcess;
  readonly #onExit: () => void;
  #stopped = false;

  private constructor(init: {
    dir: string;
    server: string;
    token: string;
    kubeconfigPath: string;
    caPem: string;
    kubectlPath: string;
    startupMs: number;
    servers: Proc[];
    watchdog: ChildProcess;
    onExit: () => void;
  }) {
    this.dir = init.dir;
    this.server = init.server;
    this.token = init.token;
    this.kubeconfigPath = init.kubeconfigPath;
    this.caPem = init.caPem;
    this.kubectlPath = init.kubectlPath;
    this.startupMs = init.startupMs;
    this.#servers = init.servers;
    this.#watchdog = init.watchdog;
    this.#onExit = init.onExit;
  }

  static async start(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const assets = opts.assets ?? process.env['KUBEBUILDER_ASSETS'];
    if (!assets)
      throw new Error('KUBEBUILDER_ASSETS is not set: run scripts/setup-envtest.sh and export its last line');
    for (const b of BINARIES) {
      if (!existsSync(join(assets, b)))
        throw new Error(`${join(assets, b)} is missing: run scripts/setup-envtest.sh`);
    }
    // A port picked free can be taken before the server binds it: try again then.
    for (let attempt = 1; ; attempt++) {
      try {
        return await ControlPlane.#startOnce(assets, opts);
      } catch (err) {
        if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err;
      }
    }
  }

  static async #startOnce(assets: string, opts: ControlPlaneOptions): Promise<ControlPlane> {
    const t0 = performance.now();
    const deadline = Date.now() + (opts.startTimeoutMs ?? 60_000);
    const dir = mkdtempSync(join(tmpdir(), 'runahead-control-plane-'));
    const watchdog = spawn('/bin/sh', ['-c', WATCHDOG, 'control-plane-watchdog', dir], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    watchdog.unref();
    (watchdog.stdin as unknown as Socket).unref();
    const servers: Proc[] = [];
    const onExit = (): void => {
      for (const s of servers) killGroup(s);
      rmSync(dir, { recursive: true, force: true });
    };
    process.on('exit', onExit);

    const launch = (name: string, args: string[]): Proc => {
      const logFile = join(dir, `${name}.log`);
      const fd = openSync(logFile, 'a');
      let child: ChildProcess;
      try {
        child = spawn(join(assets, name), args, { stdio: ['ignore', fd, fd], detached: true, cwd: dir });
      } finally {
        closeSync(fd);
      }
      child.unref();
      if (child.pid !== undefined) watchdog.stdin.write(`${child.pid}\n`);
      const s: Proc = {
        name,
        child,
        logFile,
        exit: undefined,
        exited: new Promise((resolve) => {
          child.on('error', (err) => {
            s.exit = { code: null, signal: null };
            writeFileSync(logFile, `spawn failed: ${err.message}\n`, { flag: 'a' });
            resolve();
          });
          child.on('exit', (code, signal) => {
            s.exit = { code, signal };
            resolve();
          });
        }),
      };
      servers.push(s);
      return s;
    };

    try {
      const [etcdPort, apiPort, kcmPort] = await freePorts(3);
      const token = randomBytes(24).toString('hex');
      const server = `https://127.0.0.1:${apiPort}`;

      // etcd; the peer listener takes any free port (it is never dialled in a one-member cluster).
      const etcdUrl = `http://127.0.0.1:${etcdPort}`;
      const etcd = launch('etcd', [
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        '--listen-peer-urls=http://127.0.0.1:0',
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ]);
      const etcdReady = waitFor(deadline, [etcd], 'etcd /health', () => httpOk(`${etcdUrl}/health`));

      // kube-apiserver: envtest's flags (controller-runtime pkg/internal/testing/controlplane).
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      writeFileSync(join(dir, 'sa.key'), privateKey.export({ type: 'pkcs8', format: 'pem' }), {
        mode: 0o600,
      });
      writeFileSync(join(dir, 'sa.pub'), publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
      const apiserver = launch('kube-apiserver', [
        `--etcd-servers=${etcdUrl}`,
        `--cert-dir=${join(dir, 'certs')}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--allow-privileged=true',
        '--disable-admission-plugins=ServiceAccount',
        '--authorization-mode=RBAC',
        `--token-auth-file=${join(dir, 'tokens.csv')}`,
        `--service-account-issuer=${server}`,
        `--service-account-key-file=${join(dir, 'sa.pub')}`,
        `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
        '--endpoint-reconciler-type=none',
        '--profiling=false',
        ...(opts.apiServerFlags ?? []),
      ]);
      await etcdReady;
      await waitFor(deadline, [etcd, apiserver], 'kube-apiserver /readyz', () =>
        httpsOk(`${server}/readyz`, token),
      );

      const caPem = readFileSync(join(dir, 'certs', 'apiserver.crt'), 'utf8');
      const kubeconfigPath = join(dir, 'kubeconfig');
      writeFileSync(kubeconfigPath, kubeconfig(server, caPem, token), { mode: 0o600 });

      for (const crd of opts.crds ?? []) {
        await runKubectl(assets, kubeconfigPath, ['apply', '--server-side', '-f', crd]);
      }
      // kubectl wait fails at once ("status.conditions accessor error") on a CRD whose status the
      // API server has not written yet, as happens when several control planes start at once:
      // ask again until the deadline.
      if (opts.crds?.length)
        await eventually(
          'CRDs Established',
          () =>
            runKubectl(assets, kubeconfigPath, [
              'wait',
              '--for=condition=Established',
              '--timeout=10s',
              'crd',
              '--all',
            ]).then(() => true),
          60_000,
          200,
        );

      if (opts.controllerManager) {
        const kcm = launch('kube-controller-manager', [
          `--kubeconfig=${kubeconfigPath}`,
          `--controllers=${(opts.controllers ?? ['garbagecollector', 'namespace']).join(',')}`,
          '--leader-elect=false',
          '--use-service-account-credentials=false',
          '--bind-address=127.0.0.1',
          `--secure-port=${kcmPort}`,
          `--cert-dir=${join(dir, 'kcm-certs')}`,
          '--profiling=false',
        ]);
        await waitFor(deadline, [etcd, apiserver, kcm], 'kube-controller-manager /healthz', () =>
          httpsOk(`https://127.0.0.1:${kcmPort}/healthz`),
        );
      }

      return new ControlPlane({
        dir,
        server,
        token,
        kubeconfigPath,
        caPem,
        kubectlPath: join(assets, 'kubectl'),
        startupMs: Math.round(performance.now() - t0),
        servers,
        watchdog,
        onExit,
      });
    } catch (err) {
      const logs = servers.map(
        (s) => `--- ${s.name} (${describeExit(s)}), last lines of its log:\n${tail(s.logFile)}`,
      );
      await stopAll(servers, watchdog, dir);
      process.off('exit', onExit);
      throw new Error(`control plane did not start: ${(err as Error).message}\n${logs.join('\n')}`, {
        cause: err,
      });
    }
  }

  /** Runs kubectl against this control plane; resolves with stdout, rejects with stderr. */
  kubectl(args: readonly string[], input?: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = execFile(
        this.kubectlPath,
        [`--kubeconfig=${this.kubeconfigPath}`, ...args],
        { env: { ...process.env, KUBECONFIG: this.kubeconfigPath }, maxBuffer: 64 << 20 },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`kubectl ${args.join(' ')}: ${err.message}\n${stderr}`, { cause: err }));
          else resolve(stdout);
        },
      );
      // A kubectl that exits before reading stdin (most commands never read it) closes the pipe
      // first: the EPIPE says nothing its exit status does not, and unhandled it fails the test.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input ?? '');
    });
  }

  /** Log of one of the servers ('etcd', 'kube-apiserver', 'kube-controller-manager'). */
  log(name: string): string {
    try {
      return readFileSync(join(this.dir, `${name}.log`), 'utf8');
    } catch {
      return '';
    }
  }

  /** Kills the servers and removes the temp dir. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await stopAll(this.#servers, this.#watchdog, this.dir);
    process.off('exit', this.#onExit);
  }
}

function runKubectl(assets: string, kubeconfigPath: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      join(assets, 'kubectl'),
      [`--kubeconfig=${kubeconfigPath}`, ...args],
      { maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')}: ${err.message}\n${stderr}`, { cause: err }));
        else resolve(stdout);
      },
    );
  });
}

function killGroup(s: Proc): void {
  if (s.exit || s.child.pid === undefined) return;
  try {
    process.kill(-s.child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function stopAll(servers: readonly Proc[], watchdog: ChildProcess, dir: string): Promise<void> {
  for (const s of servers) {
    s.child.ref(); // keep the event loop alive until the exit is seen
    killGroup(s);
  }
  await Promise.all(servers.map((s) => s.exited));
  rmSync(dir, { recursive: true, force: true });
  watchdog.kill('SIGKILL');
}

function describeExit(s: Proc): string {
  if (!s.exit) return 'running';
  return s.exit.signal ? `killed by ${s.exit.signal}` : `exited with code ${s.exit.code}`;
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function kubeconfig(server: string, caPem: string, token: string): string {
  // JSON is YAML: kubectl and @kubernetes/client-node both read it.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'envtest',
          cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') },
        },
      ],
      users: [{ name: 'admin', user: { token } }],
      contexts: [{ name: 'envtest', context: { cluster: 'envtest', user: 'admin', namespace: 'default' } }],
      'current-context': 'envtest',
    },
    null,
    2,
  );
}

/** Polls `check` every 50 ms until it is true; fails at once if one of `servers` exits. */
async function waitFor(
  deadline: number,
  servers: readonly Proc[],
  what: string,
  check: () => Promise<boolean>,
): Promise<void> {
  for (;;) {
    const dead = servers.find((s) => s.exit);
    if (dead) throw new Error(`${dead.name} ${describeExit(dead)} while waiting for ${what}`);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => {
      resolve(false);
    });
    req.on('timeout', () => {
      req.destroy();
    });
  });
}

function httpsOk(url: string, token?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        // The serving certificate is not known yet (the server makes it); this is only a probe.
        rejectUnauthorized: false,
        agent: false,
        timeout: 1000,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on('error', () => {
      resolve(false);
    });
    req.on('timeout', () => {
      req.destroy();
    });
    req.end();
  });
}
