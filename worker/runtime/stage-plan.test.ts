import { describe, expect, it } from '@jest/globals';
import { stageLayers, stagePlan } from './stage-plan.ts';

describe('stage plan', () => {
  it('0 layers per graph: one graph of every stage', () => {
    expect(stagePlan(3, 0)).toEqual([{ from: 0, to: 6 }]);
  });

  it('1 layer per graph: one graph per stage', () => {
    expect(stagePlan(2, 1)).toEqual([
      { from: 0, to: 1 },
      { from: 1, to: 2 },
      { from: 2, to: 3 },
      { from: 3, to: 4 },
    ]);
  });

  it('k layers per graph: cut right after every k-th projection, the first projection alone', () => {
    expect(stagePlan(5, 2)).toEqual([
      { from: 0, to: 1 },
      { from: 1, to: 5 },
      { from: 5, to: 9 },
      { from: 9, to: 10 },
    ]);
    expect(stagePlan(32, 8).map((r) => r.to)).toEqual([1, 17, 33, 49, 64]);
  });

  it('every plan covers every stage once, in order', () => {
    for (const layers of [1, 2, 7, 32])
      for (const k of [0, 1, 2, 3, 8, 40]) {
        const plan = stagePlan(layers, k);
        expect(plan[0]!.from).toBe(0);
        expect(plan.at(-1)!.to).toBe(2 * layers);
        plan.forEach((r, i) => {
          expect(r.to).toBeGreaterThan(r.from);
          if (i > 0) expect(r.from).toBe(plan[i - 1]!.to);
        });
      }
  });

  it('names the layers a range projects and attends', () => {
    expect(stageLayers({ from: 1, to: 5 })).toEqual({ projects: [1, 2], attends: [0, 1] });
    expect(stageLayers({ from: 0, to: 1 })).toEqual({ projects: [0], attends: [] });
  });

  it('refuses what is not a plan', () => {
    expect(() => stagePlan(0, 1)).toThrow(/a model needs layers, got 0/);
    expect(() => stagePlan(4, -1)).toThrow(/layers per graph must be an integer ≥ 0, got -1/);
  });
});
