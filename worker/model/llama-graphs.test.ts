import { describe, expect, it } from '@jest/globals';
import { ropeInverseFrequencies } from './llama-graphs.ts';

describe('rotary inverse frequencies', () => {
  it('are theta^(-2i/d) by default', () => {
    expect(Array.from(ropeInverseFrequencies(4, 10000, { ropeType: 'default' }))).toEqual([
      1,
      Math.fround(0.01),
    ]);
  });

  it('are divided by the factor with linear scaling', () => {
    const base = ropeInverseFrequencies(8, 10000, { ropeType: 'default' });
    const linear = ropeInverseFrequencies(8, 10000, { ropeType: 'linear', factor: 4 });
    linear.forEach((f, i) => {
      expect(f).toBeCloseTo(base[i]! / 4, 12);
    });
  });

  it('follow the llama3 rule: high frequencies kept, low ones divided, the middle smoothed', () => {
    const scaling = {
      ropeType: 'llama3',
      factor: 8,
      lowFreqFactor: 1,
      highFreqFactor: 4,
      originalMaxPositionEmbeddings: 8192,
    } as const;
    const base = ropeInverseFrequencies(128, 500000, { ropeType: 'default' });
    const scaled = ropeInverseFrequencies(128, 500000, scaling);
    const wavelen = (f: number) => (2 * Math.PI) / f;
    let kept = 0;
    let divided = 0;
    let smoothed = 0;
    base.forEach((f, i) => {
      const s = scaled[i]!;
      if (wavelen(f) < 8192 / 4) {
        expect(s).toBe(f);
        kept++;
      } else if (wavelen(f) > 8192) {
        expect(s).toBeCloseTo(f / 8, 12);
        divided++;
      } else {
        expect(s).toBeLessThan(f);
        expect(s).toBeGreaterThan(f / 8);
        smoothed++;
      }
    });
    expect([kept > 0, divided > 0, smoothed > 0]).toEqual([true, true, true]);
  });
});
