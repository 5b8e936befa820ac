// Given a job and the state of its pods, expect this status and these actions (jobset's
// table-driven style). Pure: no API server here; test/integration/ runs the same on a real one.
import { describe, expect, test } from '@jest/globals';
import {
  RunaheadJobSpecSchema,
  type RunaheadJobSpecInput,
  type RunaheadJobStatus,
} from '../core/api/v1alpha1/runahead-job.ts';
import { WorkerExit, type RunOutcome, type TerminationMessage } from '../core/api/termination-message.ts';
import { DEFAULT_OPERATOR_DEFAULTS, type JobRef } from './desired-children.ts';
import {
  SUCCESS_GRACE_MS,
  planJob,
  planInvalidJob,
  planRefusedJob,
  type ChildAction,
  type PlanInput,
} from './job-plan.ts';
import type { ObservedPod } from './observed-pods.ts';
import { MAX_MESSAGE } from './conditions.ts';

const NOW = new Date('2026-11-25T10:00:00Z');
const later = (s: number) => new Date(NOW.getTime() + s * 1000);

function jobWith(spec: Partial<RunaheadJobSpecInput> = {}): JobRef {
  return {
    name: 'demo',
    namespace: 'ns',
    uid: 'uid-1',
    spec: RunaheadJobSpecSchema.parse({
      ranks: 2,
      model: { synthetic: { preset: 'tiny' } },
      prompt: { syntheticTokens: 64 },
      ...spec,
    }),
  };
}

/** A rank pod, built up like lws's test wrappers. */
class PodBuilder {
  private p: {
    -readonly [K in keyof ObservedPod]: ObservedPod[K];
  };
  constructor(rank: number, attempt = 0) {
    this.p = {
      name: `demo-${rank}`,
      uid: `pod-${rank}-${attempt}`,
      rank,
      attempt,
      phase: 'Pending',
      ready: false,
      node: undefined,
      deleting: false,
      schedulingGates: [],
      terminated: undefined,
      report: null,
      waiting: '',
      podReason: '',
      podMessage: '',
    };
  }
  running(ready = true): this {
    this.p.phase = 'Running';
    this.p.ready = ready;
    this.p.node = 'gpu-node-1';
    return this;
  }
  failed(exitCode: number, report: TerminationMessage | null = null, at = NOW.getTime()): this {
    this.p.phase = 'Failed';
    this.p.ready = false;
    this.p.terminated = {
      exitCode,
      reason: 'Error',
      message: report ? JSON.stringify(report) : '',
      finishedAt: at,
    };
    this.p.report = report;
    return this;
  }
  succeeded(report: TerminationMessage | null): this {
    this.p.phase = 'Succeeded';
    this.p.ready = false;
    this.p.terminated = { exitCode: 0, reason: 'Completed', message: '', finishedAt: NOW.getTime() };
    this.p.report = report;
    return this;
  }
  waitingFor(reason: string): this {
    this.p.waiting = reason;
    return this;
  }
  deleting(): this {
    this.p.deleting = true;
    return this;
  }
  gated(...gates: string[]): this {
    this.p.schedulingGates = gates;
    return this;
  }
  obj(): ObservedPod {
    return { ...this.p };
  }
}
const pod = (rank: number, attempt = 0) => new PodBuilder(rank, attempt);

const outcome: RunOutcome = {
  mode: 'runahead',
  partition: 'even',
  ttftMs: 123.4,
  contextLength: 64,
  boundaries: [0, 32, 64],
  firstToken: 7,
  firstTokenText: ' the',
  tokens: [7],
  text: ' the',
  slotMs: 2,
  ranks: [0, 1].map((rank) => ({
    rank,
    chunk: [rank * 32, rank * 32 + 32] as [number, number],
    computeMs: 50,
    waitMs: rank * 10,
    sendMs: 5,
    criticalSendMs: rank === 0 ? 2 : 0,
    bytesSent: 1000,
    bytesReceived: rank * 1000,
    peakRssBytes: 1 << 20,
    startMs: 0,
    endMs: 120,
    timeline: 'ccccwwcc',
  })),
};

