// Which failure is blamed, and what the job does about it.
import { describe, expect, test } from '@jest/globals';
import type { RankFailure } from '../observed-pods.ts';
import { decideOnFailure, firstFailure } from './failure-policy.ts';

const f = (rank: number, at: number, crashed: boolean, retriable = true): RankFailure => ({
  rank,
  pod: `j-${rank}`,
  at,
  crashed,
  retriable,
  message: `rank ${rank} ${crashed ? 'was killed' : 'lost its peer'}`,
});

describe('failure policy', () => {
  test('the earliest failure is the cause', () => {
    expect(firstFailure([f(0, 2000, false), f(1, 1000, false)])?.rank).toBe(1);
  });

  test('at the same second, the rank that crashed is blamed over the one that reported a lost peer', () => {
    expect(firstFailure([f(0, 1000, false), f(2, 1000, true)])?.rank).toBe(2);
    expect(firstFailure([f(3, 1000, true), f(1, 1000, true)])?.rank).toBe(1);
  });

  test('unknown times come last', () => {
    expect(firstFailure([f(0, 0, true), f(3, 5000, false)])?.rank).toBe(3);
  });

  test('restart below the limit, fail at it, fail at once on a configuration error', () => {
    expect(decideOnFailure([f(1, 1, true)], 0, 2)).toMatchObject({ action: 'restart', nextAttempt: 1 });
    expect(decideOnFailure([f(1, 1, true)], 2, 2)).toMatchObject({
      action: 'fail',
      reason: 'BackoffLimitExceeded',
    });
    expect(decideOnFailure([f(1, 1, true), f(0, 9, false, false)], 0, 5)).toMatchObject({
      action: 'fail',
      reason: 'ConfigurationError',
      cause: { rank: 0 },
    });
    expect(decideOnFailure([], 0, 3)).toBeNull();
  });
});
