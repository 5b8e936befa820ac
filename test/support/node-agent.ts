// A test node agent: the kubelet (and the scheduler's one decision) for a control plane without
// nodes, so that end-to-end tests run the whole product — operator, pods, real workers — on this
// machine. It registers a Node with `nvidia.com/gpu` capacity, binds unscheduled pods that fit to it
// (the binding subresource, as kube-scheduler does) and runs the pods bound to it: each container
// becomes a local process started with the pod's environment, and the pod's status (IP, phase,
// Ready from the real readiness probe, the container's exit code and termination message) goes
// back through the API as a kubelet writes it. A pod being deleted gets SIGTERM, then SIGKILL after
// its grace period, and its deletion is then finished with grace period 0, as the kubelet does.
//
// Volumes and the environment are set up as the kubelet does (pod-setup.ts), probes run as it runs
// them (pod-probe.ts), and a container's own view (mount and network namespaces, cluster DNS) is
// translated for the local process by pod-sandbox.ts: volumes are materialized in a per-pod directory and the paths under
// their mountPaths rewritten, every pod gets its own loopback IP (127.x.y.z), `0.0.0.0:<port>`
// becomes that IP, and pod DNS names become the pods' IPs. Nothing else about the product changes.
// A Service is reached as kube-proxy makes it reachable: `serviceAddress()` gives the Service port an
// address on this node that forwards each connection to a ready pod the Service selects.
//
// Not emulated: images (every container runs `image` below: this checkout's `runahead`), users and
// security contexts, resource limits (requests are only counted for scheduling), liveness and
// startup probes, restart policies other than Never, init and sidecar containers, and volumes other
// than configMap, secret, emptyDir and hostPath (a pod with one waits with a FailedMount event).
//
// Nothing outlives the test process: every container runs in its own process group, and a watchdog
// shell (its own session) kills those groups when its stdin pipe from this process closes, i.e. when
// this process exits or dies, even from SIGKILL. `stop()` does the same at once.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { arch, constants, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Container,
  type V1Pod,
  type V1PodCondition,
  type V1Probe,
} from '@kubernetes/client-node';
import { ROOT, RUNAHEAD_BIN } from './cli.ts';
import { LoopbackRange } from './loopback-range.ts';
import { probeOnce } from './pod-probe.ts';
import { awaitsDefaultScheduler } from './scheduler.ts';
import { ServiceProxy } from './service-proxy.ts';
import { recordLog } from './test-logs.ts';
import {
  TERMINATION_MESSAGE_MAX_BYTES,
  expandVars,
  insufficient,
  localPath,
  localize,
  logTail,
  podRequests,
  quantity,
  type PodNetwork,
} from './pod-sandbox.ts';
import {
  ContainerWaiting,
  containerEnv,
  setUpVolumes,
  singleContainer,
  type KeyKind,
  type PodContext,
} from './pod-setup.ts';

/** What every container runs: an image's ENTRYPOINT, ENV and WORKDIR, on this machine. */
export interface ContainerImage {
  readonly entrypoint: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
}

