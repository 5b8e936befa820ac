// Given a server and the state of its pods, expect these actions and this status (jobset's
// table-driven style). Pure: no API server here.
import { describe, expect, test } from '@jest/globals';
import type { V1Pod } from '@kubernetes/client-node';
import {
  RunaheadServerSpecSchema,
  type RunaheadServerSpecInput,
  type RunaheadServerStatus,
} from '../core/api/v1alpha1/runahead-server.ts';
import { GANG_SCHEDULING_GATE } from '../core/api/v1alpha1/names.ts';
import { DEFAULT_OPERATOR_DEFAULTS } from './desired-children.ts';
import { desiredGroupPods, serverRevision, type ServerRef } from './server-children.ts';
import { observeServerPod, planServer, type ServerAction, type ServerPod } from './server-plan.ts';

const NOW = new Date('2026-12-02T10:00:00Z');

function serverWith(spec: Partial<RunaheadServerSpecInput> = {}): ServerRef {
  return {
    name: 'chat',
    namespace: 'ns',
    uid: 'uid-1',
    spec: RunaheadServerSpecSchema.parse({
      ranks: 2,
      replicas: 2,
      model: { synthetic: { preset: 'tiny' } },
      executionProvider: 'cpu',
      ...spec,
    }),
  };
}

/** Group `g`'s pods (attempt `attempt`) as the desired ones, observed with `state` (ready unless told). */
function groupPods(
  server: ServerRef,
  g: number,
  state: (pod: V1Pod) => { phase?: string; ready?: boolean; gone?: boolean } = () => ({}),
  revisionOf: ServerRef = server,
  attempt = 0,
): ServerPod[] {
  return desiredGroupPods(revisionOf, g, attempt, serverRevision(revisionOf.spec), DEFAULT_OPERATOR_DEFAULTS)
    .map((pod) => {
      const s = state(pod);
      if (s.gone) return null;
      // A fresh object from desiredGroupPods: observed in place.
      pod.metadata!.uid = `uid-${pod.metadata!.name!}`;
      pod.status = {
        phase: s.phase ?? 'Running',
        conditions: [{ type: 'Ready', status: (s.ready ?? true) ? 'True' : 'False' }],
      };
      return observeServerPod(pod);
    })
    .filter((p): p is ServerPod => p !== null);
}

const SERVICES = new Set(['chat', 'chat-g0-ranks', 'chat-g1-ranks']);

function plan(
  server: ServerRef,
  pods: readonly ServerPod[],
  status?: RunaheadServerStatus,
  services: ReadonlySet<string> = SERVICES,
) {
  return planServer({
    server,
    generation: 3,
    status,
    pods,
    services,
    ttftMs: null,
    now: NOW,
    defaults: DEFAULT_OPERATOR_DEFAULTS,
  });
}

const summary = (actions: readonly ServerAction[]) =>
  actions.map((a) =>
    a.kind === 'createPod' || a.kind === 'createService' || a.kind === 'createPodGroup'
      ? `${a.kind} ${a.object.metadata!.name!}`
      : `${a.kind} ${a.name}`,
  );

