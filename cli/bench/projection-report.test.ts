import { describe, expect, it } from '@jest/globals';
import { PRESETS } from '../../worker/model/presets.ts';
import { fitCompute, fitMemory } from './projection.ts';
import {
  crossoverTable,
  crossoverText,
  headlineTable,
  speedupPlot,
  speedupTable,
  sweep,
  tokensLabel,
  type ModelInput,
  type Scenario,
  type SweepOptions,
} from './projection-report.ts';

const shape = PRESETS['llama3-8b'];
const ttft = (c: number) => 3.5 + 0.0264 * c + 4.87e-7 * c * c;
const model: ModelInput = {
  name: 'synthetic:llama3-8b',
  shape,
  fit: fitCompute(
    [2048, 4096, 8192, 16384, 32768].map((contextLength) => ({ contextLength, ttftMs: ttft(contextLength) })),
    shape,
  ),
  // Small enough that one rank alone does not fit at 16k.
  memory: fitMemory(
    [
      { contextLength: 4096, peakGpuMiB: 18000 },
      { contextLength: 8192, peakGpuMiB: 20000 },
    ],
    22000,
  ),
};
const scenarios: Scenario[] = [
  {
    id: 'direct',
    label: 'no host',
    egressGBps: Infinity,
    ingressGBps: Infinity,
    copies: 'kv-overlapped',
    layersPerGraph: [1, 8],
    source: 'test',
  },
  {
    id: 'slow',
    label: 'slow copies',
    egressGBps: 0.5,
    ingressGBps: 0.5,
    copies: 'serial',
    layersPerGraph: [8],
    source: 'test',
  },
];
const options: SweepOptions = {
  links: [25],
  ranks: [2],
  contexts: [8192, 16384],
  granularity: 256,
  linkLatencyMs: 0.05,
  queueBytes: 64 * 2 ** 20,
  graphOverheadMs: 0.2,
  crossoverRange: [2048, 16384],
};
const { points, crossovers } = sweep([model], scenarios, options);

describe('sweep', () => {
  it('projects one GPU and every configuration at every length, and a crossover per configuration', () => {
    // Per scenario: 2 lengths × (one GPU + 3 configurations × 1 rank count).
    expect(points).toHaveLength(2 * 2 * 4);
    expect(crossovers).toHaveLength(2 * 3);
    for (const p of points) {
      const single = points.find(
        (q) =>
          q.scenario === p.scenario && q.configuration === 'single' && q.contextLength === p.contextLength,
      )!;
      expect(p.speedup).toBeCloseTo(single.ttftMs / p.ttftMs, 2);
      expect(p.efficiency).toBeCloseTo(p.speedup / p.ranks, 2);
    }
  });

  it('balanced beats one GPU from the start without host copies and never with slow serial ones', () => {
    const find = (scenario: string) =>
      crossovers.find((c) => c.scenario === scenario && c.configuration === 'balanced')!.crossover;
    expect(find('direct')).toEqual({ kind: 'always', from: 2048 });
    expect(find('slow')).toEqual({ kind: 'never', upTo: 16384 });
  });

  it('takes the best layers per graph a scenario offers, and marks what does not fit', () => {
    const balanced = points.find((p) => p.scenario === 'direct' && p.configuration === 'balanced')!;
    expect(balanced.layersPerGraph).toBe(1);
    const alone = points.find((p) => p.configuration === 'single' && p.contextLength === 16384)!;
    expect(alone.fits).toBe(false);
    expect(points.find((p) => p.configuration === 'single' && p.contextLength === 8192)!.fits).toBe(true);
  });
});

describe('tables', () => {
  it('says crossovers in tokens', () => {
    expect(crossoverText({ kind: 'from', contextLength: 60928 })).toBe('59.5k');
    expect(crossoverText({ kind: 'always', from: 2048 })).toBe('≤ 2k');
    expect(crossoverText({ kind: 'never', upTo: 131072 })).toBe('never ≤ 128k');
    expect(tokensLabel(8192)).toBe('8k');
  });

  it('crossover table: one row per configuration and rank count, one column per link', () => {
    const t = crossoverTable(crossovers, model.name, 'direct', [25], [2]).split('\n');
    expect(t[0]).toBe('| beats one GPU from | 25 GB/s |');
    expect(t).toHaveLength(2 + 3);
    expect(t).toContain('| KV-Runahead balanced, 2 GPUs | ≤ 2k |');
  });

  it('headline: crossover and speedup at the longest length per scenario', () => {
    const t = headlineTable(crossovers, points, model.name, 25, ['direct', 'slow'], [2]);
    expect(t.split('\n')[0]).toBe('| beats one GPU from; speedup (/ GPUs) at 16k | direct | slow |');
    expect(t).toMatch(
      /\| KV-Runahead balanced, 2 GPUs \| ≤ 2k; 1\.\d\d× \(\d+%\) \| never ≤ 16k; 0\.\d\d× \(\d+%\) \|/,
    );
  });

  it('speedup table: bold wins, ‡ where it does not fit, g where layers per graph were tuned', () => {
    const t = speedupTable(points, model.name, 'direct', 25, options.contexts, [2], true);
    expect(t).toContain('s ‡ |');
    expect(t).toMatch(/\*\*1\.\d\d× \(\d+%\) g1\*\*/);
    expect(speedupTable(points, model.name, 'slow', 25, options.contexts, [2])).not.toContain('**');
  });

  it('plot: a projection label, a line per configuration, the one-GPU guide says where it stops fitting', () => {
    const svg = speedupPlot(points, model.name, scenarios[0]!, 25, [2], options.contexts);
    expect(svg).toContain('PROJECTION');
    expect(svg.match(/<polyline/g)).toHaveLength(3);
    expect(svg).toContain('one GPU (does not fit from 16k)');
  });
});
