// spec.placement as the scheduler will read it: the affinity terms, the gate and the group labels
// each rank pod gets.
import { describe, expect, test } from '@jest/globals';
import { RunaheadJobSpecSchema, type RunaheadJobSpecInput } from '../core/api/v1alpha1/runahead-job.ts';
import { mergeAffinity, podGroupName, podGroupOf, rankPlacement, type PlacedJob } from './rank-placement.ts';

function job(spec: Partial<RunaheadJobSpecInput>, labels: Record<string, string> = {}): PlacedJob {
  return {
    name: 'chain',
    namespace: 'ml',
    labels,
    spec: RunaheadJobSpecSchema.parse({
      ranks: 4,
      model: { synthetic: { preset: 'tiny' } },
      prompt: { syntheticTokens: 64 },
      ...spec,
    }),
  };
}

const ours = { 'app.kubernetes.io/managed-by': 'runahead-operator' };

describe('rank placement', () => {
  test('no spec.placement: the pod keeps the user affinity only, no gate, no scheduler', () => {
    const affinity = {
      nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [] } },
    };
    expect(rankPlacement(job({ affinity }), 1, 0)).toEqual({
      affinity,
      schedulingGates: [],
      schedulerName: undefined,
      labels: {},
      annotations: {},
    });
  });

  test('topologyKey: every rank requires its group in its domain; consecutive ranks prefer one node', () => {
    const p = rankPlacement(job({ placement: { topologyKey: 'example.com/rack' } }), 2, 0);
    expect(p.affinity?.podAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      {
        labelSelector: { matchLabels: { 'runahead.dev/job': 'chain', ...ours } },
        topologyKey: 'example.com/rack',
      },
    ]);
    const preferred = p.affinity?.podAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
    expect(
      preferred.map((t) => [
        t.weight,
        t.podAffinityTerm.labelSelector?.matchLabels?.['runahead.dev/rank'],
        t.podAffinityTerm.topologyKey,
      ]),
    ).toEqual([
      [100, '1', 'kubernetes.io/hostname'],
      [100, '3', 'kubernetes.io/hostname'],
    ]);
    expect(p.affinity?.podAntiAffinity).toBeUndefined();
    expect(p.schedulingGates).toEqual([{ name: 'runahead.dev/gang' }]);
  });

  test('the ends of the chain prefer their one neighbour; packing None prefers nothing', () => {
    const ranks = (rank: number, spec: Partial<RunaheadJobSpecInput>) =>
      (
        rankPlacement(job(spec), rank, 0).affinity?.podAffinity
          ?.preferredDuringSchedulingIgnoredDuringExecution ?? []
      ).map((t) => t.podAffinityTerm.labelSelector?.matchLabels?.['runahead.dev/rank']);
    expect(ranks(0, { placement: {} })).toEqual(['1']);
    expect(ranks(3, { placement: {} })).toEqual(['2']);
    expect(rankPlacement(job({ placement: { packing: 'None' } }), 1, 0).affinity).toBeUndefined();
    expect(
      rankPlacement(job({ ranks: 1, prompt: { syntheticTokens: 8 }, placement: {} }), 0, 0).affinity,
    ).toBeUndefined();
  });

  test('exclusive: anti-affinity to every other job in this namespace and any job in the others', () => {
    const p = rankPlacement(job({ placement: { topologyKey: 'nvidia.com/clique', exclusive: true } }), 0, 0);
    expect(p.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution).toEqual([
      {
        labelSelector: {
          matchLabels: ours,
          matchExpressions: [
            { key: 'runahead.dev/job', operator: 'Exists' },
            { key: 'runahead.dev/job', operator: 'NotIn', values: ['chain'] },
          ],
        },
        topologyKey: 'nvidia.com/clique',
      },
      {
        labelSelector: {
          matchLabels: ours,
          matchExpressions: [{ key: 'runahead.dev/job', operator: 'Exists' }],
        },
        namespaceSelector: {
          matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['ml'] }],
        },
        topologyKey: 'nvidia.com/clique',
      },
    ]);
  });

  test("the user's terms come first and are kept; nodeAffinity passes as written", () => {
    const user = {
      nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 5, preference: {} }] },
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'zone' }] },
    };
    const merged = mergeAffinity(user, {
      podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'rack' }] },
    });
    expect(merged).toEqual({
      nodeAffinity: user.nodeAffinity,
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [{ topologyKey: 'zone' }, { topologyKey: 'rack' }],
      },
    });
    expect(mergeAffinity(undefined, {})).toBeUndefined();
  });

  test('gang off: no gate', () => {
    expect(rankPlacement(job({ placement: { gang: false } }), 0, 0).schedulingGates).toEqual([]);
  });

  test('a pod group names its scheduler, one group per attempt', () => {
    const cosched = rankPlacement(job({ placement: { podGroup: { scheduler: 'Coscheduling' } } }), 1, 2);
    expect(cosched.schedulerName).toBe('scheduler-plugins-scheduler');
    expect(cosched.labels).toEqual({ 'scheduling.x-k8s.io/pod-group': 'chain-a2' });
    const volcano = rankPlacement(
      job({ placement: { podGroup: { scheduler: 'Volcano', schedulerName: 'vc-gpu' } } }),
      0,
      0,
    );
    expect(volcano.schedulerName).toBe('vc-gpu');
    expect(volcano.annotations).toEqual({ 'scheduling.k8s.io/group-name': 'chain-a0' });
    expect(podGroupName('a'.repeat(52), 100).length).toBeLessThanOrEqual(63);
    // Read back from a pod: which PodGroup, of which scheduler.
    expect(podGroupOf(cosched.labels, cosched.annotations)).toEqual({
      name: 'chain-a2',
      scheduler: 'Coscheduling',
    });
    expect(podGroupOf(volcano.labels, volcano.annotations)).toEqual({
      name: 'chain-a0',
      scheduler: 'Volcano',
    });
    expect(podGroupOf(rankPlacement(job({}), 0, 0).labels, undefined)).toBeNull();
  });

  test('a job in a Kueue queue labels its pods as one Kueue pod group of all ranks, in its topology', () => {
    const p = rankPlacement(
      job({ placement: { topologyKey: 'example.com/rack' } }, { 'kueue.x-k8s.io/queue-name': 'gpus' }),
      0,
      1,
    );
    expect(p.labels).toEqual({
      'kueue.x-k8s.io/queue-name': 'gpus',
      'kueue.x-k8s.io/pod-group-name': 'chain-a1',
    });
    expect(p.annotations).toEqual({
      'kueue.x-k8s.io/pod-group-total-count': '4',
      'kueue.x-k8s.io/podset-required-topology': 'example.com/rack',
    });
  });
});
