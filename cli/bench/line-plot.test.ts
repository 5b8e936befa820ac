import { describe, expect, it } from '@jest/globals';
import { LINE_PLOT_LAYOUT, linePlotSvg, niceStep, type LinePlot } from './line-plot.ts';

const plot: LinePlot = {
  title: 'speedup <projection>',
  subtitle: ['llama-7b & friends', 'second line'],
  xLabel: 'tokens',
  yLabel: 'speedup',
  xTicks: [8192, 16384, 32768],
  xTickLabel: (x) => `${x / 1024}k`,
  series: [
    {
      label: 'A',
      color: '#123456',
      points: [
        { x: 8192, y: 0.5 },
        { x: 32768, y: 2, hollow: true, note: 'does not fit' },
      ],
    },
    { label: 'B', color: '#abcdef', dash: '6 4', points: [{ x: 16384, y: Number.NaN }] },
  ],
  guides: [{ y: 1, label: 'one GPU' }],
};

describe('linePlotSvg', () => {
  const svg = linePlotSvg(plot);

  it('is one standalone SVG with escaped text', () => {
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trim().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('speedup &lt;projection&gt;');
    expect(svg).toContain('llama-7b &amp; friends');
    expect(svg).not.toContain('<projection>');
  });

  it('puts the x ticks on a log scale, first at the left edge and last at the right', () => {
    const { left, right, width } = LINE_PLOT_LAYOUT;
    expect(svg).toContain(`<line x1="${left.toFixed(1)}" y1="${LINE_PLOT_LAYOUT.top}"`);
    expect(svg).toContain(`<line x1="${(width - right).toFixed(1)}"`);
    // 16k is halfway between 8k and 32k in log₂.
    expect(svg).toContain(`<line x1="${(left + (width - right - left) / 2).toFixed(1)}"`);
    expect(svg).toContain('>16k</text>');
  });

  it('draws a line and a marker per finite point, open where hollow, and skips NaN', () => {
    expect(svg.match(/<polyline/g)).toHaveLength(1);
    expect(svg.match(/<circle/g)).toHaveLength(2);
    expect(svg).toContain('fill="white" stroke="#123456"><title>does not fit</title>');
    expect(svg).toContain('stroke-dasharray="6 4"');
    expect(svg).toContain('>one GPU</text>');
  });

  it('scales y from 0 to a rounded top', () => {
    const { top, height, bottom } = LINE_PLOT_LAYOUT;
    // y = 2 is the top of the axis (max 2, step 0.5): the hollow marker sits on it.
    expect(svg).toContain(`cy="${top.toFixed(1)}"`);
    expect(svg).toContain(`cy="${(top + (height - top - bottom) * 0.75).toFixed(1)}"`);
  });
});

describe('a log₂ y axis', () => {
  const svg = linePlotSvg({ ...plot, yLog: true });
  const { top, height, bottom } = LINE_PLOT_LAYOUT;
  const plotH = height - top - bottom;

  it('spans powers of 2 from the smallest y to the largest', () => {
    // y from 0.5 to 2: ticks 1/2, 1, 2; 1 halfway up.
    expect(svg).toContain('>1/2</text>');
    expect(svg).toContain(`cy="${(top + plotH).toFixed(1)}"`);
    expect(svg).toContain(`cy="${top.toFixed(1)}"`);
    expect(svg).toContain(`y1="${(top + plotH / 2).toFixed(1)}"`);
  });

  it('puts values below the floor on the axis', () => {
    const tiny = linePlotSvg({
      ...plot,
      yLog: true,
      yFloor: 0.25,
      series: [
        {
          label: 'x',
          color: '#000',
          points: [
            { x: 8192, y: 0.01 },
            { x: 16384, y: 4 },
          ],
        },
      ],
    });
    expect(tiny).toContain('>1/4</text>');
    expect(tiny).not.toContain('>1/8</text>');
    expect(tiny).toContain(`cy="${(top + plotH).toFixed(1)}"`);
  });
});

describe('niceStep', () => {
  it.each([
    [8, 2],
    [2, 0.5],
    [1, 0.2],
    [100, 20],
  ])('max %d → step %d', (max, step) => {
    expect(niceStep(max)).toBeCloseTo(step, 12);
  });
});
