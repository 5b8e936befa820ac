// The whole product on this machine, for end-to-end tests: a real control plane (etcd,
// kube-apiserver, kube-controller-manager for garbage collection), the CRDs, the test node agent as
// the cluster's one GPU node, and `runahead operator` as a process. Tests drive it with kubectl,
// exactly as the README's "Try it on a cluster" does.
import { FIXTURES } from './fixtures.ts';
import { ControlPlane } from './control-plane.ts';
import { NodeAgent } from './node-agent.ts';
import { OperatorProcess } from './operator-process.ts';
import { repoPath } from './operator.ts';
import type { RunaheadJobStatus } from '../../core/api/v1alpha1/runahead-job.ts';

/**
 * Where the examples' hostPath model volume (`/var/lib/runahead/models`) lies on the test node: the
 * committed reference checkpoints, so `kubectl apply -f examples/checkpoint-text-4ranks.yaml` runs
 * unchanged (a kind cluster would do the same with an extraMount).
 */
export const NODE_MODELS_DIR = '/var/lib/runahead/models';

export interface JobObject {
  metadata: { name: string; uid: string; namespace: string };
  spec: Record<string, unknown>;
  status?: RunaheadJobStatus;
}

export class E2eCluster {
  readonly cp: ControlPlane;
  readonly agent: NodeAgent;
  #operator: OperatorProcess;

  private constructor(cp: ControlPlane, agent: NodeAgent, operator: OperatorProcess) {
    this.cp = cp;
    this.agent = agent;
    this.#operator = operator;
  }

  static async start(): Promise<E2eCluster> {
    // The CRDs go in before kube-controller-manager starts, so that its garbage collector knows
    // RunaheadJobs as owners at once (`kubectl delete runaheadjob` takes the pods with it).
    const cp = await ControlPlane.start({ controllerManager: true, crds: [repoPath('crds')] });
    let agent: NodeAgent | null = null;
    try {
      agent = await NodeAgent.start({
        kubeconfigPath: cp.kubeconfigPath,
        hostPaths: { [NODE_MODELS_DIR]: `${FIXTURES}/models` },
      });
      const operator = await OperatorProcess.start({
        kubeconfig: cp.kubeconfigPath,
        // The jobs read the reference checkpoint from the node (a hostPath under NODE_MODELS_DIR).
        extraArgs: ['--allowed-host-paths', NODE_MODELS_DIR],
      });
      return new E2eCluster(cp, agent, operator);
    } catch (err) {
      await agent?.stop();
      await cp.stop();
      throw err;
    }
  }

  get operator(): OperatorProcess {
    return this.#operator;
  }

  /** Stops the operator gracefully and starts a new one (a Deployment's rollout). */
  async restartOperator(between: () => Promise<void> = () => Promise.resolve()): Promise<void> {
    await this.#operator.stop();
    try {
      await between();
    } finally {
      this.#operator = await OperatorProcess.start({
        kubeconfig: this.cp.kubeconfigPath,
        extraArgs: ['--allowed-host-paths', NODE_MODELS_DIR],
      });
    }
  }

  async stop(): Promise<void> {
    await this.#operator.kill().catch(() => undefined);
    await this.agent.stop();
    await this.cp.stop();
  }

  kubectl(args: readonly string[], input?: string): Promise<string> {
    return this.cp.kubectl(args, input);
  }

  /** `kubectl apply -f examples/<file>` */
  applyExample(file: string): Promise<string> {
    return this.kubectl(['apply', '-f', repoPath(`examples/${file}`)]);
  }

  /** `kubectl apply -f -` of a manifest written in the test. */
  apply(manifest: string): Promise<string> {
    return this.kubectl(['apply', '-f', '-'], manifest);
  }

  /** `kubectl wait --for=condition=<condition> runaheadjob/<name>`; on a timeout, says what the cluster looked like. */
  async wait(name: string, condition: string, timeoutS: number): Promise<void> {
    try {
      await this.kubectl([
        'wait',
        `--for=condition=${condition}`,
        `--timeout=${timeoutS}s`,
        `runaheadjob/${name}`,
      ]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await this.describe(name)}`, { cause: err });
    }
  }

  async job(name: string): Promise<JobObject> {
    return JSON.parse(await this.kubectl(['get', 'runaheadjob', name, '-o', 'json'])) as JobObject;
  }

  async condition(
    name: string,
    type: string,
  ): Promise<{ status: string; reason: string; message: string } | undefined> {
    return (await this.job(name)).status?.conditions?.find((c) => c.type === type);
  }

  /** Pod names of the job (all attempts), from the API. */
  async pods(job: string): Promise<string[]> {
    const out = await this.kubectl([
      'get',
      'pods',
      '-l',
      `runahead.dev/job=${job}`,
      '-o',
      'jsonpath={.items[*].metadata.name}',
    ]);
    return out.split(/\s+/).filter(Boolean);
  }

  /** Everything a failing test needs to see: the job, its pods, events, the node, the operator's log. */
  async describe(name: string): Promise<string> {
    const safe = (args: string[]) => this.kubectl(args).catch((err: unknown) => (err as Error).message);
    return [
      `--- runaheadjob/${name}`,
      await safe(['get', 'runaheadjob', name, '-o', 'yaml']),
      '--- pods',
      await safe(['get', 'pods', '-o', 'wide']),
      '--- events',
      await safe(['get', 'events', '--sort-by=.lastTimestamp']),
      '--- node agent',
      this.agent.describe(),
      ...this.agent
        .pods()
        .filter((p) => p.name.startsWith(`${name}-`))
        .map((p) => `--- log of ${p.name} (${p.uid.slice(0, 8)})\n${this.agent.logOf(p.uid).slice(-3000)}`),
      '--- operator (last lines)',
      this.#operator.logs.slice(-40).join('\n'),
    ].join('\n');
  }
}
