import { describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../support/cli.ts';
import { modelDir, reference } from '../support/fixtures.ts';

describe('runahead run (the local launcher)', () => {
  it('prints the JSON result with boundaries, per-rank figures and the timeline, and draws it with --plot', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'plot-'));
    const prompt = reference.models['llama3-tiny'].prompts[0]!;
    const plot = join(dir, 'timeline.svg');
    const r = await runCli(
      [
        'run',
        '--ranks',
        '3',
        '--model',
        modelDir('llama3-tiny'),
        '--prompt',
        prompt.text,
        '--max-new-tokens',
        '7',
        '--json',
        '--plot',
        plot,
      ],
      {
        timeoutMs: 90_000,
      },
    );
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, unknown> & {
      ranks: Record<string, unknown>[];
      timeline: { kind: string }[];
    };
    expect(out).toMatchObject({
      mode: 'runahead',
      firstToken: prompt.greedy[0],
      tokens: prompt.greedy,
      contextLength: prompt.ids.length,
      boundaries: [0, 9, 18, 27],
    });
    expect(out.ranks.map((x) => x.rank)).toEqual([0, 1, 2]);
    expect(out.ranks[0]).toEqual(
      expect.objectContaining({
        computeMs: expect.any(Number),
        waitMs: expect.any(Number),
        sendMs: expect.any(Number),
        bytesSent: expect.any(Number),
        peakRssBytes: expect.any(Number),
      }),
    );
    expect(new Set(out.timeline.map((t) => t.kind))).toEqual(new Set(['project', 'attend', 'wait', 'send']));
    const svg = await readFile(plot, 'utf8');
    expect(svg).toMatch(/^<svg /);
    expect(svg).toMatch(/TTFT [\d.]+ ms · runahead · 27 tokens/);
  }, 100_000);

  it('prints a table and a text timeline, and accepts --mode tsp with an explicit --split', async () => {
    const r = await runCli(
      [
        'run',
        '--ranks',
        '2',
        '--model',
        'synthetic:tiny',
        '--prompt-tokens',
        '40',
        '--mode',
        'tsp',
        '--split',
        '0,30,40',
      ],
      { timeoutMs: 90_000 },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/TTFT {10}[\d.]+ ms {2}\(tsp, 2 rank\(s\), 40 prompt tokens, split 0,30,40\)/);
    expect(r.stdout).toMatch(/rank +chunk +tokens +compute ms/);
    expect(r.stdout).toMatch(/rank 0 +│[█░·]+│/);
  }, 100_000);

  it('refuses a split that does not match the ranks, naming the problem', async () => {
    const r = await runCli(
      ['run', '--ranks', '2', '--model', 'synthetic:tiny', '--prompt-tokens', '40', '--split', '0,10,20,40'],
      { timeoutMs: 90_000 },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a split for 2 ranks needs 3 boundaries, got 4 \(0,10,20,40\)/);
  }, 100_000);
});