function input(over: Partial<PlanInput> = {}): PlanInput {
  return {
    job: jobWith(),
    generation: 1,
    status: undefined,
    pods: [],
    serviceExists: true,
    configMapExists: true,
    deletedRanks: [],
    now: NOW,
    defaults: DEFAULT_OPERATOR_DEFAULTS,
    ...over,
  };
}

const kinds = (actions: readonly ChildAction[]) =>
  actions.map((a) =>
    a.kind === 'createPod'
      ? `createPod ${a.object.metadata?.name}`
      : a.kind === 'deletePod' || a.kind === 'ungatePod'
        ? `${a.kind} ${a.name}`
        : a.kind,
  );
const condition = (s: RunaheadJobStatus, type: string) => s.conditions?.find((c) => c.type === type);

describe('planJob', () => {
  test('a new job gets its Service, ConfigMap and every rank pod, in rank order', () => {
    const plan = planJob(input({ job: jobWith({ ranks: 3 }), serviceExists: false, configMapExists: false }));
    expect(kinds(plan.actions)).toEqual([
      'createService',
      'createConfigMap',
      'createPod demo-0',
      'createPod demo-1',
      'createPod demo-2',
    ]);
    expect(plan.status.phase).toBe('Pending');
    expect(plan.status.startTime).toBe('2026-11-25T10:00:00Z');
    expect(plan.status.boundaries).toEqual([0, 22, 43, 64]);
    expect(plan.status.restarts).toBe(0);
    expect(plan.events.map((e) => e.reason)).toEqual(['PodsCreated']);
    expect(condition(plan.status, 'RanksReady')).toMatchObject({
      status: 'False',
      reason: 'WaitingForRanks',
      message: '0 of 3 rank(s) ready',
    });
  });

  test('pods running but not all ready: Running, RanksReady False; all ready: RanksReady True once', () => {
    const some = planJob(input({ pods: [pod(0).running().obj(), pod(1).running(false).obj()] }));
    expect(some.status.phase).toBe('Running');
    expect(some.actions).toEqual([]);
    expect(condition(some.status, 'RanksReady')?.status).toBe('False');
    const all = planJob(
      input({ status: some.status, pods: [pod(0).running().obj(), pod(1).running().obj()] }),
    );
    expect(condition(all.status, 'RanksReady')).toMatchObject({ status: 'True', reason: 'AllRanksReady' });
    expect(all.events.map((e) => e.reason)).toEqual(['AllRanksReady']);
    const again = planJob(
      input({ status: all.status, pods: [pod(0).running().obj(), pod(1).running().obj()] }),
    );
    expect(again.events).toEqual([]);
    expect(again.status).toEqual(all.status);
  });

  test('a rank stuck before starting says why in RanksReady and in its rank status', () => {
    const plan = planJob(
      input({
        pods: [
          pod(0).running().obj(),
          pod(1).waitingFor('ImagePullBackOff: Back-off pulling image "w:1"').obj(),
        ],
      }),
    );
    expect(condition(plan.status, 'RanksReady')?.message).toBe(
      '1 of 2 rank(s) ready; rank 1 (pod demo-1) is waiting: ImagePullBackOff: Back-off pulling image "w:1"',
    );
    expect(plan.status.ranks?.[1]?.message).toBe('ImagePullBackOff: Back-off pulling image "w:1"');
  });

  test('rank 0 succeeding with a result completes the job with TTFT, split and per-rank timings', () => {
    const plan = planJob(
      input({
        pods: [pod(0).succeeded({ v: 1, ok: true, rank: 0, result: outcome }).obj(), pod(1).running().obj()],
      }),
    );
    expect(plan.status.phase).toBe('Succeeded');
    expect(plan.status).toMatchObject({
      ttftMs: 123.4,
      firstToken: 7,
      firstTokenText: ' the',
      boundaries: [0, 32, 64],
      contextLength: 64,
    });
    expect(plan.status.completionTime).toBe('2026-11-25T10:00:00Z');
    expect(plan.status.ranks?.[1]).toMatchObject({
      rank: 1,
      chunk: [32, 64],
      waitMs: 10,
      timeline: 'ccccwwcc',
    });
    // Rank 0's send time that delayed the first token, beside its total send time.
    expect(plan.status.ranks?.[0]).toMatchObject({ sendMs: 5, criticalSendMs: 2 });
    expect(condition(plan.status, 'Complete')).toMatchObject({
      status: 'True',
      reason: 'FirstTokenProduced',
    });
    // The other ranks exit on their own; those still running after the grace period are deleted.
    expect(plan.actions).toEqual([]);
    expect(plan.requeueAfterMs).toBe(SUCCESS_GRACE_MS);
    const running = [pod(0).succeeded(null).obj(), pod(1).running().obj()];
    const early = planJob(input({ status: plan.status, now: later(10), pods: running }));
    expect(early.actions).toEqual([]);
    expect(early.requeueAfterMs).toBe(SUCCESS_GRACE_MS - 10_000);
    const late = planJob(input({ status: plan.status, now: later(31), pods: running }));
    expect(kinds(late.actions)).toEqual(['deletePod demo-1']);
    expect(plan.finished).toMatchObject({ result: 'succeeded' });
  });

  test('a retriable rank failure restarts the whole group and counts the restart', () => {
    const failedReport: TerminationMessage = {
      v: 1,
      ok: false,
      rank: 1,
      retriable: true,
      error: 'rank 1: peer rank 0 went silent',
    };
    const plan = planJob(
      input({ pods: [pod(0).running().obj(), pod(1).failed(WorkerExit.Failed, failedReport).obj()] }),
    );
    expect(plan.status.restarts).toBe(1);
    expect(plan.status.phase).toBe('Pending');
    expect(kinds(plan.actions)).toEqual(['deletePod demo-0', 'deletePod demo-1']);
    expect(plan.events.map((e) => e.reason)).toEqual(['RankFailed', 'GroupRestarting']);
    expect(condition(plan.status, 'RanksReady')?.message).toMatch(
      /peer rank 0 went silent; restarting the rank group \(restart 1 of at most 3\)/,
    );
    expect(plan.status.ranks?.[1]?.message).toBe('rank 1: peer rank 0 went silent');
  });

  test('the next attempt waits until the old pods are gone, then creates a fresh group', () => {
    const status: RunaheadJobStatus = { restarts: 1, startTime: '2026-11-25T10:00:00Z' };
    const waiting = planJob(
      input({ status, pods: [pod(0, 0).running().deleting().obj(), pod(1, 0).failed(1).obj()] }),
    );
    expect(kinds(waiting.actions)).toEqual(['deletePod demo-1']);
    expect(waiting.requeueAfterMs).toBe(1000);
    const fresh = planJob(input({ status, pods: [] }));
    expect(kinds(fresh.actions)).toEqual(['createPod demo-0', 'createPod demo-1']);
    const created = fresh.actions[0];
    expect(created?.kind === 'createPod' && created.object.metadata?.labels?.['runahead.dev/attempt']).toBe(
      '1',
    );
  });

  test('after backoffLimit restarts the job fails and names the rank and the cause', () => {
    const plan = planJob(
      input({
        job: jobWith({ backoffLimit: 2 }),
        status: { restarts: 2 },
        pods: [
          pod(0, 2)
            .failed(137, null, NOW.getTime() - 5)
            .obj(),
          pod(1, 2).failed(1, null).obj(),
        ],
      }),
    );
    expect(plan.status.phase).toBe('Failed');
    expect(condition(plan.status, 'Failed')).toMatchObject({ reason: 'BackoffLimitExceeded' });
    expect(condition(plan.status, 'Failed')?.message).toBe(
      'rank 0 (pod demo-0) exited with code 137 (Error); the rank group was restarted 2 time(s), spec.backoffLimit is 2',
    );
    expect(plan.finished).toMatchObject({ result: 'failed', reason: 'BackoffLimitExceeded' });
  });

  test('a configuration error fails at once, without restarts', () => {
    const report: TerminationMessage = {
      v: 1,
      ok: false,
      rank: 0,
      retriable: false,
      error: 'rank 0: model: checkpoint directory /models/nope does not exist',
    };
    const plan = planJob(
      input({ pods: [pod(0).failed(WorkerExit.ConfigError, report).obj(), pod(1).running().obj()] }),
    );
    expect(plan.status.phase).toBe('Failed');
    expect(plan.status.restarts).toBe(0);
    expect(condition(plan.status, 'Failed')).toMatchObject({ reason: 'ConfigurationError' });
    expect(condition(plan.status, 'Failed')?.message).toMatch(
      /checkpoint directory \/models\/nope does not exist/,
    );
    expect(kinds(plan.actions)).toEqual(['deletePod demo-1']);
  });

  test('exit code 2 without a message is a configuration error too', () => {
    const plan = planJob(
      input({ pods: [pod(0).failed(WorkerExit.ConfigError).obj(), pod(1).running().obj()] }),
    );
    expect(condition(plan.status, 'Failed')?.reason).toBe('ConfigurationError');
  });

  test('a pod deleted from a running group is a failure of its rank', () => {
    const plan = planJob(input({ pods: [pod(0).running().obj()], deletedRanks: [1] }));
    expect(plan.status.restarts).toBe(1);
    expect(plan.events[0]?.message).toBe('the pod of rank 1 was deleted');
    const terminating = planJob(input({ pods: [pod(0).running().obj(), pod(1).running().deleting().obj()] }));
    expect(terminating.status.restarts).toBe(1);
  });

  test('the active deadline fails the job and deletes its pods; before it, a requeue is asked for then', () => {
    const job = jobWith({ activeDeadlineSeconds: 60 });
    const status = { startTime: '2026-11-25T10:00:00Z' };
    const pods = [pod(0).running().obj(), pod(1).running().obj()];
    const before = planJob(input({ job, status, pods, now: later(20) }));
    expect(before.requeueAfterMs).toBe(40_000);
    const after = planJob(input({ job, status, pods, now: later(61) }));
    expect(after.status.phase).toBe('Failed');
    expect(condition(after.status, 'Failed')?.reason).toBe('DeadlineExceeded');
    expect(kinds(after.actions)).toEqual(['deletePod demo-0', 'deletePod demo-1']);
  });

  test('suspend deletes the pods and clears startTime; resume creates them again', () => {
    const pods = [pod(0).running().obj(), pod(1).running().obj()];
    const suspended = planJob(input({ job: jobWith({ suspend: true }), status: { startTime: 'x' }, pods }));
    expect(suspended.status.phase).toBe('Suspended');
    expect(suspended.status.startTime).toBeUndefined();
    expect(kinds(suspended.actions)).toEqual(['deletePod demo-0', 'deletePod demo-1']);
    expect(condition(suspended.status, 'Suspended')).toMatchObject({
      status: 'True',
      reason: 'JobSuspended',
    });
    const resumed = planJob(input({ status: suspended.status, pods: [], now: later(30) }));
    expect(condition(resumed.status, 'Suspended')).toMatchObject({ status: 'False', reason: 'JobResumed' });
    expect(resumed.status.startTime).toBe('2026-11-25T10:00:30Z');
    expect(kinds(resumed.actions)).toEqual(['createPod demo-0', 'createPod demo-1']);
    expect(resumed.events.map((e) => e.reason)).toEqual(['JobResumed', 'PodsCreated']);
  });

  test('a finished job is deleted when its TTL runs out, not before', () => {
    const job = jobWith({ ttlSecondsAfterFinished: 30 });
    const done = planJob(
      input({ job, pods: [pod(0).succeeded({ v: 1, ok: true, rank: 0, result: outcome }).obj()] }),
    );
    expect(done.requeueAfterMs).toBe(30_000);
    const early = planJob(input({ job, status: done.status, now: later(10) }));
    expect(early.actions).toEqual([]);
    expect(early.requeueAfterMs).toBe(20_000);
    const expired = planJob(input({ job, status: done.status, now: later(31) }));
    expect(kinds(expired.actions)).toEqual(['deleteJob']);
  });

  test('rank 0 ending without a result is a failure', () => {
    const plan = planJob(input({ pods: [pod(0).succeeded(null).obj(), pod(1).running().obj()] }));
    expect(plan.status.restarts).toBe(1);
    expect(plan.events[0]?.message).toBe('rank 0 (pod demo-0) exited without a result');
  });

  test('an invalid spec fails the job once, naming the field', () => {
    const plan = planInvalidJob(undefined, 3, 'spec.ranks: must be ≥ 1', [pod(0).running().obj()], NOW);
    expect(plan.status.phase).toBe('Failed');
    expect(condition(plan.status, 'Failed')).toMatchObject({
      reason: 'InvalidSpec',
      message: 'invalid spec: spec.ranks: must be ≥ 1',
    });
    expect(kinds(plan.actions)).toEqual(['deletePod demo-0']);
    const again = planInvalidJob(plan.status, 3, 'spec.ranks: must be ≥ 1', [], NOW);
    expect(again.events).toEqual([]);
    expect(again.finished).toBeNull();
  });

  test('a child the API server refused fails the job once (ChildRejected), its message bounded', () => {
    const echo = `the API server refused rank pod demo-0: ${'x'.repeat(1 << 20)}`;
    const plan = planRefusedJob(undefined, 2, 'ChildRejected', echo, [pod(0).running().obj()], NOW);
    expect(plan.status.phase).toBe('Failed');
    const failed = condition(plan.status, 'Failed');
    expect(failed?.reason).toBe('ChildRejected');
    expect(failed?.message).toHaveLength(MAX_MESSAGE);
    expect(failed?.message.startsWith('the API server refused rank pod demo-0: xxx')).toBe(true);
    expect(plan.events).toEqual([{ type: 'Warning', reason: 'ChildRejected', message: failed?.message }]);
    expect(plan.finished).toMatchObject({ result: 'failed', reason: 'ChildRejected' });
    expect(kinds(plan.actions)).toEqual(['deletePod demo-0']);
    expect(planRefusedJob(plan.status, 2, 'ChildRejected', echo, [], NOW).events).toEqual([]);
  });

  describe('gang (spec.placement.gang)', () => {
    const gang = 'runahead.dev/gang';
    const placed = () => jobWith({ ranks: 3, placement: {} });

    test('rank pods are created gated; the gate is lifted only once every rank pod exists', () => {
      const first = planJob(input({ job: placed() }));
      const created = first.actions.flatMap((a) => (a.kind === 'createPod' ? [a.object] : []));
      expect(created.map((p) => p.spec?.schedulingGates)).toEqual([
        [{ name: gang }],
        [{ name: gang }],
        [{ name: gang }],
      ]);
      // Two of three seen (the cache lags, or a create was refused for now): the gate holds.
      const partial = planJob(
        input({
          job: placed(),
          status: first.status,
          pods: [pod(0).gated(gang).obj(), pod(1).gated(gang).obj()],
        }),
      );
      expect(kinds(partial.actions)).toEqual(['createPod demo-2']);
      expect(condition(partial.status, 'RanksReady')?.message).toBe(
        '0 of 3 rank(s) ready; 2 of 3 rank pod(s) exist; the group is held at scheduling gate(s) runahead.dev/gang until all do',
      );
      expect(partial.status.groupReleaseTime).toBeUndefined();
      const all = planJob(
        input({
          job: placed(),
          status: partial.status,
          pods: [pod(0).gated(gang).obj(), pod(1).gated(gang).obj(), pod(2).gated(gang).obj()],
        }),
      );
      expect(kinds(all.actions)).toEqual(['ungatePod demo-0', 'ungatePod demo-1', 'ungatePod demo-2']);
      expect(all.actions[0]).toMatchObject({ kind: 'ungatePod', uid: 'pod-0-0' });
      expect(all.status.groupReleaseTime).toBeUndefined();
    });

    test("another controller's gate (Kueue's admission) is left alone and holds the startup clock", () => {
      const kueue = 'kueue.x-k8s.io/admission';
      const plan = planJob(
        input({
          job: placed(),
          status: {},
          pods: [0, 1, 2].map((r) => pod(r).gated(kueue).obj()),
          now: later(10_000),
        }),
      );
      expect(kinds(plan.actions)).toEqual([]);
      expect(plan.status.groupReleaseTime).toBeUndefined();
      expect(plan.status.phase).toBe('Pending');
      expect(condition(plan.status, 'RanksReady')?.message).toContain(
        '3 of 3 rank pod(s) held at scheduling gate(s) kueue.x-k8s.io/admission',
      );
    });

    test('ungated and all there: the group is released once, the clock set then and kept', () => {
      const pods = [0, 1, 2].map((r) => pod(r).obj());
      const released = planJob(input({ job: placed(), status: {}, pods }));
      expect(released.status.groupReleaseTime).toBe('2026-11-25T10:00:00Z');
      expect(released.events).toEqual([
        {
          type: 'Normal',
          reason: 'GroupReleased',
          message:
            'all 3 rank pod(s) exist with no scheduling gate; each must be running within spec.startupTimeoutSeconds (900 s)',
        },
      ]);
      const later5 = planJob(input({ job: placed(), status: released.status, pods, now: later(5) }));
      expect(later5.status.groupReleaseTime).toBe('2026-11-25T10:00:00Z');
      expect(later5.events).toEqual([]);
      expect(later5.requeueAfterMs).toBe(895_000); // the default startupTimeoutSeconds, 900, less 5 s
    });

    test('suspend and restart stop the startup clock', () => {
      const status: RunaheadJobStatus = { groupReleaseTime: '2026-11-25T09:59:00Z' };
      expect(
        planJob(input({ job: jobWith({ suspend: true }), status })).status.groupReleaseTime,
      ).toBeUndefined();
      const restarted = planJob(input({ status, pods: [pod(0).running().obj(), pod(1).failed(1).obj()] }));
      expect(restarted.status.restarts).toBe(1);
      expect(restarted.status.groupReleaseTime).toBeUndefined();
    });
  });

  describe('startupTimeoutSeconds', () => {
    const unschedulable =
      'Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available';
    const released = (secondsAgo: number): RunaheadJobStatus => ({
      groupReleaseTime: new Date(NOW.getTime() - secondsAgo * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    });

    test('a rank still pending after the timeout fails the group with the scheduler’s reason; it restarts', () => {
      const plan = planJob(
        input({
          job: jobWith({ startupTimeoutSeconds: 30 }),
          status: released(31),
          pods: [pod(0).running(false).obj(), pod(1).waitingFor(unschedulable).obj()],
        }),
      );
      expect(plan.status.restarts).toBe(1);
      expect(kinds(plan.actions)).toEqual(['deletePod demo-0', 'deletePod demo-1']);
      expect(condition(plan.status, 'RanksReady')).toMatchObject({
        reason: 'GroupRestarting',
        message: `rank 1 (pod demo-1) was not running 30 s after its group was released to the scheduler (spec.startupTimeoutSeconds): ${unschedulable}; restarting the rank group (restart 1 of at most 3)`,
      });
      expect(plan.status.ranks?.[1]?.message).toContain('Insufficient nvidia.com/gpu');
    });

    test('it counts against backoffLimit: the last allowed attempt fails the job with the reason', () => {
      const plan = planJob(
        input({
          job: jobWith({ startupTimeoutSeconds: 30, backoffLimit: 1 }),
          status: { ...released(60), restarts: 1 },
          pods: [
            pod(0, 1).waitingFor('ImagePullBackOff: Back-off pulling image "w:1"').obj(),
            pod(1, 1).running().obj(),
          ],
        }),
      );
      expect(plan.status.phase).toBe('Failed');
      expect(condition(plan.status, 'Failed')).toMatchObject({
        reason: 'BackoffLimitExceeded',
        message:
          'rank 0 (pod demo-0) was not running 30 s after its group was released to the scheduler (spec.startupTimeoutSeconds): ImagePullBackOff: Back-off pulling image "w:1"; the rank group was restarted 1 time(s), spec.backoffLimit is 1',
      });
      expect(kinds(plan.actions)).toEqual(['deletePod demo-0', 'deletePod demo-1']);
    });

    test('before the timeout: a requeue at its end; every rank running: no clock at all', () => {
      const job = jobWith({ startupTimeoutSeconds: 30 });
      const early = planJob(
        input({
          job,
          status: released(10),
          pods: [pod(0).running().obj(), pod(1).waitingFor(unschedulable).obj()],
        }),
      );
      expect(early.status.restarts).toBe(0);
      expect(early.requeueAfterMs).toBe(20_000);
      const running = planJob(
        input({
          job,
          status: released(3600),
          pods: [pod(0).running(false).obj(), pod(1).running(false).obj()],
        }),
      );
      expect(running.actions).toEqual([]);
      expect(running.requeueAfterMs).toBeNull();
    });
  });

  test("a pod group's PodGroup is created before the pods, while the group is incomplete", () => {
    const job = jobWith({ ranks: 2, placement: { podGroup: { scheduler: 'Coscheduling' } } });
    const plan = planJob(input({ job, status: { restarts: 1 } }));
    expect(kinds(plan.actions)).toEqual(['createPodGroup', 'createPod demo-0', 'createPod demo-1']);
    expect(plan.actions[0]).toMatchObject({
      kind: 'createPodGroup',
      scheduler: 'Coscheduling',
      object: {
        apiVersion: 'scheduling.x-k8s.io/v1alpha1',
        kind: 'PodGroup',
        metadata: { name: 'demo-a1', namespace: 'ns' },
        spec: { minMember: 2, scheduleTimeoutSeconds: 900 },
      },
    });
    const complete = planJob(
      input({ job, status: { restarts: 1 }, pods: [pod(0, 1).running().obj(), pod(1, 1).running().obj()] }),
    );
    expect(kinds(complete.actions)).toEqual([]);
  });

  test('--gang-capacity-check: the gate stays while no domain has room, and is lifted once one has', () => {
    const gang = 'runahead.dev/gang';
    const job = jobWith({
      ranks: 2,
      executionProvider: 'cuda',
      placement: { topologyKey: 'rack' },
    });
    const pods = [pod(0).gated(gang).obj(), pod(1).gated(gang).obj()];
    const nodes = [{ name: 'a1', labels: { rack: 'a' }, gpus: { 'nvidia.com/gpu': 2 }, cordoned: false }];
    const busy = {
      namespace: 'ns',
      job: 'other',
      node: 'a1',
      gpus: { 'nvidia.com/gpu': 1 },
      exclusiveKey: undefined,
    };
    const held = planJob(input({ job, status: {}, pods, capacity: { nodes, usage: [busy] } }));
    expect(kinds(held.actions)).toEqual([]);
    expect(held.requeueAfterMs).toBe(5000);
    expect(condition(held.status, 'RanksReady')?.message).toBe(
      '0 of 2 rank(s) ready; the group is held at scheduling gate runahead.dev/gang until it fits: no rack domain has room for 2 rank(s) of 1 nvidia.com/gpu each (at most 1 fit)',
    );
    const free = planJob(input({ job, status: {}, pods, capacity: { nodes, usage: [] } }));
    expect(kinds(free.actions)).toEqual(['ungatePod demo-0', 'ungatePod demo-1']);
  });
});
