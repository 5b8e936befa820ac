import { describe, expect, it } from '@jest/globals';
import { unionLength } from './rank-run.ts';

const span = (startMs: number, endMs: number) => ({ kind: 'send', layer: 0, startMs, endMs });

describe('unionLength', () => {
  it('counts overlapping sends once', () => {
    expect(unionLength([span(0, 10), span(5, 12), span(20, 25), span(21, 22)])).toBe(17);
    expect(unionLength([])).toBe(0);
    expect(unionLength([span(3, 4)])).toBe(1);
  });
});
