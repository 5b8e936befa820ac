import { describe, expect, test } from '@jest/globals';
import { namespaceProblem } from './namespace-policy.ts';

describe('the namespace policy', () => {
  test('all: every namespace is served, labelled or not', () => {
    expect(namespaceProblem('team-a', undefined, { namespaces: 'all' })).toBeNull();
  });

  test('labelled: only namespaces labelled runahead.dev/enabled=true', () => {
    const labelled = { namespaces: 'labelled' } as const;
    expect(namespaceProblem('ml', { 'runahead.dev/enabled': 'true' }, labelled)).toBeNull();
    for (const labels of [
      undefined,
      {},
      { 'runahead.dev/enabled': 'false' },
      { 'runahead.dev/enabled': 'yes' },
    ])
      expect(namespaceProblem('team-a', labels, labelled)).toBe(
        'namespace team-a is not served by this operator (--namespaces labelled): the job waits until ' +
          'a cluster admin labels the namespace runahead.dev/enabled=true',
      );
  });
});
