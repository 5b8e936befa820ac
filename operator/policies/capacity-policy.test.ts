// When a gang's gate waits for room: GPUs free per topology domain, exclusive domains left out.
import { describe, expect, test } from '@jest/globals';
import { RunaheadJobSpecSchema, type RunaheadJobSpecInput } from '../../core/api/v1alpha1/runahead-job.ts';
import { capacityProblem, rankGpus, rankUsage, type NodeGpus, type RankUsage } from './capacity-policy.ts';

const node = (name: string, rack: string, gpus = 2, cordoned = false): NodeGpus => ({
  name,
  labels: { rack },
  gpus: { 'nvidia.com/gpu': gpus },
  cordoned,
});
const NODES = [node('a1', 'a'), node('a2', 'a'), node('b1', 'b'), node('b2', 'b')];
const held = (job: string, n: string, exclusiveKey?: string): RankUsage => ({
  namespace: 'ml',
  job,
  node: n,
  gpus: { 'nvidia.com/gpu': 1 },
  exclusiveKey,
});
function job(spec: Partial<RunaheadJobSpecInput>) {
  return {
    namespace: 'ml',
    name: 'j',
    spec: RunaheadJobSpecSchema.parse({
      ranks: 3,
      model: { synthetic: { preset: 'tiny' } },
      prompt: { syntheticTokens: 64 },
      ...spec,
    }),
  };
}
const ONE = { 'nvidia.com/gpu': 1 };

describe('gang capacity check', () => {
  test('fits when one rack has free GPUs for every rank; names the best otherwise', () => {
    const j = job({ placement: { topologyKey: 'rack' } });
    expect(capacityProblem(j, ONE, { nodes: NODES, usage: [held('k', 'a1'), held('k', 'b1')] })).toBeNull();
    expect(
      capacityProblem(j, ONE, {
        nodes: NODES,
        usage: [held('k', 'a1'), held('k', 'a2'), held('k', 'b1'), held('k', 'b1')],
      }),
    ).toBe('no rack domain has room for 3 rank(s) of 1 nvidia.com/gpu each (at most 2 fit)');
  });

  test("an exclusive group's rack is out of reach; an exclusive job avoids racks other groups are in", () => {
    const usage = [held('k', 'a1', 'rack')];
    const j = job({ ranks: 4, prompt: { syntheticTokens: 64 }, placement: { topologyKey: 'rack' } });
    expect(capacityProblem(j, ONE, { nodes: NODES, usage })).toBeNull(); // rack b is free
    const both = [held('k', 'a1', 'rack'), held('m', 'b1')];
    expect(capacityProblem(j, ONE, { nodes: NODES, usage: both })).toMatch(/at most 3 fit/);
    const exclusive = job({ ranks: 2, placement: { topologyKey: 'rack', exclusive: true } });
    expect(capacityProblem(exclusive, ONE, { nodes: NODES, usage: [held('m', 'a1'), held('m', 'b1')] })).toBe(
      'no rack domain has room for 2 rank(s) of 1 nvidia.com/gpu each (at most 0 fit, outside domains other groups hold)',
    );
  });

  test('its own pods, cordoned nodes, a nodeSelector and jobs without GPUs', () => {
    const own = [held('j', 'a1'), held('j', 'a2')];
    expect(
      capacityProblem(job({ ranks: 4, placement: {} }), ONE, {
        nodes: [node('a1', 'a'), node('a2', 'a')],
        usage: own,
      }),
    ).toBeNull();
    expect(
      capacityProblem(job({ placement: {} }), ONE, {
        nodes: [node('a1', 'a', 2, true), node('a2', 'a')],
        usage: [],
      }),
    ).toBe('the cluster has room for 3 rank(s) of 1 nvidia.com/gpu each (at most 2 fit)');
    expect(
      capacityProblem(job({ ranks: 2, nodeSelector: { rack: 'b' }, placement: {} }), ONE, {
        nodes: NODES,
        usage: [held('k', 'b1'), held('k', 'b1'), held('k', 'b2')],
      }),
    ).toMatch(/at most 1 fit/);
    expect(capacityProblem(job({ placement: {} }), {}, { nodes: [], usage: [] })).toBeNull();
  });

  test('what a rank asks for and what a bound pod holds', () => {
    expect(rankGpus({ limits: { 'nvidia.com/gpu': '2', memory: '1Gi' } })).toEqual({ 'nvidia.com/gpu': 2 });
    expect(
      rankUsage({
        metadata: { namespace: 'ml', labels: { 'runahead.dev/job': 'k' } },
        spec: {
          nodeName: 'a1',
          containers: [{ name: 'w', resources: { requests: { 'nvidia.com/gpu': '1', cpu: '2' } } }],
          affinity: {
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [
                {
                  labelSelector: { matchExpressions: [{ key: 'runahead.dev/job', operator: 'Exists' }] },
                  topologyKey: 'rack',
                },
              ],
            },
          },
        },
        status: { phase: 'Running' },
      }),
    ).toEqual({ namespace: 'ml', job: 'k', node: 'a1', gpus: { 'nvidia.com/gpu': 1 }, exclusiveKey: 'rack' });
    expect(rankUsage({ spec: { containers: [] }, status: { phase: 'Pending' } })).toBeNull();
  });
});
