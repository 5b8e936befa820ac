import { describe, expect, it } from '@jest/globals';
import { predict, type CostProfile } from './cost-model.ts';
import { routePrompt, splitFrom, type RouteContext, type RoutePolicy } from './length-routing.ts';
import type { PartitionTable } from './partition-table.ts';

/**
 * A GPU-like rank: fast compute, a link with a real latency per layer and a fixed chain cost, so that
 * one rank wins short prompts and the chain long ones.
 */
const profile: CostProfile = {
  version: 1,
  model: 'synthetic:small',
  hardware: 'test',
  ep: 'cuda',
  dtype: 'float16',
  threadsPerRank: 0,
  numLayers: 12,
  kvBytesPerToken: 2048,
  coefficients: {
    project: [0.05, 0.0005],
    attend: [0.05, 0.001, 1e-7],
    transfer: [0.5, 2e-6],
    fixedMs: 5,
  },
};

const ctx = (ranks: number, over: Partial<RouteContext> = {}): RouteContext => ({
  ranks,
  partition: { kind: 'even' },
  table: null,
  ...over,
});

describe('routePrompt', () => {
  it('runs everything on one rank for a group of one, for route single, and below one token per rank', () => {
    expect(routePrompt({ kind: 'split' }, 100, ctx(1))).toMatchObject({
      ranks: 1,
      mode: 'single',
      boundaries: [0, 100],
      partition: 'single',
    });
    expect(routePrompt({ kind: 'single' }, 100_000, ctx(4)).ranks).toBe(1);
    expect(routePrompt({ kind: 'split' }, 3, ctx(4))).toMatchObject({
      ranks: 1,
      reason: '3 token(s) cannot be split over 4 ranks',
    });
  });

  it('splits every prompt with route split, evenly or from the partition table', () => {
    expect(routePrompt({ kind: 'split' }, 8, ctx(2))).toMatchObject({
      ranks: 2,
      mode: 'runahead',
      boundaries: [0, 4, 8],
      partition: 'even',
    });
    const table: PartitionTable = {
      version: 1,
      model: 'synthetic:small',
      ranks: 2,
      scheme: 'runahead',
      granularity: 1,
      entries: [{ contextLength: 100, boundaries: [0, 70, 100] }],
    };
    expect(
      routePrompt({ kind: 'split' }, 200, ctx(2, { partition: { kind: 'balanced' }, table })),
    ).toMatchObject({ boundaries: [0, 140, 200], partition: 'balanced' });
  });

  it('splits from --single-below on, with the threshold in the reason', () => {
    const policy: RoutePolicy = { kind: 'threshold', singleBelow: 64 };
    expect(routePrompt(policy, 63, ctx(2))).toMatchObject({
      ranks: 1,
      reason: '63 tokens < --single-below 64',
    });
    expect(routePrompt(policy, 64, ctx(2))).toMatchObject({ ranks: 2, boundaries: [0, 32, 64] });
  });

  it('takes whichever the cost model predicts to be faster, with both predictions', () => {
    const policy: RoutePolicy = { kind: 'cost-model', profile };
    const short = routePrompt(policy, 256, ctx(4));
    const long = routePrompt(policy, 32_768, ctx(4));
    expect(short.ranks).toBe(1);
    expect(short.predictedSingleMs!).toBeLessThanOrEqual(short.predictedSplitMs!);
    expect(long.ranks).toBe(4);
    expect(long.predictedSplitMs!).toBeLessThan(long.predictedSingleMs!);
    // The figures are the cost model's own, for the split the chain would use.
    const shape = { numLayers: profile.numLayers, kvBytesPerToken: profile.kvBytesPerToken };
    expect(long.predictedSplitMs).toBe(
      predict(profile.coefficients, shape, 'runahead', long.boundaries).ttftMs,
    );
    expect(long.reason).toMatch(/^predicted \d+ ms on one rank, \d+ ms on 4$/);
  });
});

describe('splitFrom', () => {
  it('finds the first length that splits, to the token', () => {
    const policy: RoutePolicy = { kind: 'cost-model', profile };
    const from = splitFrom(policy, ctx(4), 65_536)!;
    expect(from).toBeGreaterThan(256);
    expect(routePrompt(policy, from, ctx(4)).ranks).toBe(4);
    expect(routePrompt(policy, from - 1, ctx(4)).ranks).toBe(1);
    expect(splitFrom({ kind: 'threshold', singleBelow: 1000 }, ctx(2), 4096)).toBe(1000);
    expect(splitFrom({ kind: 'single' }, ctx(2), 4096)).toBeNull();
  });
});
