// Leader election between two electors on a real API server, with short timings. A sampler checks
// every few milliseconds that the two never lead at once, through hand-overs, crashes and a partition.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { CoordinationV1Api, KubeConfig, V1MicroTime, type V1Lease } from '@kubernetes/client-node';
import { LeaderElector, type LeaderElectionOptions } from '../../operator/platform/leader-election.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { eventually } from '../support/eventually.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';

const TIMINGS = { leaseDurationMs: 2000, renewDeadlineMs: 1200, retryPeriodMs: 200 } as const;
const NAMESPACE = 'default';

/** Samples who leads every 5 ms; `both` counts samples where two electors led at once. */
class Sampler {
  both = 0;
  samples = 0;
  readonly #timer: NodeJS.Timeout;
  constructor(electors: readonly LeaderElector[]) {
    this.#timer = setInterval(() => {
      this.samples++;
      if (electors.filter((e) => e.isLeader).length > 1) this.both++;
    }, 5);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

interface Timeline {
  started: number | null;
  stopped: number | null;
}

describe('leader election', () => {
  let cp: ControlPlane | undefined;
  let kc: KubeConfig;
  let leases: CoordinationV1Api;
  let proxy: TcpProxy;
  const running: LeaderElector[] = [];
  const samplers: Sampler[] = [];

  beforeAll(async () => {
    cp = await ControlPlane.start();
    kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    leases = kc.makeApiClient(CoordinationV1Api);
    proxy = await TcpProxy.start(Number(new URL(cp.server).port));
  }, 120_000);

  afterEach(async () => {
    for (const s of samplers.splice(0)) s.stop();
    proxy.refusing = false;
    await Promise.all(running.splice(0).map((e) => e.stop()));
  });

  afterAll(async () => {
    await proxy.close();
    await cp?.stop();
  });

  function elector(
    leaseName: string,
    identity: string,
    options: Partial<LeaderElectionOptions> = {},
  ): { elector: LeaderElector; timeline: Timeline } {
    const timeline: Timeline = { started: null, stopped: null };
    const e = new LeaderElector({
      kubeConfig: kc,
      leaseName,
      namespace: NAMESPACE,
      identity,
      ...TIMINGS,
      onStartedLeading: () => (timeline.started = performance.now()),
      onStoppedLeading: () => (timeline.stopped = performance.now()),
      ...options,
    });
    running.push(e);
    return { elector: e, timeline };
  }

  function sample(...electors: LeaderElector[]): Sampler {
    const s = new Sampler(electors);
    samplers.push(s);
    return s;
  }

  const readLease = (name: string): Promise<V1Lease> =>
    leases.readNamespacedLease({ name, namespace: NAMESPACE });

  test('two candidates: exactly one leads; after it releases, the other takes over at once', async () => {
    const a = elector('le-release', 'a');
    const b = elector('le-release', 'b');
    const sampler = sample(a.elector, b.elector);
    a.elector.start();
    b.elector.start();
    const first = await eventually('a leader', () => [a, b].find((x) => x.elector.isLeader));
    const second = first === a ? b : a;
    // Both keep running for a few lease renewals; the other never leads meanwhile.
    await new Promise((r) => setTimeout(r, 1500));
    expect(first.elector.isLeader).toBe(true);
    expect(second.elector.isLeader).toBe(false);
    expect(second.elector.leader).toBe(first.elector.identity);
    let lease = await readLease('le-release');
    expect(lease.spec?.holderIdentity).toBe(first.elector.identity);
    expect(lease.spec?.leaseTransitions).toBe(0);
    expect(lease.spec?.leaseDurationSeconds).toBe(2);

    const releasedAt = performance.now();
    await first.elector.release();
    expect(first.elector.isLeader).toBe(false);
    expect(first.timeline.stopped).not.toBeNull();
    await eventually('the other to lead', () => second.elector.isLeader);
    const takeoverMs = performance.now() - releasedAt;
    // Released, not expired: the next try (retry period + jitter) takes it, well before 2 s.
    expect(takeoverMs).toBeLessThan(1000);
    lease = await readLease('le-release');
    expect(lease.spec?.holderIdentity).toBe(second.elector.identity);
    expect(lease.spec?.leaseTransitions).toBe(1);
    sampler.stop();
    expect(sampler.samples).toBeGreaterThan(100);
    expect(sampler.both).toBe(0);
  }, 20_000);

  test('after the leader is killed (stops renewing), the other takes over once the lease expires', async () => {
    const a = elector('le-killed', 'a');
    a.elector.start();
    await eventually('a to lead', () => a.elector.isLeader);
    const b = elector('le-killed', 'b');
    const sampler = sample(a.elector, b.elector);
    b.elector.start();
    await eventually('b to see a lead', () => b.elector.leader === 'a');
    expect(b.elector.isLeader).toBe(false);

    const killedAt = performance.now();
    await a.elector.stop(); // no release: the lease still names a
    expect((await readLease('le-killed')).spec?.holderIdentity).toBe('a');
    await eventually('b to lead', () => b.elector.isLeader, 10_000);
    const takeoverMs = performance.now() - killedAt;
    // b waits a lease duration (2 s) from the last renewal it saw, which was at most one retry
    // period (+ jitter) before the kill.
    expect(takeoverMs).toBeGreaterThan(TIMINGS.leaseDurationMs - 1.2 * TIMINGS.retryPeriodMs - 50);
    expect(takeoverMs).toBeLessThan(TIMINGS.leaseDurationMs + 3 * TIMINGS.retryPeriodMs + 500);
    const lease = await readLease('le-killed');
    expect(lease.spec?.holderIdentity).toBe('b');
    expect(lease.spec?.leaseTransitions).toBe(1);
    expect(b.elector.leaseTransitions).toBe(1);
    sampler.stop();
    expect(sampler.both).toBe(0);
  }, 20_000);

  test('a leader cut off from the API server steps down before the other takes over', async () => {
    const viaProxy = new KubeConfig();
    viaProxy.loadFromOptions({
      clusters: [
        {
          name: 'envtest',
          server: proxy.url,
          caData: Buffer.from(cp!.caPem).toString('base64'),
          skipTLSVerify: false,
        },
      ],
      users: [{ name: 'admin', token: cp!.token }],
      contexts: [{ name: 'envtest', cluster: 'envtest', user: 'admin' }],
      currentContext: 'envtest',
    });
    const a = elector('le-partition', 'a', { kubeConfig: viaProxy });
    a.elector.start();
    await eventually('a to lead', () => a.elector.isLeader);
    const b = elector('le-partition', 'b');
    const sampler = sample(a.elector, b.elector);
    b.elector.start();
    await eventually('b to see a lead', () => b.elector.leader === 'a');

    proxy.refusing = true;
    proxy.cut();
    await eventually('b to lead', () => b.elector.isLeader, 10_000);
    expect(a.elector.isLeader).toBe(false);
    expect(a.timeline.stopped).not.toBeNull();
    expect(b.timeline.started).not.toBeNull();
    // a stepped down (renew deadline) before b started (lease duration), with a margin.
    expect(b.timeline.started! - a.timeline.stopped!).toBeGreaterThan(300);
    sampler.stop();
    expect(sampler.both).toBe(0);

    // Back on the network, a has stopped for good: it neither leads nor disturbs b.
    proxy.refusing = false;
    await new Promise((r) => setTimeout(r, 800));
    expect(a.elector.isLeader).toBe(false);
    expect((await readLease('le-partition')).spec?.holderIdentity).toBe('b');
  }, 20_000);

  test('a leader whose lease is taken over by another writer steps down and does not overwrite it', async () => {
    const a = elector('le-intruder', 'a');
    a.elector.start();
    await eventually('a to lead', () => a.elector.isLeader);
    // Someone else (a replica with another view of time, a human with kubectl) writes the lease.
    const lease = await readLease('le-intruder');
    lease.spec = {
      holderIdentity: 'intruder',
      leaseDurationSeconds: 30,
      leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1,
      acquireTime: new V1MicroTime(),
      renewTime: new V1MicroTime(),
    };
    await leases.replaceNamespacedLease({ name: 'le-intruder', namespace: NAMESPACE, body: lease });
    await eventually('a to step down', () => a.timeline.stopped !== null, 5000);
    expect(a.elector.isLeader).toBe(false);
    await new Promise((r) => setTimeout(r, 500));
    expect((await readLease('le-intruder')).spec?.holderIdentity).toBe('intruder');
  }, 15_000);

  test('onStartedLeading gets a signal that aborts when leadership ends; release by a non-leader changes nothing', async () => {
    let signal: AbortSignal | undefined;
    const a = elector('le-signal', 'a', {
      onStartedLeading: (s) => {
        signal = s;
      },
    });
    a.elector.start();
    await eventually('a to lead', () => signal);
    const b = elector('le-signal', 'b');
    b.elector.start();
    await eventually('b to see a lead', () => b.elector.leader === 'a');
    const before = await readLease('le-signal');
    await b.elector.release();
    const after = await readLease('le-signal');
    expect(after.metadata?.resourceVersion).not.toBeUndefined();
    expect(after.spec?.holderIdentity).toBe('a');
    expect(after.spec?.leaseTransitions).toBe(before.spec?.leaseTransitions);
    expect(signal!.aborted).toBe(false);
    await a.elector.release();
    expect(signal!.aborted).toBe(true);
    expect((await readLease('le-signal')).spec?.holderIdentity).toBe('');
  }, 15_000);

  test('refuses timings that would let two leaders overlap', () => {
    const base = { kubeConfig: kc, leaseName: 'x', namespace: NAMESPACE };
    expect(
      () => new LeaderElector({ ...base, leaseDurationMs: 1000, renewDeadlineMs: 1000, retryPeriodMs: 200 }),
    ).toThrow(/leaseDurationMs \(1000\) must exceed renewDeadlineMs \(1000\)/);
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2000, retryPeriodMs: 2000 })).toThrow(
      /renewDeadlineMs \(2000\) must exceed retryPeriodMs/,
    );
    expect(new LeaderElector(base).identity).toMatch(/^.+_[0-9a-f-]{36}$/);
  });
});
