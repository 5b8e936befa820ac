// The test scheduler decides as kube-scheduler does for the terms placement uses; these are the
// decisions the topology test relies on, checked without an API server.
import { describe, expect, test } from '@jest/globals';
import type { V1Affinity, V1Pod } from '@kubernetes/client-node';
import { decide, type SchedulerNode } from './scheduler.ts';

const node = (name: string, rack: string, gpus = 2): SchedulerNode => ({
  name,
  labels: { 'kubernetes.io/hostname': name, rack },
  allocatable: new Map([
    ['pods', 110],
    ['nvidia.com/gpu', gpus],
  ]),
});
const NODES = [node('a1', 'a'), node('a2', 'a'), node('b1', 'b')];

function pod(name: string, labels: Record<string, string>, affinity?: V1Affinity, nodeName?: string): V1Pod {
  return {
    metadata: { name, namespace: 'ml', labels },
    spec: {
      containers: [{ name: 'w', resources: { requests: { 'nvidia.com/gpu': '1' } } }],
      ...(affinity ? { affinity } : {}),
      ...(nodeName ? { nodeName } : {}),
    },
  };
}
const sameRack: V1Affinity = {
  podAffinity: {
    requiredDuringSchedulingIgnoredDuringExecution: [
      { labelSelector: { matchLabels: { job: 'j' } }, topologyKey: 'rack' },
    ],
  },
};
const noLabels = () => ({});

describe('test scheduler', () => {
  test('the first pod of a group that selects itself may go anywhere; the next follows its rack', () => {
    expect(decide(pod('j-0', { job: 'j' }, sameRack), NODES, [], noLabels)).toEqual({ node: 'a1' });
    const first = pod('j-0', { job: 'j' }, sameRack, 'b1');
    expect(decide(pod('j-1', { job: 'j' }, sameRack), NODES, [first], noLabels)).toEqual({ node: 'b1' });
    // A pod whose term does not select itself cannot start a group.
    expect(decide(pod('x', { job: 'other' }, sameRack), NODES, [], noLabels)).toEqual({
      unschedulable: "0/3 nodes are available: 3 node(s) didn't match pod affinity rules.",
    });
  });

  test("an existing pod's anti-affinity keeps a newcomer out of its rack", () => {
    const exclusive: V1Affinity = {
      podAntiAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: [
          {
            labelSelector: { matchExpressions: [{ key: 'job', operator: 'NotIn', values: ['j'] }] },
            topologyKey: 'rack',
          },
        ],
      },
    };
    const held = pod('j-0', { job: 'j' }, exclusive, 'a1');
    expect(decide(pod('k-0', { job: 'k' }), NODES, [held], noLabels)).toEqual({ node: 'b1' });
  });

  test('a preferred term outweighs spreading; without it, the least allocated node wins', () => {
    const bound = pod('j-0', { job: 'j', rank: '0' }, undefined, 'a2');
    const neighbour: V1Affinity = {
      podAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: {
              labelSelector: { matchLabels: { rank: '0' } },
              topologyKey: 'kubernetes.io/hostname',
            },
          },
        ],
      },
    };
    expect(decide(pod('j-1', { job: 'j', rank: '1' }, neighbour), NODES, [bound], noLabels)).toEqual({
      node: 'a2',
    });
    expect(decide(pod('j-1', { job: 'j', rank: '1' }), NODES, [bound], noLabels)).toEqual({ node: 'a1' });
  });

  test('no room: the reasons counted per node, as kube-scheduler words them', () => {
    const full = [pod('f-0', {}, undefined, 'a1'), pod('f-1', {}, undefined, 'a1')];
    expect(decide(pod('j-0', { job: 'j' }), [node('a1', 'a'), node('z', 'z', 0)], full, noLabels)).toEqual({
      unschedulable: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
    });
  });
});
