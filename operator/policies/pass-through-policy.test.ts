import { describe, expect, test } from '@jest/globals';
import { RunaheadJobSpecSchema, type RunaheadJobSpecInput } from '../../core/api/v1alpha1/runahead-job.ts';
import { DEFAULT_PASS_THROUGH_POLICY, passThroughProblem } from './pass-through-policy.ts';

const spec = (more: Partial<RunaheadJobSpecInput> = {}) =>
  RunaheadJobSpecSchema.parse({
    ranks: 1,
    mode: 'single',
    model: { synthetic: { preset: 'tiny' } },
    prompt: { text: 'hi' },
    ...more,
  });
const tolerations = [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] as const;

describe('the pass-through policy', () => {
  test('off by default: a job without the fields passes, one with them fails naming the switch', () => {
    const off = DEFAULT_PASS_THROUGH_POLICY;
    expect(passThroughProblem(spec(), off)).toBeNull();
    // An empty list gives the pods nothing.
    expect(passThroughProblem(spec({ tolerations: [] }), off)).toBeNull();
    expect(passThroughProblem(spec({ tolerations: [...tolerations] }), off)).toBe(
      "spec.tolerations (1 toleration(s)) is not allowed by the operator's pass-through policy " +
        '(--allow-tolerations is off): remove spec.tolerations, or ask a cluster admin to start the ' +
        'operator with --allow-tolerations (chart: operator.allowTolerations=true)',
    );
    expect(passThroughProblem(spec({ priorityClassName: 'system-node-critical' }), off)).toMatch(
      /^spec\.priorityClassName \(system-node-critical\) is not allowed .*\(--allow-priority-class is off\).*operator\.allowPriorityClass=true/,
    );
  });

  test('each switch allows its own field only', () => {
    const both = spec({ tolerations: [...tolerations], priorityClassName: 'high' });
    expect(passThroughProblem(both, { allowTolerations: true, allowPriorityClass: false })).toMatch(
      /^spec\.priorityClassName/,
    );
    expect(passThroughProblem(both, { allowTolerations: false, allowPriorityClass: true })).toMatch(
      /^spec\.tolerations/,
    );
    expect(passThroughProblem(both, { allowTolerations: true, allowPriorityClass: true })).toBeNull();
  });
});
