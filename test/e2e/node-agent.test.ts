// The test node agent (test/support/node-agent.ts) against a real API server, with small Node.js
// scripts as containers: what it must do as a kubelet (and a one-node scheduler) for the end-to-end
// suite to mean anything.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT } from '../support/cli.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';
import { NodeAgent } from '../support/node-agent.ts';
import { recordLog } from '../support/test-logs.ts';

jest.setTimeout(120_000);

interface PodJson {
  metadata: { name: string; uid: string; deletionTimestamp?: string };
  spec: { nodeName?: string };
  status: {
    phase: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    containerStatuses?: {
      ready: boolean;
      state: {
        running?: object;
        waiting?: { reason: string; message?: string };
        terminated?: { exitCode: number; reason: string; message?: string };
      };
    }[];
  };
}

/** A pod whose one container runs `script` in Node.js (an ES module; the repository's packages resolve). */
function podManifest(
  name: string,
  script: string,
  more: { spec?: object; container?: object; args?: readonly string[] } = {},
): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: name } },
    spec: {
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 30,
      ...more.spec,
      containers: [
        {
          name: 'main',
          image: 'test',
          command: [process.execPath, '--input-type=module', '-e', script, '--', ...(more.args ?? [])],
          ...more.container,
        },
      ],
    },
  });
}