/** images/worker.Dockerfile, built from this checkout: `node bin/runahead.js` with the image's ENV. */
export const WORKER_IMAGE: ContainerImage = {
  entrypoint: [process.execPath, RUNAHEAD_BIN],
  env: {
    PATH: `${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
    NODE_ENV: 'production',
    MALLOC_MMAP_THRESHOLD_: '4194304',
    MALLOC_TRIM_THRESHOLD_: '17179869184',
    MALLOC_TOP_PAD_: '1073741824',
    HOME: '/tmp',
  },
  workingDir: ROOT,
};

export interface NodeAgentOptions {
  readonly kubeconfigPath: string;
  /** Default `e2e-node`. */
  readonly nodeName?: string;
  /** Capacity (= allocatable). Default: 16 CPUs, 64Gi, 110 pods, 8 nvidia.com/gpu. */
  readonly capacity?: Readonly<Record<string, string>>;
  /** Extra node labels (kubernetes.io/hostname, os and arch are always set). */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Directories of the node that are directories of this machine elsewhere (kind's extraMounts): a
   * hostPath volume at or under a key is read from the same place under its value.
   */
  readonly hostPaths?: Readonly<Record<string, string>>;
  /** Cluster DNS domain of pod names (default cluster.local). */
  readonly clusterDomain?: string;
  /** What every container runs (default WORKER_IMAGE). */
  readonly image?: ContainerImage;
  /** Full resync period, on top of the watch (default 500 ms). */
  readonly resyncMs?: number;
}

/** A pod the agent runs or ran, for tests. */
export interface AgentPod {
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
  readonly ip: string;
  /** The container's process id, once started. */
  readonly pid: number | undefined;
  /** The process is alive (also while it is being stopped). */
  readonly running: boolean;
  /** Its readiness probe passes (the agent's own view, before the API server hears of it). */
  readonly ready: boolean;
  readonly exitCode: number | undefined;
}

type State = 'preparing' | 'waiting' | 'running' | 'exited';

interface Exit {
  readonly exitCode: number;
  readonly reason: string;
  readonly message: string;
  readonly finishedAt: string;
}

interface PodRuntime {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly dir: string;
  readonly acceptedAt: string;
  pod: V1Pod;
  state: State;
  /** Why the container is not running yet (ContainerCreating, CreateContainerConfigError). */
  waiting: { reason: string; message: string } | null;
  /** Volumes are set up: the pod has its IP. */
  sandbox: boolean;
  retryAt: number;
  starting: Promise<void> | null;
  deleting: boolean;
  terminating: Promise<void> | null;
  child: ChildProcess | null;
  startedAt: string | null;
  exit: Exit | null;
  readonly exited: Promise<void>;
  markExited: () => void;
  ready: boolean;
  readyChangedAt: string;
  probeTimer: NodeJS.Timeout | null;
  statusWrites: Promise<void>;
  lastStatus: string;
  logPath: string;
  terminationPath: string;
  /** The log, kept when the pod's directory goes. */
  finalLog: string | null;
}

/** The node's own address: the containers' processes run on this machine. */
const HOST_IP = '127.0.0.1';
const DEFAULT_CAPACITY = { cpu: '16', memory: '64Gi', pods: '110', 'nvidia.com/gpu': '8' };
const TERMINAL = new Set(['Succeeded', 'Failed']);
/** The kubelet's retry of a container that could not start (volumes, env). */
const RETRY_MS = 1000;

/** RFC 3339 without fractions, as the API server writes times. */
const now = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isCode = (err: unknown, code: number) => err instanceof ApiException && err.code === code;
const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

// Kills the process groups whose ids arrive on stdin, then removes the agent's directory and its
// address lock, once stdin closes.
const WATCHDOG = `trap '' HUP INT TERM PIPE
pids=
while IFS= read -r line; do pids="$pids $line"; done
for p in $pids; do kill -s KILL -- "-$p" 2>/dev/null; done
rm -rf -- "$1"; rm -f -- "$2"`;

export class NodeAgent {
  readonly nodeName: string;
  /** Directory of the agent: one subdirectory per pod (volumes, log, termination message). */
  readonly dir: string;
  /** Errors of the agent's own work (API calls, processes), for tests to show when they fail. */
  readonly errors: string[] = [];

  readonly #core: CoreV1Api;
  readonly #kubeConfig: KubeConfig;
  readonly #options: NodeAgentOptions;
  readonly #image: ContainerImage;
  readonly #clusterDomain: string;
  readonly #allocatable: Map<string, number>;
  readonly #runtimes = new Map<string, PodRuntime>();
  /** uids of pods this agent has finished with (their deletion may lag in a list). */
  readonly #done = new Set<string>();
  readonly #history: PodRuntime[] = [];
  readonly #watchdog: ChildProcess;
  readonly #onProcessExit: () => void;
  readonly #addresses: LoopbackRange;
  /** Pod DNS name (`<hostname>.<subdomain>.<namespace>`) → its IP, stable across the pod's incarnations. */
  readonly #reserved = new Map<string, string>();
  /** `<namespace>/<name>:<port>` → the proxy serving that Service port on this node. */
  readonly #services = new Map<string, Promise<ServiceProxy>>();
  readonly #eventsSent = new Set<string>();
  readonly #unschedulable = new Map<string, string>();
  #watch: AbortController | null = null;
  #resync: NodeJS.Timeout | null = null;
  #dirty = false;
  #syncing: Promise<void> | null = null;
  #stopped = false;

  private constructor(options: NodeAgentOptions, addresses: LoopbackRange) {
    this.#options = options;
    this.nodeName = options.nodeName ?? 'e2e-node';
    this.#image = options.image ?? WORKER_IMAGE;
    this.#clusterDomain = options.clusterDomain ?? 'cluster.local';
    this.#allocatable = new Map(
      Object.entries(options.capacity ?? DEFAULT_CAPACITY).map(([k, v]) => [k, quantity(v)]),
    );
    this.#kubeConfig = new KubeConfig();
    this.#kubeConfig.loadFromFile(options.kubeconfigPath);
    this.#core = this.#kubeConfig.makeApiClient(CoreV1Api);
    this.#addresses = addresses;
    this.dir = mkdtempSync(join(tmpdir(), 'runahead-node-agent-'));
    this.#watchdog = spawn('/bin/sh', ['-c', WATCHDOG, 'node-agent-watchdog', this.dir, addresses.lockPath], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
    });
    this.#watchdog.unref();
    (this.#watchdog.stdin as unknown as Socket).unref();
    this.#onProcessExit = () => {
      for (const rt of this.#runtimes.values()) killGroup(rt.child, 'SIGKILL');
      rmSync(this.dir, { recursive: true, force: true });
      addresses.release();
    };
    process.on('exit', this.#onProcessExit);
  }

  /** Registers the Node and starts running the pods bound to it. */
  static async start(options: NodeAgentOptions): Promise<NodeAgent> {
    const agent = new NodeAgent(options, LoopbackRange.claim());
    try {
      await agent.#registerNode();
      await agent.#startWatch();
      agent.#resync = setInterval(() => {
        agent.#kick();
      }, options.resyncMs ?? 500);
      agent.#kick();
      return agent;
    } catch (err) {
      await agent.stop();
      throw err;
    }
  }

  /** Kills every container at once, removes the pods' directories and the Node. Idempotent. */
  async stop(options: { deleteNode?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#resync) clearInterval(this.#resync);
    this.#watch?.abort();
    await this.#syncing;
    for (const rt of this.#runtimes.values()) {
      this.#stopProbe(rt);
      killGroup(rt.child, 'SIGKILL');
    }
    await Promise.all([...this.#runtimes.values()].flatMap((rt) => (rt.child ? [rt.exited] : [])));
    await Promise.all([...this.#runtimes.values()].map((rt) => rt.statusWrites));
    await Promise.all(
      [...this.#services.values()].map((p) => p.then((proxy) => proxy.close()).catch(() => undefined)),
    );
    if (options.deleteNode ?? true)
      await this.#core.deleteNode({ name: this.nodeName }).catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
    this.#addresses.release();
    this.#watchdog.kill('SIGKILL');
    process.off('exit', this.#onProcessExit);
  }

  /** Every pod the agent runs now, then those it ran (newest last). */
  pods(): AgentPod[] {
    return [...this.#history, ...this.#runtimes.values()].map((rt) => ({
      namespace: rt.namespace,
      name: rt.name,
      uid: rt.uid,
      ip: rt.ip,
      pid: rt.child?.pid,
      running: rt.child !== null && rt.child.exitCode === null && rt.child.signalCode === null,
      ready: rt.ready,
      exitCode: rt.exit?.exitCode,
    }));
  }

  /** Processes of containers still alive (running, or being stopped). */
  liveProcesses(): number[] {
    return this.pods()
      .filter((p) => p.running && p.pid !== undefined)
      .map((p) => p.pid!);
  }

  /** Sends `signal` to the process of the pod's container (a crash, an OOM kill); false if none runs. */
  signal(namespace: string, name: string, signal: NodeJS.Signals): boolean {
    const rt = [...this.#runtimes.values()].find(
      (r) => r.namespace === namespace && r.name === name && r.state === 'running',
    );
    if (!rt?.child) return false;
    killGroup(rt.child, signal);
    return true;
  }

  /**
   * CPU seconds the container's process has used so far (Linux /proc; 0 when it is not running):
   * how a test tells a rank that computes from one that waits.
   */
  cpuSeconds(namespace: string, name: string): number {
    const rt = [...this.#runtimes.values()].find(
      (r) => r.namespace === namespace && r.name === name && r.state === 'running',
    );
    const pid = rt?.child?.pid;
    if (pid === undefined) return 0;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th,
    // in clock ticks (USER_HZ, 100 on Linux).
    const stat = readFileSafe(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
  }

  /** The container log (stdout and stderr) of the latest pod of that name. */
  log(namespace: string, name: string): string {
    const rt = [...this.#runtimes.values(), ...this.#history.slice().reverse()].find(
      (r) => r.namespace === namespace && r.name === name,
    );
    return rt ? containerLog(rt) : '';
  }

  /** The container log of the pod with that uid. */
  logOf(uid: string): string {
    const rt = this.#runtimes.get(uid) ?? this.#history.find((r) => r.uid === uid);
    return rt ? containerLog(rt) : '';
  }

  /** What the agent knows, for a failing test's message: pods, their ends, its own errors. */
  describe(): string {
    const pods = this.pods().map(
      (p) =>
        `${p.namespace}/${p.name} uid=${p.uid.slice(0, 8)} ip=${p.ip} pid=${p.pid ?? '-'} ${p.running ? 'running' : `exit=${p.exitCode ?? '-'}`}`,
    );
    return [`node ${this.nodeName}:`, ...pods, ...this.errors.map((e) => `error: ${e}`)].join('\n');
  }

  // ---------------------------------------------------------------------------------------- node

  async #registerNode(): Promise<void> {
    const capacity = { ...(this.#options.capacity ?? DEFAULT_CAPACITY) };
    const labels = {
      'kubernetes.io/hostname': this.nodeName,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': arch() === 'x64' ? 'amd64' : arch(),
      ...this.#options.labels,
    };
    try {
      await this.#core.createNode({ body: { metadata: { name: this.nodeName, labels } } });
    } catch (err) {
      if (!isCode(err, 409)) throw err;
      await this.#core.patchNode(
        { name: this.nodeName, body: { metadata: { labels } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    }
    const t = now();
    const condition = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: t,
      lastTransitionTime: t,
    });
    await this.#core.patchNodeStatus(
      {
        name: this.nodeName,
        body: {
          status: {
            capacity,
            allocatable: capacity,
            conditions: [
              condition('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'test node agent'),
              condition('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'test node agent'),
              condition('PIDPressure', 'False', 'KubeletHasSufficientPID', 'test node agent'),
              condition('Ready', 'True', 'KubeletReady', 'test node agent is posting ready status'),
            ],
            addresses: [
              { type: 'InternalIP', address: HOST_IP },
              { type: 'Hostname', address: this.nodeName },
            ],
            nodeInfo: {
              machineID: 'e2e',
              systemUUID: 'e2e',
              bootID: 'e2e',
              kernelVersion: '',
              osImage: 'test node agent',
              containerRuntimeVersion: 'local-process://1',
              kubeletVersion: 'v1.34.0-e2e',
              kubeProxyVersion: '',
              operatingSystem: 'linux',
              architecture: labels['kubernetes.io/arch'],
            },
          },
        },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  // ---------------------------------------------------------------------------------------- sync

  async #startWatch(): Promise<void> {
    if (this.#stopped) return;
    const watch = new Watch(this.#kubeConfig);
    this.#watch = await watch.watch(
      '/api/v1/pods',
      {},
      () => {
        this.#kick();
      },
      () => {
        // The watch ended (timeout, API server restart): the resync covers the gap.
        if (!this.#stopped)
          setTimeout(() => {
            this.#startWatch().catch((err: unknown) => {
              this.#error('watch', err);
            });
          }, 500);
      },
    );
  }

  /** Syncs soon; syncs never overlap, and a kick during one runs one more after it. */
  #kick(): void {
    if (this.#stopped) return;
    this.#dirty = true;
    this.#syncing ??= (async () => {
      while (this.#dirty && !this.#stopped) {
        this.#dirty = false;
        try {
          await this.#sync();
        } catch (err) {
          this.#error('sync', err);
          await sleep(200);
        }
      }
      this.#syncing = null;
    })();
  }

  async #sync(): Promise<void> {
    const list = await this.#core.listPodForAllNamespaces({});
    const seen = new Set<string>();
    const unscheduled: V1Pod[] = [];
    const used = new Map<string, number>();
    for (const pod of list.items) {
      const uid = pod.metadata?.uid ?? '';
      if (pod.spec?.nodeName === this.nodeName) {
        seen.add(uid);
        if (!TERMINAL.has(pod.status?.phase ?? ''))
          for (const [k, v] of podRequests(pod)) used.set(k, (used.get(k) ?? 0) + v);
        if (!this.#done.has(uid)) this.#ensure(pod);
      } else if (awaitsDefaultScheduler(pod)) {
        unscheduled.push(pod);
      }
    }
    for (const rt of this.#runtimes.values()) if (!seen.has(rt.uid)) this.#vanished(rt);
    const created = (p: V1Pod) => new Date(p.metadata?.creationTimestamp ?? 0).getTime();
    unscheduled.sort((a, b) => created(a) - created(b));
    for (const pod of unscheduled) await this.#schedule(pod, used);
  }

  /** kube-scheduler's decision for one node: node selector and resource fit, then the binding. */
  async #schedule(pod: V1Pod, used: Map<string, number>): Promise<void> {
    const namespace = pod.metadata!.namespace!;
    const name = pod.metadata!.name!;
    const uid = pod.metadata!.uid!;
    const labels: Record<string, string> = {
      'kubernetes.io/hostname': this.nodeName,
      'kubernetes.io/os': 'linux',
      ...this.#options.labels,
    };
    const selector = Object.entries(pod.spec?.nodeSelector ?? {}).find(([k, v]) => labels[k] !== v);
    const requests = podRequests(pod);
    const short = selector ? null : insufficient(requests, this.#allocatable, used);
    if (selector || short) {
      const message = selector
        ? `0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.`
        : `0/1 nodes are available: 1 Insufficient ${short}.`;
      if (this.#unschedulable.get(uid) === message) return;
      this.#unschedulable.set(uid, message);
      await this.#patchStatus(namespace, name, {
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message,
            lastTransitionTime: now(),
          },
        ],
      });
      this.#event(pod, 'Warning', 'FailedScheduling', message, 'default-scheduler');
      return;
    }
    try {
      await this.#core.createNamespacedPodBinding({
        name,
        namespace,
        body: {
          metadata: { name, namespace, uid },
          target: { apiVersion: 'v1', kind: 'Node', name: this.nodeName },
        },
      });
    } catch (err) {
      // Gone, or bound meanwhile: the next sync sees what happened.
      if (isCode(err, 404) || isCode(err, 409)) return;
      throw err;
    }
    this.#unschedulable.delete(uid);
    for (const [k, v] of requests) used.set(k, (used.get(k) ?? 0) + v);
    this.#event(
      pod,
      'Normal',
      'Scheduled',
      `Successfully assigned ${namespace}/${name} to ${this.nodeName}`,
      'default-scheduler',
    );
    this.#kick();
  }

  /** Brings one pod bound to this node towards what its spec and metadata ask. */
  #ensure(pod: V1Pod): void {
    const uid = pod.metadata!.uid!;
    let rt = this.#runtimes.get(uid);
    if (!rt) {
      if (TERMINAL.has(pod.status?.phase ?? '') && !pod.metadata?.deletionTimestamp) {
        // Finished before this agent saw it (an earlier agent of this node ran it): nothing to run.
        this.#done.add(uid);
        return;
      }
      rt = this.#newRuntime(pod);
      this.#runtimes.set(uid, rt);
    }
    rt.pod = pod;
    if (pod.metadata?.deletionTimestamp) {
      rt.deleting = true;
      rt.terminating ??= this.#background(`terminate ${rt.name}`, this.#terminate(rt));
      return;
    }
    if (rt.state === 'preparing' && !rt.starting)
      rt.starting = this.#background(`start ${rt.name}`, this.#start(rt));
    else if (rt.state === 'waiting' && !rt.starting && Date.now() >= rt.retryAt)
      rt.starting = this.#background(`start ${rt.name}`, this.#start(rt));
  }

  #newRuntime(pod: V1Pod): PodRuntime {
    const uid = pod.metadata!.uid!;
    const dir = join(this.dir, `${pod.metadata!.namespace!}_${pod.metadata!.name!}_${uid.slice(0, 8)}`);
    let markExited!: () => void;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const t = now();
    return {
      uid,
      namespace: pod.metadata!.namespace!,
      name: pod.metadata!.name!,
      ip: this.#ipFor(pod),
      dir,
      acceptedAt: t,
      pod,
      state: 'preparing',
      waiting: { reason: 'ContainerCreating', message: '' },
      sandbox: false,
      retryAt: 0,
      starting: null,
      deleting: false,
      terminating: null,
      child: null,
      startedAt: null,
      exit: null,
      exited,
      markExited,
      ready: false,
      readyChangedAt: t,
      probeTimer: null,
      statusWrites: Promise.resolve(),
      lastStatus: '',
      logPath: join(dir, 'container.log'),
      terminationPath: join(dir, 'termination-log'),
      finalLog: null,
    };
  }

  // ---------------------------------------------------------------------------------------- network

  /**
   * The address a client on this node dials for the Service's port `port` (its ClusterIP and port in
   * a cluster): a loopback address of the agent's own, kept for the Service, at that port; each
   * connection goes to a ready pod the Service selects (service-proxy.ts, kube-proxy's job).
   */
  serviceAddress(namespace: string, name: string, port: number): Promise<ServiceProxy> {
    const key = `${namespace}/${name}:${port}`;
    let proxy = this.#services.get(key);
    if (!proxy) {
      proxy = ServiceProxy.start(
        this.#core,
        this.#reserve(`service:${name}.${namespace}`),
        namespace,
        name,
        port,
      );
      this.#services.set(key, proxy);
      proxy.catch(() => this.#services.delete(key));
    }
    return proxy;
  }

  /** A pod with a hostname and subdomain has the IP its DNS name resolves to; any other a fresh one. */
  #ipFor(pod: V1Pod): string {
    const { hostname, subdomain } = pod.spec ?? {};
    if (hostname && subdomain) return this.#reserve(`${hostname}.${subdomain}.${pod.metadata!.namespace!}`);
    return this.#allocate();
  }

  #reserve(dnsName: string): string {
    let ip = this.#reserved.get(dnsName);
    if (!ip) {
      ip = this.#allocate();
      this.#reserved.set(dnsName, ip);
    }
    return ip;
  }

  #allocate(): string {
    return this.#addresses.allocate();
  }

  /**
   * Cluster DNS for pods: `<hostname>.<subdomain>.<namespace>.svc.<domain>` has an address when a
   * headless Service named `<subdomain>` exists in the namespace (its pods may come later: until
   * then connections are refused, as they are while a real pod starts).
   */
  async #network(rt: PodRuntime): Promise<PodNetwork> {
    const headless = new Map<string, boolean>();
    const namespaces = new Set<string>();
    const env = rt.pod.spec?.containers.flatMap((c) => [
      ...(c.command ?? []),
      ...(c.args ?? []),
      ...(c.env ?? []).map((e) => e.value ?? ''),
    ]);
    const names = new RegExp(`\\.([a-z0-9-]+)\\.svc\\.${this.#clusterDomain.replace(/\./g, '\\.')}`, 'g');
    for (const s of env ?? []) for (const m of s.matchAll(names)) namespaces.add(m[1]!);
    for (const ns of namespaces) {
      const services = await this.#core.listNamespacedService({ namespace: ns });
      for (const s of services.items)
        headless.set(`${s.metadata?.name ?? ''}.${ns}`, s.spec?.clusterIP === 'None');
    }
    return {
      podIP: rt.ip,
      clusterDomain: this.#clusterDomain,
      resolvePod: (hostname, subdomain, namespace) =>
        headless.get(`${subdomain}.${namespace}`)
          ? this.#reserve(`${hostname}.${subdomain}.${namespace}`)
          : undefined,
    };
  }

  // ---------------------------------------------------------------------------------------- start

  async #start(rt: PodRuntime): Promise<void> {
    try {
      const container = singleContainer(rt.pod);
      await mkdir(rt.dir, { recursive: true });
      const ctx: PodContext = {
        pod: rt.pod,
        dir: rt.dir,
        podIP: rt.ip,
        hostIP: HOST_IP,
        terminationPath: rt.terminationPath,
        keys: (kind, name) => this.#keys(rt.namespace, kind, name),
        nodePath: (path) => this.#nodePath(path),
      };
      const mounts = await setUpVolumes(ctx, container);
      rt.sandbox = true;
      const env = await containerEnv(ctx, container);
      const net = await this.#network(rt);
      const vars = new Map(env);
      // The image's entrypoint is a path of this machine (the "image" is this checkout), so it is not
      // translated: a checkout under /tmp must not land in the pod's /tmp volume.
      const command = container.command
        ? container.command.map((s, i) =>
            i === 0 ? expandVars(s, vars) : localize(expandVars(s, vars), mounts, net),
          )
        : [...this.#image.entrypoint];
      const args = (container.args ?? []).map((s) => localize(expandVars(s, vars), mounts, net));
      // The image's PATH names this machine's node; its other variables (HOME=/tmp) are container paths.
      const processEnv: Record<string, string> = {};
      for (const [k, v] of [...Object.entries(this.#image.env), ...env])
        processEnv[k] = k === 'PATH' && v === this.#image.env['PATH'] ? v : localize(v, mounts, net);
      const argv = [...command, ...args];
      const cwd = container.workingDir ? localPath(container.workingDir, mounts) : this.#image.workingDir;
      // A pod of the same name from an earlier attempt may still hold the address (it is stopping).
      while (this.#addressBusy(rt) && !rt.deleting && !this.#stopped) await sleep(100);
      if (rt.deleting || this.#stopped) return;
      this.#spawn(rt, argv, processEnv, cwd, container);
    } catch (err) {
      if (!(err instanceof ContainerWaiting)) throw err;
      rt.state = 'waiting';
      rt.waiting = { reason: err.reason, message: err.message };
      rt.retryAt = Date.now() + RETRY_MS;
      this.#event(rt.pod, 'Warning', err.event, err.message);
      this.#writeStatus(rt);
    } finally {
      rt.starting = null;
    }
  }

  #addressBusy(rt: PodRuntime): boolean {
    return [...this.#runtimes.values()].some(
      (o) => o.uid !== rt.uid && o.ip === rt.ip && o.child !== null && o.exit === null,
    );
  }

  #spawn(
    rt: PodRuntime,
    argv: readonly string[],
    env: Record<string, string>,
    cwd: string,
    container: V1Container,
  ): void {
    writeFileSync(rt.terminationPath, '');
    const out = openSync(rt.logPath, 'a');
    let child: ChildProcess;
    try {
      child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', out, out], detached: true });
    } finally {
      closeSync(out);
    }
    rt.child = child;
    if (child.pid !== undefined) this.#watchdog.stdin?.write(`${child.pid}\n`);
    child.on('error', (err) => {
      // Could not be started at all: the runtime's StartError (exit code 128).
      writeFileSync(rt.logPath, `${err.message}\n`, { flag: 'a' });
      this.#onExit(rt, container, 128, null, 'StartError');
    });
    child.on('exit', (code, signal) => {
      this.#onExit(rt, container, code, signal, null);
    });
    rt.state = 'running';
    rt.waiting = null;
    rt.startedAt = now();
    this.#event(rt.pod, 'Normal', 'Started', `Started container ${container.name} (pid ${child.pid ?? '?'})`);
    if (!container.readinessProbe) this.#setReady(rt, true);
    else this.#probe(rt, container.readinessProbe, container, true);
    this.#writeStatus(rt);
  }

  #onExit(
    rt: PodRuntime,
    container: V1Container,
    code: number | null,
    signal: NodeJS.Signals | null,
    reason: string | null,
  ): void {
    if (rt.exit) return;
    this.#stopProbe(rt);
    const exitCode = code ?? 128 + (signal ? ((constants.signals[signal] as number | undefined) ?? 0) : 0);
    let message = readHead(rt.terminationPath, TERMINATION_MESSAGE_MAX_BYTES);
    if (!message && exitCode !== 0 && container.terminationMessagePolicy === 'FallbackToLogsOnError')
      message = logTail(readTail(rt.logPath));
    rt.exit = {
      exitCode,
      reason: reason ?? (exitCode === 0 ? 'Completed' : 'Error'),
      message,
      finishedAt: now(),
    };
    rt.state = 'exited';
    rt.ready = false;
    rt.readyChangedAt = now();
    this.#writeStatus(rt);
    recordLog(`pod ${rt.namespace}/${rt.name} (exit ${exitCode})`, readFileSafe(rt.logPath));
    rt.markExited();
  }

  // ---------------------------------------------------------------------------------------- volumes

  /** Where a path of the node lies on this machine (NodeAgentOptions.hostPaths). */
  #nodePath(path: string): string {
    const roots = Object.entries(this.#options.hostPaths ?? {});
    return localPath(
      path,
      roots.map(([containerPath, local]) => ({ containerPath, localPath: local })),
    );
  }

  /** A ConfigMap's or Secret's keys, decoded; null when it does not exist. */
  async #keys(namespace: string, kind: KeyKind, name: string): Promise<Record<string, Buffer> | null> {
    const out: Record<string, Buffer> = {};
    try {
      if (kind === 'ConfigMap') {
        const cm = await this.#core.readNamespacedConfigMap({ namespace, name });
        for (const [k, v] of Object.entries(cm.data ?? {})) out[k] = Buffer.from(v);
        for (const [k, v] of Object.entries(cm.binaryData ?? {})) out[k] = Buffer.from(v, 'base64');
      } else {
        const secret = await this.#core.readNamespacedSecret({ namespace, name });
        for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64');
      }
    } catch (err) {
      if (isCode(err, 404)) return null;
      throw err;
    }
    return out;
  }

  // ---------------------------------------------------------------------------------------- probes

  /** The readiness probe on its schedule: initialDelaySeconds, then every periodSeconds. */
  #probe(rt: PodRuntime, probe: V1Probe, container: V1Container, first: boolean): void {
    const delayMs = (first ? (probe.initialDelaySeconds ?? 0) : (probe.periodSeconds ?? 10)) * 1000;
    let successes = 0;
    let failures = 0;
    const run = async (): Promise<void> => {
      if (!this.#probing(rt)) return;
      const ok = await probeOnce(rt.ip, probe, container);
      if (!this.#probing(rt)) return;
      if (ok) {
        successes++;
        failures = 0;
        if (successes >= (probe.successThreshold ?? 1)) this.#setReady(rt, true);
      } else {
        failures++;
        successes = 0;
        if (failures >= (probe.failureThreshold ?? 3)) this.#setReady(rt, false);
      }
      rt.probeTimer = setTimeout(() => void run(), (probe.periodSeconds ?? 10) * 1000);
    };
    rt.probeTimer = setTimeout(() => void run(), delayMs);
  }

  #probing(rt: PodRuntime): boolean {
    return rt.state === 'running' && !this.#stopped;
  }

  #stopProbe(rt: PodRuntime): void {
    if (rt.probeTimer) clearTimeout(rt.probeTimer);
    rt.probeTimer = null;
  }

  #setReady(rt: PodRuntime, ready: boolean): void {
    if (rt.ready === ready) return;
    rt.ready = ready;
    rt.readyChangedAt = now();
    this.#writeStatus(rt);
  }

  // ---------------------------------------------------------------------------------------- stop

  /** The pod is being deleted: stop its container within the grace period, then finish the deletion. */
  async #terminate(rt: PodRuntime): Promise<void> {
    await rt.starting;
    if (rt.child && !rt.exit) {
      const pod = rt.pod;
      const grace = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
      this.#event(pod, 'Normal', 'Killing', `Stopping container ${pod.spec?.containers[0]?.name ?? ''}`);
      killGroup(rt.child, 'SIGTERM');
      const timer = setTimeout(() => {
        killGroup(rt.child, 'SIGKILL');
      }, grace * 1000);
      await rt.exited;
      clearTimeout(timer);
    }
    this.#stopProbe(rt);
    await rt.statusWrites;
    try {
      await this.#core.deleteNamespacedPod({
        namespace: rt.namespace,
        name: rt.name,
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: rt.uid } },
      });
    } catch (err) {
      if (!isCode(err, 404) && !isCode(err, 409)) throw err;
    }
    this.#finish(rt.uid, rt);
  }

  /** The pod is gone from the API without this agent (a forced deletion): kill its container now. */
  #vanished(rt: PodRuntime): void {
    if (rt.terminating) return;
    rt.deleting = true;
    rt.terminating = this.#background(
      `clean up ${rt.name}`,
      (async () => {
        await rt.starting;
        if (rt.child && !rt.exit) {
          killGroup(rt.child, 'SIGKILL');
          await rt.exited;
        }
        this.#finish(rt.uid, rt);
      })(),
    );
  }

  #finish(uid: string, rt: PodRuntime): void {
    rt.finalLog = readFileSafe(rt.logPath);
    this.#done.add(uid);
    this.#runtimes.delete(uid);
    this.#history.push(rt);
    if (this.#history.length > 200) this.#history.shift();
    rmSync(rt.dir, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------------------------------- status

  /** The pod's status as the kubelet reports it, from what the agent knows. */
  #status(rt: PodRuntime): Record<string, unknown> {
    const pod = rt.pod;
    const container = pod.spec?.containers[0];
    const scheduled: V1PodCondition | undefined = pod.status?.conditions?.find(
      (c) => c.type === 'PodScheduled',
    );
    const phase = rt.state === 'running' ? 'Running' : rt.exit ? exitPhase(rt.exit) : 'Pending';
    const ready = rt.state === 'running' && rt.ready;
    const notReady = rt.exit ? 'PodCompleted' : 'ContainersNotReady';
    const condition = (type: string, status: boolean, at: string, reason?: string) => ({
      type,
      status: status ? 'True' : 'False',
      lastTransitionTime: at,
      ...(reason && !status ? { reason } : {}),
    });
    return {
      phase,
      hostIP: HOST_IP,
      hostIPs: [{ ip: HOST_IP }],
      ...(rt.sandbox ? { podIP: rt.ip, podIPs: [{ ip: rt.ip }] } : {}),
      startTime: rt.acceptedAt,
      conditions: [
        condition('PodReadyToStartContainers', rt.sandbox, rt.acceptedAt),
        condition('Initialized', true, rt.acceptedAt),
        condition('Ready', ready, rt.readyChangedAt, notReady),
        condition('ContainersReady', ready, rt.readyChangedAt, notReady),
        scheduled
          ? {
              type: 'PodScheduled',
              status: scheduled.status,
              lastTransitionTime: toTime(scheduled.lastTransitionTime) ?? rt.acceptedAt,
            }
          : condition('PodScheduled', true, rt.acceptedAt),
      ],
      containerStatuses: [
        {
          name: container?.name ?? '',
          image: container?.image ?? '',
          imageID: '',
          ...(rt.child?.pid !== undefined ? { containerID: `local-process://${rt.child.pid}` } : {}),
          ready,
          started: rt.state === 'running',
          restartCount: 0,
          state: containerState(rt),
        },
      ],
    };
  }

  /** Queues a status write (in order, skipped when nothing changed). */
  #writeStatus(rt: PodRuntime): void {
    rt.statusWrites = rt.statusWrites.then(async () => {
      const status = this.#status(rt);
      const json = JSON.stringify(status);
      if (json === rt.lastStatus) return;
      try {
        await this.#patchStatus(rt.namespace, rt.name, status);
        rt.lastStatus = json;
      } catch (err) {
        if (!isCode(err, 404)) this.#error(`status of ${rt.namespace}/${rt.name}`, err);
      }
    });
  }

  async #patchStatus(namespace: string, name: string, status: Record<string, unknown>): Promise<void> {
    await this.#core.patchNamespacedPodStatus(
      { namespace, name, body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  // ---------------------------------------------------------------------------------------- misc

  /** An Event about a pod, once per reason and message (best effort, as the kubelet's). */
  #event(
    pod: V1Pod,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    component = 'kubelet',
  ): void {
    const key = `${pod.metadata?.uid ?? ''}/${reason}/${message}`;
    if (this.#eventsSent.has(key)) return;
    this.#eventsSent.add(key);
    const namespace = pod.metadata?.namespace ?? 'default';
    const t = new Date();
    this.#core
      .createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${pod.metadata?.name ?? 'pod'}.`, namespace },
          involvedObject: {
            apiVersion: 'v1',
            kind: 'Pod',
            name: pod.metadata?.name ?? '',
            namespace,
            uid: pod.metadata?.uid ?? '',
          },
          reason,
          message,
          type,
          source: { component, host: this.nodeName },
          firstTimestamp: t,
          lastTimestamp: t,
          count: 1,
        },
      })
      .catch(() => undefined);
  }

  #background(what: string, p: Promise<void>): Promise<void> {
    return p.catch((err: unknown) => {
      this.#error(what, err);
    });
  }

  #error(what: string, err: unknown): void {
    if (this.#stopped) return;
    const body = err instanceof ApiException ? ` ${String(err.body)}` : '';
    this.errors.push(`${new Date().toISOString()} ${what}: ${messageOf(err)}${body}`);
  }
}

// ------------------------------------------------------------------------------------------ helpers

/** restartPolicy Never: the pod ends with its one container. */
function exitPhase(exit: Exit): 'Succeeded' | 'Failed' {
  return exit.exitCode === 0 ? 'Succeeded' : 'Failed';
}

function containerState(rt: PodRuntime): Record<string, unknown> {
  if (rt.state === 'running') return { running: { startedAt: rt.startedAt } };
  if (rt.exit)
    return {
      terminated: {
        exitCode: rt.exit.exitCode,
        reason: rt.exit.reason,
        ...(rt.exit.message ? { message: rt.exit.message } : {}),
        startedAt: rt.startedAt ?? rt.exit.finishedAt,
        finishedAt: rt.exit.finishedAt,
        containerID: `local-process://${rt.child?.pid ?? 0}`,
      },
    };
  return {
    waiting: {
      reason: rt.waiting?.reason ?? 'ContainerCreating',
      ...(rt.waiting?.message ? { message: rt.waiting.message } : {}),
    },
  };
}

function toTime(t: Date | string | undefined): string | undefined {
  if (t === undefined) return undefined;
  return (typeof t === 'string' ? t : t.toISOString()).replace(/\.\d{3}Z$/, 'Z');
}

function killGroup(child: ChildProcess | null, signal: NodeJS.Signals): void {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

function containerLog(rt: PodRuntime): string {
  return rt.finalLog ?? readFileSafe(rt.logPath);
}

function readHead(path: string, maxBytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return '';
  }
  try {
    const buf = Buffer.alloc(maxBytes);
    const n = readSync(fd, buf, 0, maxBytes, 0);
    return buf.subarray(0, n).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

function readTail(path: string): Buffer {
  try {
    const size = statSync(path).size;
    const fd = openSync(path, 'r');
    try {
      const n = Math.min(size, 64 * 1024);
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, size - n);
      return buf;
    } finally {
      closeSync(fd);
    }
  } catch {
    return Buffer.alloc(0);
  }
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
