import { describe, expect, it } from '@jest/globals';
import { tspProblem, unionLength } from './rank-run.ts';
import { stagePlan } from '../runtime/stage-plan.ts';

const span = (startMs: number, endMs: number) => ({ kind: 'send', layer: 0, startMs, endMs });

describe('unionLength', () => {
  it('counts overlapping sends once', () => {
    expect(unionLength([span(0, 10), span(5, 12), span(20, 25), span(21, 22)])).toBe(17);
    expect(unionLength([])).toBe(0);
    expect(unionLength([span(3, 4)])).toBe(1);
  });
});

describe('tspProblem', () => {
  it('accepts one graph per stage: every layer is projected before any rank waits to attend it', () => {
    expect(tspProblem(stagePlan(4, 1))).toBeNull();
  });

  it('refuses graphs that project and attend a layer, naming the flag that fixes it', () => {
    expect(tspProblem(stagePlan(4, 2))).toMatch(
      /TSP all-gathers K\/V at every layer and needs one graph per stage \(--layers-per-graph 1\); this engine's graph of stages \[1, 5\) projects and attends a layer/,
    );
    expect(tspProblem(stagePlan(4, 0))).toMatch(/graph of stages \[0, 8\)/);
  });
});
