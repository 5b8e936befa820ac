import { describe, expect, it } from '@jest/globals';
import { downsampleTimeline, paintTimeline, timelineRuns } from './timeline.ts';

describe('paintTimeline', () => {
  it('marks every slot a span overlaps, compute over wait over send over idle', () => {
    // 10 slots of 1 ms.
    const t = paintTimeline(
      [
        { state: 'send', start: 0, end: 10 },
        { state: 'wait', start: 2, end: 4 },
        { state: 'compute', start: 3.5, end: 5 },
        { state: 'compute', start: 8, end: 8 }, // an instant: the slot it falls in
      ],
      1,
      10,
    );
    expect(t).toBe('sswccssscs');
  });

  it('leaves idle slots as dots and clamps spans past the end', () => {
    expect(paintTimeline([{ state: 'compute', start: 7, end: 99 }], 2, 5)).toBe('...cc');
    expect(paintTimeline([], 1, 3)).toBe('...');
    expect(paintTimeline([{ state: 'wait', start: 0, end: 1 }], 1, 0)).toBe('');
  });
});

describe('downsampleTimeline', () => {
  it('keeps the strongest letter of the slots it merges', () => {
    expect(downsampleTimeline('..sswwcc.s', 5)).toBe('.swcs');
    expect(downsampleTimeline('cs..w.', 3)).toBe('c.w');
    expect(downsampleTimeline('cw', 8)).toBe('cw');
    expect(downsampleTimeline('cw', 0)).toBe('');
  });

  it('halving equals painting again at the coarser resolution', () => {
    const spans = [
      { state: 'compute', start: 0.3, end: 2.2 },
      { state: 'wait', start: 2.2, end: 5.9 },
      { state: 'send', start: 5.9, end: 6.1 },
      { state: 'compute', start: 6.1, end: 7.7 },
    ] as const;
    const fine = paintTimeline(spans, 0.125, 64);
    for (const slots of [32, 16, 8, 4, 2, 1])
      expect(downsampleTimeline(fine, slots)).toBe(paintTimeline(spans, 8 / slots, slots));
  });
});

describe('timelineRuns', () => {
  it('groups consecutive slots of one state', () => {
    expect(timelineRuns('ccww.s')).toEqual([
      { state: 'compute', from: 0, to: 2 },
      { state: 'wait', from: 2, to: 4 },
      { state: 'idle', from: 4, to: 5 },
      { state: 'send', from: 5, to: 6 },
    ]);
    expect(timelineRuns('')).toEqual([]);
  });
});