describe('the test node agent', () => {
  let cp: ControlPlane;
  let agent: NodeAgent;
  const hostDir = mkdtempSync(join(tmpdir(), 'node-agent-host-'));

  beforeAll(async () => {
    cp = await ControlPlane.start();
    agent = await NodeAgent.start({
      kubeconfigPath: cp.kubeconfigPath,
      capacity: { cpu: '4', memory: '8Gi', pods: '110', 'nvidia.com/gpu': '2' },
      hostPaths: { '/var/lib/models': hostDir },
    });
  }, 60_000);
  afterAll(async () => {
    await agent.stop();
    await cp.stop();
  });

  const pod = async (name: string): Promise<PodJson> =>
    JSON.parse(await cp.kubectl(['get', 'pod', name, '-o', 'json'])) as PodJson;
  const terminated = (name: string) =>
    eventually(
      `${name} to terminate`,
      async () => (await pod(name)).status.containerStatuses?.[0]?.state.terminated,
      30_000,
    );
  const events = async (name: string): Promise<string> =>
    cp.kubectl([
      'get',
      'events',
      '--field-selector',
      `involvedObject.name=${name}`,
      '-o',
      'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
    ]);

  it('registers a Ready node with nvidia.com/gpu capacity', async () => {
    const node = JSON.parse(await cp.kubectl(['get', 'node', agent.nodeName, '-o', 'json'])) as {
      status: {
        capacity: Record<string, string>;
        allocatable: Record<string, string>;
        conditions: { type: string; status: string }[];
      };
    };
    expect(node.status.capacity['nvidia.com/gpu']).toBe('2');
    expect(node.status.allocatable['nvidia.com/gpu']).toBe('2');
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('runs the image entrypoint as it is, even when a pod volume is mounted over the checkout', async () => {
    // The "image" is this checkout: a volume whose mountPath holds it (an emptyDir at /tmp when the
    // checkout is under /tmp, as on CI) must not move the entrypoint into the volume.
    await cp.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'entrypoint' },
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'worker',
              image: 'test',
              args: ['--help'],
              volumeMounts: [{ name: 'over', mountPath: dirname(ROOT) }],
            },
          ],
          volumes: [{ name: 'over', emptyDir: {} }],
        },
      }),
    );
    expect(await terminated('entrypoint')).toMatchObject({ exitCode: 0 });
  });

  it('binds a pod, runs it with its env, volumes and args as the container sees them, and reports how it ended', async () => {
    writeFileSync(join(hostDir, 'weights.txt'), 'from the node');
    await cp.kubectl([
      'create',
      'configmap',
      'settings',
      '--from-literal=greeting=hello',
      '--from-literal=other=x',
    ]);
    const script = `
      import { readFileSync, writeFileSync } from 'node:fs';
      const [file, weights, log] = process.argv.slice(1);
      const out = {
        env: { POD: process.env.POD, NS: process.env.NS, GREETING: process.env.GREETING, JOINED: process.env.JOINED, IP: process.env.MY_IP, HOME: process.env.HOME },
        file: readFileSync(file, 'utf8'),
        weights: readFileSync(weights, 'utf8'),
      };
      writeFileSync(log, JSON.stringify(out));`;
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('runs', script, {
        args: ['/etc/settings/greeting.txt', '/models/weights.txt', '/dev/termination-log'],
        spec: {
          volumes: [
            {
              name: 'settings',
              configMap: { name: 'settings', items: [{ key: 'greeting', path: 'greeting.txt' }] },
            },
            { name: 'models', hostPath: { path: '/var/lib/models', type: 'Directory' } },
            { name: 'tmp', emptyDir: {} },
          ],
        },
        container: {
          env: [
            { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
            { name: 'MY_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
            { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'settings', key: 'greeting' } } },
            { name: 'JOINED', value: '$(POD)-$(GREETING)-$$(POD)' },
          ],
          volumeMounts: [
            { name: 'settings', mountPath: '/etc/settings' },
            { name: 'models', mountPath: '/models', readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      }),
    );
    const end = await terminated('runs');
    const p = await pod('runs');
    expect(p.spec.nodeName).toBe(agent.nodeName);
    expect(p.status.phase).toBe('Succeeded');
    expect(end).toMatchObject({ exitCode: 0, reason: 'Completed' });
    const report = JSON.parse(end.message ?? '') as {
      env: Record<string, string>;
      file: string;
      weights: string;
    };
    expect(p.status.podIP).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect(report).toEqual({
      env: {
        POD: 'runs',
        NS: 'default',
        GREETING: 'hello',
        JOINED: 'runs-hello-$(POD)',
        IP: p.status.podIP,
        // The image's HOME=/tmp, under the pod's emptyDir.
        HOME: expect.stringMatching(/volumes\/tmp$/) as unknown as string,
      },
      file: 'hello',
      weights: 'from the node',
    });
    // The agent writes its events in the background: they may come after the pod's status.
    await eventuallyExpect(
      'the events of runs',
      () => events('runs'),
      (seen) => {
        expect(seen).toContain('Scheduled: Successfully assigned default/runs to e2e-node');
        expect(seen).toMatch(/Started: Started container main \(pid \d+\)/);
      },
      30_000,
    );
  });

  it('a failed container without a termination message: FallbackToLogsOnError takes the end of its log', async () => {
    const script = `for (let i = 0; i < 100; i++) console.log('line ' + i); process.exit(3);`;
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('fails', script, { container: { terminationMessagePolicy: 'FallbackToLogsOnError' } }),
    );
    const end = await terminated('fails');
    expect((await pod('fails')).status.phase).toBe('Failed');
    expect(end).toMatchObject({ exitCode: 3, reason: 'Error' });
    const lines = (end.message ?? '').trimEnd().split('\n');
    expect(lines).toEqual(Array.from({ length: 80 }, (_, i) => `line ${i + 20}`));
  });

  it('Ready follows the gRPC readiness probe, on the pod IP the process listens on', async () => {
    // It serves once the test writes the file it names, not after a delay that a busy machine
    // could outlast before the test looks.
    const script = `
      import { existsSync } from 'node:fs';
      import { Server, ServerCredentials } from '@grpc/grpc-js';
      import { HealthImplementation } from 'grpc-health-check';
      const health = new HealthImplementation({ '': 'NOT_SERVING' });
      const server = new Server();
      health.addToServer(server);
      server.bindAsync(process.argv[1], ServerCredentials.createInsecure(), () => {});
      const go = setInterval(() => {
        if (existsSync(process.argv[2])) { health.setStatus('', 'SERVING'); clearInterval(go); }
      }, 100);
      setTimeout(() => process.exit(0), 60000);`;
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('probed', script, {
        args: ['0.0.0.0:50051', '/models/probed-may-serve'],
        spec: { volumes: [{ name: 'models', hostPath: { path: '/var/lib/models', type: 'Directory' } }] },
        container: {
          readinessProbe: { grpc: { port: 50051 }, periodSeconds: 1, failureThreshold: 1 },
          volumeMounts: [{ name: 'models', mountPath: '/models', readOnly: true }],
        },
      }),
    );
    const ready = (p: PodJson) => p.status.conditions?.find((c) => c.type === 'Ready')?.status;
    await eventually('probed to run', async () => (await pod('probed')).status.phase === 'Running', 30_000);
    expect(ready(await pod('probed'))).toBe('False');
    writeFileSync(join(hostDir, 'probed-may-serve'), '');
    await eventually('probed to be Ready', async () => ready(await pod('probed')) === 'True', 30_000);
    expect((await pod('probed')).status.containerStatuses?.[0]?.ready).toBe(true);
  });

  it('a pod deleted: SIGTERM, SIGKILL after its grace period, then the deletion is finished', async () => {
    const script = `process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('handler installed'); setInterval(() => {}, 1000);`;
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('stubborn', script, { spec: { terminationGracePeriodSeconds: 2 } }),
    );
    // The signal must come after Node.js has installed the handler.
    await eventually(
      'stubborn to install its SIGTERM handler',
      () => agent.log('default', 'stubborn').includes('handler installed'),
      30_000,
    );
    const pid = agent.pods().find((p) => p.name === 'stubborn')!.pid!;
    const t0 = Date.now();
    await cp.kubectl(['delete', 'pod', 'stubborn']); // waits until the pod is gone
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1900);
    expect(took).toBeLessThan(15_000);
    expect(isAlive(pid)).toBe(false);
    expect(agent.log('default', 'stubborn')).toContain('ignoring SIGTERM');
    expect(agent.pods().find((p) => p.name === 'stubborn')?.exitCode).toBe(137);
  });

  it('cluster DNS: a pod’s <hostname>.<subdomain> name is its IP when the headless Service exists', async () => {
    await cp.kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'peers' },
        spec: { clusterIP: 'None', selector: { app: 'server' }, ports: [{ port: 1 }] },
      }),
    );
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('server', 'setInterval(() => {}, 1000);', {
        spec: { hostname: 'server-0', subdomain: 'peers' },
      }),
    );
    const script = `import { writeFileSync } from 'node:fs'; writeFileSync(process.argv[1], process.argv.slice(2).join(' '));`;
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('client', script, {
        args: [
          '/dev/termination-log',
          'server-0.peers.default.svc.cluster.local:50051',
          'server-0.nopeers.default.svc.cluster.local:1',
        ],
      }),
    );
    const end = await terminated('client');
    await eventually('server to have an IP', async () => (await pod('server')).status.podIP);
    const serverIp = (await pod('server')).status.podIP;
    expect(end.message).toBe(`${serverIp}:50051 server-0.nopeers.default.svc.cluster.local:1`);
    await cp.kubectl(['delete', 'pod', 'server', '--grace-period=1']);
  });

  it('scheduling: requests beyond the free nvidia.com/gpu leave the pod Unschedulable', async () => {
    const gpus = (n: number) => ({ container: { resources: { limits: { 'nvidia.com/gpu': String(n) } } } });
    await cp.kubectl(['apply', '-f', '-'], podManifest('too-big', 'process.exit(0)', gpus(3)));
    await cp.kubectl(['apply', '-f', '-'], podManifest('fits', 'process.exit(0)', gpus(2)));
    await terminated('fits');
    const scheduled = await eventually('too-big to be marked unschedulable', async () =>
      (await pod('too-big')).status.conditions?.find(
        (c) => c.type === 'PodScheduled' && c.status === 'False',
      ),
    );
    expect(scheduled).toMatchObject({
      reason: 'Unschedulable',
      message: '0/1 nodes are available: 1 Insufficient nvidia.com/gpu.',
    });
    expect((await pod('too-big')).spec.nodeName).toBeUndefined();
  });

  it('a hostPath directory that is not on the node: the pod waits in ContainerCreating with FailedMount', async () => {
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('no-volume', 'process.exit(0)', {
        spec: { volumes: [{ name: 'm', hostPath: { path: '/var/lib/models/absent', type: 'Directory' } }] },
        container: { volumeMounts: [{ name: 'm', mountPath: '/m' }] },
      }),
    );
    await eventually(
      'a FailedMount event',
      async () =>
        /FailedMount: .*\/var\/lib\/models\/absent is not a directory/.test(await events('no-volume')),
      30_000,
    );
    await eventuallyExpect(
      'no-volume to wait in ContainerCreating',
      () => pod('no-volume'),
      (p) => {
        expect(p.status.phase).toBe('Pending');
        expect(p.status.containerStatuses?.[0]?.state.waiting?.reason).toBe('ContainerCreating');
      },
      30_000,
    );
  });

  it('the test process killed: its watchdog kills the containers', async () => {
    // An agent in a child process, for a node of its own; the pod is bound to that node directly.
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { NodeAgent } from ${JSON.stringify(join(ROOT, 'test/support/node-agent.ts'))};
         const agent = await NodeAgent.start({ kubeconfigPath: process.argv[1], nodeName: 'doomed' });
         setInterval(() => { if (agent.liveProcesses().length) console.log(JSON.stringify(agent.liveProcesses())); }, 100);`,
        cp.kubeconfigPath,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      recordLog('child node agent', d.toString());
    });
    await cp.kubectl(
      ['apply', '-f', '-'],
      podManifest('orphan', 'setInterval(() => {}, 1000);', { spec: { nodeName: 'doomed' } }),
    );
    const pids = await eventually('the child agent to run orphan', () => out.split('\n')[0]?.trim(), 30_000);
    const [pid] = JSON.parse(pids) as number[];
    child.kill('SIGKILL');
    await eventually('orphan’s process to be killed', () => !isAlive(pid!), 10_000);
  });

  it('stop(): no process outlives the agent', async () => {
    await cp.kubectl(['apply', '-f', '-'], podManifest('forever', 'setInterval(() => {}, 1000);'));
    await eventually(
      'forever to run',
      () => agent.pods().find((p) => p.name === 'forever' && p.running),
      30_000,
    );
    const pids = agent.liveProcesses();
    expect(pids.length).toBeGreaterThan(0);
    expect(agent.errors).toEqual([]);
    await agent.stop();
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
