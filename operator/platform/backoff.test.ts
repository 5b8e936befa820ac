import { describe, expect, it } from '@jest/globals';
import { backoffDelayMs, jittered } from './backoff.ts';

describe('backoffDelayMs', () => {
  it('doubles from the base and stops at the cap', () => {
    expect([0, 1, 2, 3].map((f) => backoffDelayMs(f, 200, 60_000))).toEqual([200, 400, 800, 1600]);
    expect(backoffDelayMs(8, 200, 60_000)).toBe(51_200);
    expect(backoffDelayMs(9, 200, 60_000)).toBe(60_000);
    expect(backoffDelayMs(5000, 200, 60_000)).toBe(60_000);
  });
});

describe('jittered', () => {
  it('stretches by a fraction of the delay, never shortens', () => {
    expect(jittered(1000, 0.2, () => 0)).toBe(1000);
    expect(jittered(1000, 0.2, () => 0.5)).toBe(1100);
    expect(jittered(1000, 0.2, () => 0.999)).toBeLessThan(1200);
    for (let i = 0; i < 100; i++) {
      const d = jittered(500, 0.1);
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThan(550);
    }
  });
});