describe('planServer', () => {
  test('a new server: its Services, then every group whole — ranks in --serve mode and a front', () => {
    const server = serverWith();
    const p = plan(server, [], undefined, new Set());
    expect(summary(p.actions)).toEqual([
      'createService chat',
      'createService chat-g0-ranks',
      'createService chat-g1-ranks',
      ...['chat-g0-0', 'chat-g0-1', 'chat-g0-front', 'chat-g1-0', 'chat-g1-1', 'chat-g1-front'].map(
        (n) => `createPod ${n}`,
      ),
    ]);
    // Every Service carries the server's label: the controller's cache finds them by it.
    for (const a of p.actions)
      if (a.kind === 'createService')
        expect(a.object.metadata?.labels).toMatchObject({ 'runahead.dev/server': 'chat' });
    const pods = p.actions.flatMap((a) => (a.kind === 'createPod' ? [a.object] : []));
    const rank0 = pods.find((x) => x.metadata!.name === 'chat-g1-0')!;
    const args = rank0.spec!.containers[0]!.args!;
    expect(args).toContain('--serve');
    expect(args).not.toContain('--prompt-tokens');
    expect(args.join(' ')).toContain(
      '--peers chat-g1-0.chat-g1-ranks.ns.svc.cluster.local:50051,chat-g1-1.chat-g1-ranks.ns.svc.cluster.local:50051',
    );
    expect(rank0.spec!.subdomain).toBe('chat-g1-ranks');
    expect(rank0.metadata!.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'RunaheadServer', name: 'chat', uid: 'uid-1', controller: true }),
    ]);
    const front = pods.find((x) => x.metadata!.name === 'chat-g1-front')!;
    const c = front.spec!.containers[0]!;
    expect(c.args!.slice(0, 3)).toEqual([
      'serve',
      '--ranks-at',
      'chat-g1-0.chat-g1-ranks.ns.svc.cluster.local:50051,chat-g1-1.chat-g1-ranks.ns.svc.cluster.local:50051',
    ]);
    expect(c.args!.join(' ')).toMatch(/--route split .*--served-model-name chat$/);
    expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(JSON.stringify(c.resources)).not.toContain('gpu');
    expect(front.metadata!.labels).not.toHaveProperty(['runahead.dev/rank']);
    expect(front.metadata!.labels).toMatchObject({ 'runahead.dev/server-role': 'front' });
    expect(p.status).toMatchObject({
      replicas: 2,
      readyReplicas: 0,
      endpoint: 'http://chat.ns.svc.cluster.local:8000/v1/completions',
    });
    expect(p.events.map((e) => e.reason)).toEqual(['GroupStarted', 'GroupStarted']);
  });

  test('every pod ready: nothing to do, the server is Available and Updated', () => {
    const server = serverWith();
    const p = plan(server, [...groupPods(server, 0), ...groupPods(server, 1)]);
    expect(p.actions).toEqual([]);
    expect(p.status).toMatchObject({
      readyReplicas: 2,
      updatedReplicas: 2,
      revision: serverRevision(server.spec),
    });
    expect(p.status.conditions?.map((c) => [c.type, c.status, c.reason])).toEqual([
      ['Available', 'True', 'GroupsReady'],
      ['Updated', 'True', 'GroupsUpdated'],
    ]);
  });

  test('a failed rank pod restarts its whole group, and only that group', () => {
    const server = serverWith();
    const pods = [
      ...groupPods(server, 0),
      ...groupPods(server, 1, (pod) =>
        pod.metadata!.name === 'chat-g1-1' ? { phase: 'Failed', ready: false } : {},
      ),
    ];
    const p = plan(server, pods);
    expect(summary(p.actions)).toEqual([
      'deletePod chat-g1-0',
      'deletePod chat-g1-1',
      'deletePod chat-g1-front',
    ]);
    expect(p.status.groups).toEqual([
      expect.objectContaining({ group: 0, ready: true, restarts: 0 }),
      expect.objectContaining({ group: 1, ready: false, restarts: 1 }),
    ]);
    expect(p.events).toEqual([expect.objectContaining({ type: 'Warning', reason: 'RankFailed' })]);
    expect(p.restarted).toEqual([{ group: 1, reason: 'RankFailed' }]);
    expect(p.status.conditions?.find((c) => c.type === 'Available')?.status).toBe('True');
  });

  test('a rank pod deleted from a running group restarts the group; the next attempt is labelled', () => {
    const server = serverWith({ replicas: 1 });
    const pods = groupPods(server, 0, (pod) => ({ gone: pod.metadata!.name === 'chat-g0-0' }));
    const p = plan(server, pods);
    expect(summary(p.actions)).toEqual(['deletePod chat-g0-1', 'deletePod chat-g0-front']);
    expect(p.events[0]).toMatchObject({
      reason: 'RankPodDeleted',
      message: expect.stringContaining('chat-g0-0'),
    });
    expect(p.restarted).toEqual([{ group: 0, reason: 'RankPodDeleted' }]);
    // Once every old pod is gone, the group comes back whole, as attempt 1.
    const again = plan(server, [], p.status);
    const created = again.actions.flatMap((a) => (a.kind === 'createPod' ? [a.object] : []));
    expect(created.map((x) => x.metadata!.name)).toEqual(['chat-g0-0', 'chat-g0-1', 'chat-g0-front']);
    expect(created[0]!.metadata!.labels).toMatchObject({ 'runahead.dev/attempt': '1' });
    expect(again.status.groups?.[0]?.restarts).toBe(1);
    expect(again.restarted).toEqual([]);
  });

  test('a group not started yet gets back only the pod missing from it (a create the cache has not seen)', () => {
    const server = serverWith({ replicas: 1 });
    const pods = groupPods(server, 0, (pod) =>
      pod.metadata!.name === 'chat-g0-front' ? { gone: true } : { phase: 'Pending', ready: false },
    );
    expect(summary(plan(server, pods).actions)).toEqual(['createPod chat-g0-front']);
  });

  test('a spec change rolls one ready group at a time (maxUnavailable 1)', () => {
    const old = serverWith();
    const changed = serverWith({ dtype: 'float32' });
    expect(serverRevision(changed.spec)).not.toBe(serverRevision(old.spec));
    const both = [...groupPods(changed, 0, () => ({}), old), ...groupPods(changed, 1, () => ({}), old)];
    const first = plan(changed, both);
    expect(summary(first.actions)).toEqual([
      'deletePod chat-g0-0',
      'deletePod chat-g0-1',
      'deletePod chat-g0-front',
    ]);
    expect(first.status).toMatchObject({ readyReplicas: 2, updatedReplicas: 0 });
    expect(first.status.conditions?.find((c) => c.type === 'Updated')?.reason).toBe('RollingUpdate');
    // Group 0 loading the new revision: group 1 waits.
    const loading = [
      ...groupPods(changed, 0, () => ({ ready: false })),
      ...groupPods(changed, 1, () => ({}), old),
    ];
    expect(plan(changed, loading).actions).toEqual([]);
    // Group 0 ready at the new revision: group 1 goes.
    const next = [...groupPods(changed, 0), ...groupPods(changed, 1, () => ({}), old)];
    expect(summary(plan(changed, next).actions)).toEqual([
      'deletePod chat-g1-0',
      'deletePod chat-g1-1',
      'deletePod chat-g1-front',
    ]);
  });

  test('a change of ranks rolls the groups as any spec change does: no pod of the new size is missing from an old group', () => {
    const old = serverWith();
    const bigger = serverWith({ ranks: 3 });
    const both = [...groupPods(bigger, 0, () => ({}), old), ...groupPods(bigger, 1, () => ({}), old)];
    const first = plan(bigger, both);
    expect(first.events.map((e) => e.reason)).toEqual(['RollingUpdate']);
    expect(first.restarted).toEqual([]);
    expect(summary(first.actions)).toEqual([
      'deletePod chat-g0-0',
      'deletePod chat-g0-1',
      'deletePod chat-g0-front',
    ]);
    expect(first.status).toMatchObject({ readyReplicas: 2, updatedReplicas: 0 });
    // Group 0 gone: created again with 3 ranks; group 1 keeps serving meanwhile.
    const next = plan(
      bigger,
      groupPods(bigger, 1, () => ({}), old),
    );
    expect(summary(next.actions)).toEqual([
      'createPod chat-g0-0',
      'createPod chat-g0-1',
      'createPod chat-g0-2',
      'createPod chat-g0-front',
    ]);
    expect(next.restarted).toEqual([]);
  });

  test('replicas, maxUnavailable and the Service change no pod (same revision); fewer replicas delete groups', () => {
    const server = serverWith();
    const resized = serverWith({ replicas: 1, maxUnavailable: 2, service: { port: 9000 } });
    expect(serverRevision(resized.spec)).toBe(serverRevision(server.spec));
    const p = plan(resized, [...groupPods(server, 0), ...groupPods(server, 1)]);
    expect(summary(p.actions)).toEqual([
      'deletePod chat-g1-0',
      'deletePod chat-g1-1',
      'deletePod chat-g1-front',
    ]);
    expect(p.status.endpoint).toBe('http://chat.ns.svc.cluster.local:9000/v1/completions');
  });

  test("the gang's gate is lifted once every rank pod of the group exists", () => {
    const server = serverWith({ replicas: 1, placement: { gang: true } });
    const pods = groupPods(server, 0, () => ({ phase: 'Pending', ready: false }));
    expect(pods.filter((x) => x.schedulingGates.includes(GANG_SCHEDULING_GATE))).toHaveLength(2);
    expect(summary(plan(server, pods).actions)).toEqual(['ungatePod chat-g0-0', 'ungatePod chat-g0-1']);
    const partial = pods.filter((x) => x.name !== 'chat-g0-1');
    expect(summary(plan(server, partial).actions)).toEqual(['createPod chat-g0-1']);
  });

  test("a server that breaks the admin's limits gets no pod, and says which limit", () => {
    const server = serverWith({
      model: { checkpoint: { volume: { hostPath: { path: '/data/models' } } } },
    });
    const p = plan(server, [], undefined, new Set());
    expect(p.actions).toEqual([]);
    const available = p.status.conditions?.find((c) => c.type === 'Available');
    expect(available).toMatchObject({ status: 'False', reason: 'PolicyViolation' });
    expect(available?.message).toMatch(/hostPath/);
    expect(p.events).toEqual([expect.objectContaining({ type: 'Warning', reason: 'PolicyViolation' })]);
    // Told once: the next reconcile records no second event.
    expect(plan(server, [], p.status, new Set()).events).toEqual([]);
  });
});

