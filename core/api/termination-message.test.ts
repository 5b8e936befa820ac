import { describe, expect, it } from '@jest/globals';
import {
  TERMINATION_MESSAGE_MAX_BYTES,
  encodeTerminationMessage,
  parseTerminationMessage,
  type RunOutcome,
  type TerminationMessage,
} from './termination-message.ts';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

function outcome(ranks: number, extra: Partial<RunOutcome> = {}): RunOutcome {
  const boundaries = Array.from({ length: ranks + 1 }, (_, i) => i * 1000);
  return {
    mode: 'runahead',
    partition: 'even',
    ttftMs: 1234.56,
    contextLength: ranks * 1000,
    boundaries,
    firstToken: 42,
    firstTokenText: ' Paris',
    tokens: [42, 43, 44],
    text: ' Paris is',
    slotMs: 1234.56 / 64,
    ranks: boundaries.slice(1).map((end, i) => ({
      rank: i,
      chunk: [boundaries[i]!, end] as const,
      computeMs: 100.123,
      waitMs: 20.5,
      sendMs: 3.25,
      criticalSendMs: 1.25,
      bytesSent: 123_456_789,
      bytesReceived: 98_765_432,
      peakRssBytes: 12_345_678_901,
      startMs: 0.04,
      endMs: 1200.5,
      timeline: 'c'.repeat(16) + 'w'.repeat(16) + 's'.repeat(16) + '.'.repeat(16),
    })),
    ...extra,
  };
}

const success = (result: RunOutcome): TerminationMessage => ({ v: 1, ok: true, rank: 0, result });

describe('encodeTerminationMessage', () => {
  it('keeps a small result whole, and it parses back to the same outcome', () => {
    const r = outcome(2);
    const json = encodeTerminationMessage(success(r));
    const back = parseTerminationMessage(json);
    expect(back).toEqual({
      v: 1,
      ok: true,
      rank: 0,
      result: {
        ...r,
        slotMs: Number(r.slotMs.toPrecision(6)),
        ranks: r.ranks.map((x) => ({
          ...x,
          computeMs: 100.1,
          waitMs: 20.5,
          sendMs: 3.3,
          criticalSendMs: 1.3,
          startMs: 0,
        })),
      },
    });
  });

  it('writes the bare message of a rank without a result, and a failure', () => {
    expect(encodeTerminationMessage({ v: 1, ok: true, rank: 3 })).toBe('{"v":1,"ok":true,"rank":3}');
    const failure: TerminationMessage = {
      v: 1,
      ok: false,
      rank: 1,
      retriable: true,
      error: 'rank 1: KV stream from rank 0 ended',
    };
    expect(parseTerminationMessage(encodeTerminationMessage(failure))).toEqual(failure);
  });

  it('halves the timeline resolution before it cuts the text', () => {
    // Text just too long for 64 slots per rank; 32 slots make room for it.
    const base = bytes(encodeTerminationMessage(success(outcome(16, { text: '' }))));
    const r = outcome(16, { text: 'x'.repeat(TERMINATION_MESSAGE_MAX_BYTES - base + 100) });
    const back = parseTerminationMessage(encodeTerminationMessage(success(r)));
    const result = back?.ok ? back.result : undefined;
    expect(result?.text).toBe(r.text);
    expect(result?.ranks[0]?.timeline).toBe('c'.repeat(8) + 'w'.repeat(8) + 's'.repeat(8) + '.'.repeat(8));
    expect(result?.slotMs).toBeCloseTo(r.slotMs * 2, 3);
  });

  it('cuts long multi-byte text at a code point, with an ellipsis, and stays valid JSON', () => {
    // Astral characters are surrogate pairs in UTF-16 and 4 bytes in UTF-8: a cut between the two
    // halves would leave a lone surrogate that the kubelet's UTF-8 cannot carry.
    const text = '日本語😀'.repeat(2000);
    const r = outcome(4, { text, firstTokenText: '😀'.repeat(100), tokens: [42] });
    const json = encodeTerminationMessage(success(r));
    expect(bytes(json)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
    const back = parseTerminationMessage(json);
    if (!back?.ok || !back.result) throw new Error(`did not parse: ${json.slice(0, 200)}`);
    expect(back.result.text.endsWith('…')).toBe(true);
    expect(back.result.text.length).toBeGreaterThan(500);
    expect(text.startsWith(back.result.text.slice(0, -1))).toBe(true);
    expect(back.result.text).not.toMatch(
      /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/,
    );
    expect(back.result.firstTokenText).toBe(`${'😀'.repeat(32)}…`);
    expect(back.result.ranks[3]?.timeline).toHaveLength(16);
  });

  it('drops the generated token ids, then per-rank figures, as the result grows', () => {
    const tokens = Array.from({ length: 4096 }, (_, i) => 100_000 + i);
    const r = outcome(64, { tokens, text: 'y'.repeat(10_000) });
    const json = encodeTerminationMessage(success(r));
    expect(bytes(json)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
    const back = parseTerminationMessage(json);
    if (!back?.ok || !back.result) throw new Error('did not parse');
    expect(back.result.tokens).toEqual([100_000]);
    expect(back.result.ranks).toHaveLength(64);
    expect(back.result.ranks[63]?.chunk).toEqual([63_000, 64_000]);
    expect(back.result.ranks[63]?.startMs).toBe(0);
    expect(back.result.ranks[63]?.timeline?.length).toBeGreaterThanOrEqual(4);
  });

  it('cuts a long error to fit', () => {
    const error = `rank 2: ${'ü'.repeat(5000)}`;
    const json = encodeTerminationMessage({ v: 1, ok: false, rank: 2, retriable: false, error }, 512);
    expect(bytes(json)).toBeLessThanOrEqual(512);
    const back = parseTerminationMessage(json);
    expect(back).toMatchObject({ ok: false, rank: 2, retriable: false });
    expect(back?.ok === false && back.error.startsWith('rank 2: üüü') && back.error.endsWith('…')).toBe(true);
  });

  it('fits any budget that can hold the bare message', () => {
    for (const max of [40, 200, 700, 1500, 3000]) {
      const json = encodeTerminationMessage(success(outcome(8, { text: 'z'.repeat(3000) })), max);
      expect(bytes(json)).toBeLessThanOrEqual(max);
      expect(parseTerminationMessage(json)).not.toBeNull();
    }
    expect(() => encodeTerminationMessage({ v: 1, ok: true, rank: 0 }, 10)).toThrow(RangeError);
  });
});

describe('parseTerminationMessage', () => {
  it('refuses what is not one of ours', () => {
    expect(parseTerminationMessage(undefined)).toBeNull();
    expect(parseTerminationMessage('')).toBeNull();
    expect(parseTerminationMessage('panic: out of memory')).toBeNull();
    expect(parseTerminationMessage('{"v":2,"ok":true,"rank":0}')).toBeNull();
  });

  it('refuses a column whose length is not the number of ranks', () => {
    const json = JSON.parse(encodeTerminationMessage(success(outcome(2)))) as {
      result: { ranks: { waitMs: number[] } };
    };
    json.result.ranks.waitMs.pop();
    expect(parseTerminationMessage(JSON.stringify(json))).toBeNull();
  });
});
