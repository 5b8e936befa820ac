import { describe, expect, it } from '@jest/globals';
import { criticalPath, type PathRank, type PathSpan } from './critical-path.ts';

const span = (kind: string, layer: number, startMs: number, endMs: number): PathSpan => ({
  kind,
  layer,
  startMs,
  endMs,
});
const send = (layer: number, toRank: number, readyMs: number, endMs: number) => ({
  layer,
  toRank,
  readyMs,
  endMs,
});

/** Σ of the path's segments of `kind` (all ranks). */
const total = (segments: readonly { kind: string; startMs: number; endMs: number }[], kind: string) =>
  segments.filter((s) => s.kind === kind).reduce((t, s) => t + s.endMs - s.startMs, 0);

// Two ranks, two layers, hand-timed (ms after release). Rank 0 computes fast; its link is slow at
// layer 1: rank 1 is ready at 55 and waits until 80 for K/V rank 0 had since 40.
const twoRanks: PathRank[] = [
  {
    rank: 0,
    spans: [
      span('project', 0, 0, 10),
      span('attend', 0, 10, 30),
      span('project', 1, 30, 40),
      span('attend', 1, 40, 60),
    ],
    sends: [send(0, 1, 10, 25), send(1, 1, 40, 80)],
  },
  {
    rank: 1,
    spans: [
      span('project', 0, 2, 10),
      span('wait', 0, 10, 25),
      span('attend', 0, 25, 45),
      span('project', 1, 45, 55),
      span('wait', 1, 55, 80),
      span('attend', 1, 80, 100),
    ],
    sends: [],
  },
];

describe('criticalPath', () => {
  it('charges a receiver’s wait to the sender’s link once the sender had the K/V (hand-computed)', () => {
    const p = criticalPath(twoRanks, 0, 105, 1);
    // Rank 1: compute 8 + 20 + 10 + 20; waits 15 (layer 0, rank 0 ready at 10 = the wait's start)
    // and 25 (layer 1, ready at 40 < 55): both wholly rank 0's send. Other: 0–2 and 100–105.
    expect(p.computeMs).toEqual([0, 58]);
    expect(p.sendMs).toEqual([40, 0]);
    expect(p.otherMs).toBeCloseTo(7);
    expect(p.segments.at(0)).toEqual({ rank: 1, kind: 'other', startMs: 0, endMs: 2 });
    expect(p.segments.at(-1)).toEqual({ rank: 1, kind: 'other', startMs: 100, endMs: 105 });
  });

  it('tiles [release, first token]: TTFT = compute + send + other, segments in order without gaps', () => {
    const p = criticalPath(twoRanks, 0, 105, 1);
    const sum = p.computeMs.reduce((a, b) => a + b, 0) + p.sendMs.reduce((a, b) => a + b, 0) + p.otherMs;
    expect(sum).toBeCloseTo(105);
    expect(total(p.segments, 'send')).toBeCloseTo(40);
    for (let i = 1; i < p.segments.length; i++) expect(p.segments[i]!.startMs).toBe(p.segments[i - 1]!.endMs);
  });

  it('follows a late sender: the wait before its K/V existed is the sender’s compute, not send', () => {
    // Rank 0's layer-1 attention runs long: its K/V of layer 1 are ready at 70 (end of project 1),
    // sent by 74; rank 1 waits 55–76. Send on the path: 70–76 only; 55–70 is rank 0 computing.
    const late: PathRank[] = [
      {
        rank: 0,
        spans: [span('project', 0, 0, 10), span('attend', 0, 10, 60), span('project', 1, 60, 70)],
        sends: [send(0, 1, 10, 12), send(1, 1, 70, 74)],
      },
      {
        rank: 1,
        spans: [
          span('project', 0, 0, 10),
          span('wait', 0, 10, 13),
          span('attend', 0, 13, 45),
          span('project', 1, 45, 55),
          span('wait', 1, 55, 76),
          span('attend', 1, 76, 90),
        ],
        sends: [],
      },
    ];
    const p = criticalPath(late, 0, 90, 1);
    // Path: rank 1 attend 1 (14) ← send 70–76 (6, rank 0) ← rank 0 project 1 (10) + attend 0 (50)
    // + project 0 (10).
    expect(p.sendMs[0]).toBeCloseTo(6);
    expect(p.computeMs[0]).toBeCloseTo(70);
    expect(p.computeMs[1]).toBeCloseTo(14);
    expect(p.otherMs).toBeCloseTo(0);
  });

  it('TSP: charges the sender whose link finished the layer last', () => {
    const ranks: PathRank[] = [
      { rank: 0, spans: [span('project', 0, 0, 10)], sends: [send(0, 2, 10, 30)] },
      { rank: 1, spans: [span('project', 0, 0, 12)], sends: [send(0, 2, 12, 50)] },
      {
        rank: 2,
        spans: [span('project', 0, 0, 10), span('wait', 0, 10, 51), span('attend', 0, 51, 70)],
        sends: [],
      },
    ];
    const p = criticalPath(ranks, 0, 70, 2);
    // Rank 1 had its K/V at 12, its link delivered at 50: 12–51 is rank 1's send; before 12, its compute.
    expect(p.sendMs).toEqual([0, 39, 0]);
    expect(p.computeMs).toEqual([0, 12, 19]);
  });

  it('charges a rank held back by its own links (send-blocked) to that rank', () => {
    const ranks: PathRank[] = [
      {
        rank: 0,
        spans: [span('project', 0, 0, 10), span('send-blocked', 0, 10, 18), span('attend', 0, 18, 30)],
        sends: [],
      },
    ];
    const p = criticalPath(ranks, 0, 30, 0);
    expect(p.sendMs).toEqual([8]);
    expect(p.computeMs).toEqual([22]);
  });

  it('ends on any timeline: no spans, spans after the first token, clocks that disagree', () => {
    expect(criticalPath([{ rank: 0, spans: [], sends: [] }], 0, 5, 0).otherMs).toBe(5);
    // A wait whose sender claims to have been ready after the wait ended (another machine's clock).
    const skewed: PathRank[] = [
      { rank: 0, spans: [span('project', 0, 0, 10)], sends: [send(0, 1, 40, 41)] },
      {
        rank: 1,
        spans: [span('wait', 0, 0, 20), span('attend', 0, 20, 30), span('decode', 0, 31, 99)],
        sends: [],
      },
    ];
    const p = criticalPath(skewed, 0, 30, 1);
    const sum = p.computeMs.reduce((a, b) => a + b, 0) + p.sendMs.reduce((a, b) => a + b, 0) + p.otherMs;
    expect(sum).toBeCloseTo(30);
    expect(p.sendMs[0]).toBe(0);
  });
});