describe('planServer with placement.podGroup', () => {
  // gang off: the gate's ungating is tested above, and would only add lines here.
  const volcano = (spec: Partial<RunaheadServerSpecInput> = {}) =>
    serverWith({ replicas: 1, placement: { gang: false, podGroup: { scheduler: 'Volcano' } }, ...spec });

  test('a new group: its PodGroup of the ranks, owned by the server, before the pods that name it', () => {
    const server = volcano();
    const p = plan(server, []);
    expect(summary(p.actions)).toEqual([
      'createPodGroup chat-g0-a0',
      'createPod chat-g0-0',
      'createPod chat-g0-1',
      'createPod chat-g0-front',
    ]);
    const podGroup = p.actions[0]!;
    expect(podGroup).toMatchObject({
      kind: 'createPodGroup',
      scheduler: 'Volcano',
      object: {
        apiVersion: 'scheduling.volcano.sh/v1beta1',
        kind: 'PodGroup',
        metadata: {
          name: 'chat-g0-a0',
          namespace: 'ns',
          labels: { 'runahead.dev/server': 'chat', 'runahead.dev/server-group': '0' },
          ownerReferences: [
            expect.objectContaining({ kind: 'RunaheadServer', name: 'chat', uid: 'uid-1', controller: true }),
          ],
        },
        // The ranks only: the front is no member (desiredServerPodGroup says why).
        spec: { minMember: 2 },
      },
    });
    const pods = p.actions.flatMap((a) => (a.kind === 'createPod' ? [a.object] : []));
    for (const rank of pods.slice(0, 2)) {
      expect(rank.metadata!.annotations).toEqual({ 'scheduling.k8s.io/group-name': 'chat-g0-a0' });
      expect(rank.spec!.schedulerName).toBe('volcano');
    }
    const front = pods[2]!;
    expect(front.metadata!.annotations).toBeUndefined();
    expect(front.spec!.schedulerName).toBeUndefined();
  });

  test("with Kueue's queue label the ranks form its pod group and the front is a workload of its own", () => {
    const server: ServerRef = { ...serverWith(), labels: { 'kueue.x-k8s.io/queue-name': 'gpus' } };
    const pods = desiredGroupPods(server, 0, 0, serverRevision(server.spec), DEFAULT_OPERATOR_DEFAULTS);
    for (const rank of pods.slice(0, 2)) {
      expect(rank.metadata!.labels).toMatchObject({
        'kueue.x-k8s.io/queue-name': 'gpus',
        'kueue.x-k8s.io/pod-group-name': 'chat-g0-a0',
      });
      expect(rank.metadata!.annotations).toMatchObject({ 'kueue.x-k8s.io/pod-group-total-count': '2' });
    }
    const front = pods[2]!;
    expect(front.metadata!.name).toBe('chat-g0-front');
    expect(front.metadata!.labels).toMatchObject({ 'kueue.x-k8s.io/queue-name': 'gpus' });
    expect(front.metadata!.labels).not.toHaveProperty(['kueue.x-k8s.io/pod-group-name']);
    expect(front.metadata!.annotations?.['kueue.x-k8s.io/pod-group-total-count']).toBeUndefined();
  });

  test('Coscheduling: the ranks carry its label, the front does not; its timeout is startupTimeoutSeconds', () => {
    const server = volcano({
      placement: { gang: false, podGroup: { scheduler: 'Coscheduling' } },
      startupTimeoutSeconds: 300,
    });
    const p = plan(server, []);
    const podGroup = p.actions.find((a) => a.kind === 'createPodGroup');
    expect(podGroup).toMatchObject({
      scheduler: 'Coscheduling',
      object: {
        apiVersion: 'scheduling.x-k8s.io/v1alpha1',
        spec: { minMember: 2, scheduleTimeoutSeconds: 300 },
      },
    });
    const pods = p.actions.flatMap((a) => (a.kind === 'createPod' ? [a.object] : []));
    expect(pods.map((x) => x.metadata!.labels!['scheduling.x-k8s.io/pod-group'])).toEqual([
      'chat-g0-a0',
      'chat-g0-a0',
      undefined,
    ]);
  });

  test('observed pods name their PodGroup', () => {
    const [rank, , front] = groupPods(volcano(), 0);
    expect(rank!.podGroup).toEqual({ name: 'chat-g0-a0', scheduler: 'Volcano' });
    expect(front!.podGroup).toBeNull();
  });

  test('a restart deletes the PodGroup before the pods; the next attempt gets a new one', () => {
    const server = volcano();
    const pods = groupPods(server, 0, (pod) =>
      pod.metadata!.name === 'chat-g0-1' ? { phase: 'Failed', ready: false } : {},
    );
    const p = plan(server, pods);
    expect(summary(p.actions)).toEqual([
      'deletePodGroup chat-g0-a0',
      'deletePod chat-g0-0',
      'deletePod chat-g0-1',
      'deletePod chat-g0-front',
    ]);
    expect(p.actions[0]).toMatchObject({ scheduler: 'Volcano' });
    // Old pods still going: nothing created, the PodGroup not deleted again.
    const going = pods.map((x) => ({ ...x, deleting: true }));
    expect(plan(server, going, p.status).actions).toEqual([]);
    expect(summary(plan(server, [], p.status).actions)).toEqual([
      'createPodGroup chat-g0-a1',
      'createPod chat-g0-0',
      'createPod chat-g0-1',
      'createPod chat-g0-front',
    ]);
  });

  test('a roll replaces the PodGroup: the same attempt, so the same name, with the new revision’s spec', () => {
    const cosched = (startupTimeoutSeconds: number) =>
      volcano({ placement: { gang: false, podGroup: { scheduler: 'Coscheduling' } }, startupTimeoutSeconds });
    const old = cosched(600);
    const changed = cosched(120);
    const first = plan(
      changed,
      groupPods(changed, 0, () => ({}), old),
    );
    expect(summary(first.actions)).toEqual([
      'deletePodGroup chat-g0-a0',
      'deletePod chat-g0-0',
      'deletePod chat-g0-1',
      'deletePod chat-g0-front',
    ]);
    expect(first.events.map((e) => e.reason)).toEqual(['RollingUpdate']);
    const next = plan(changed, [], first.status);
    expect(next.actions[0]).toMatchObject({
      kind: 'createPodGroup',
      object: { metadata: { name: 'chat-g0-a0' }, spec: { minMember: 2, scheduleTimeoutSeconds: 120 } },
    });
  });

  test('a group scaled away takes its PodGroup; a podGroup removed from the spec, the old one', () => {
    const server = volcano({ replicas: 2 });
    const both = [...groupPods(server, 0), ...groupPods(server, 1, () => ({}), server, 4)];
    expect(summary(plan(volcano(), both).actions)).toEqual([
      'deletePodGroup chat-g1-a4',
      'deletePod chat-g1-0',
      'deletePod chat-g1-1',
      'deletePod chat-g1-front',
    ]);
    const plain = serverWith({ replicas: 1 });
    expect(
      summary(
        plan(
          plain,
          groupPods(plain, 0, () => ({}), volcano()),
        ).actions,
      ),
    ).toEqual([
      'deletePodGroup chat-g0-a0',
      'deletePod chat-g0-0',
      'deletePod chat-g0-1',
      'deletePod chat-g0-front',
    ]);
  });

  test('only a missing front: no PodGroup; a missing rank: the PodGroup again (409 is done)', () => {
    const server = volcano();
    const pending = (gone: string) =>
      groupPods(server, 0, (pod) =>
        pod.metadata!.name === gone ? { gone: true } : { phase: 'Pending', ready: false },
      );
    expect(summary(plan(server, pending('chat-g0-front')).actions)).toEqual(['createPod chat-g0-front']);
    expect(summary(plan(server, pending('chat-g0-1')).actions)).toEqual([
      'createPodGroup chat-g0-a0',
      'createPod chat-g0-1',
    ]);
  });
});
