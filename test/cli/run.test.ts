import { describe, expect, it } from '@jest/globals';
import { execFile, spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, RUNAHEAD_BIN, runCli } from '../support/cli.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';
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
      ttftMs: number;
      criticalPath: { rank: number; kind: string; start: number; end: number }[];
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
        criticalSendMs: expect.any(Number),
        bytesSent: expect.any(Number),
        peakRssBytes: expect.any(Number),
      }),
    );
    // The critical path runs from the release to the first token without a gap, ending on the last rank.
    const path = out.criticalPath;
    expect(path[0]!.start).toBe(0);
    expect(path.at(-1)).toMatchObject({ rank: 2, end: out.ttftMs });
    for (let i = 1; i < path.length; i++) expect(path[i]!.start).toBeCloseTo(path[i - 1]!.end, 1);
    const sendOnPath = path.filter((p) => p.kind === 'send').reduce((t, p) => t + p.end - p.start, 0);
    const critical = out.ranks.reduce((t, x) => t + (x.criticalSendMs as number), 0);
    expect(Math.abs(sendOnPath - critical)).toBeLessThan(0.01 * path.length + 0.05);
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

  it('refuses a split that does not match the ranks before any rank starts: exit 2, naming the problem', async () => {
    const r = await runCli(
      ['run', '--ranks', '2', '--model', 'synthetic:tiny', '--prompt-tokens', '40', '--split', '0,10,20,40'],
      { timeoutMs: 90_000 },
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/a split for 2 ranks needs 3 boundaries, got 4 \(0,10,20,40\)/);
    expect(r.stderr).not.toMatch(/loading model|exited unexpectedly/);
  }, 100_000);

  it.each([
    [
      ['--model', '/nonexistent', '--prompt', 'hi'],
      /checkpoint directory \/nonexistent does not exist \(--model\)/,
    ],
    [
      ['--model', 'synthetic:tiny', '--prompt', 'hi', '--ranks', '8'],
      /the context \(\d tokens\) must have at least one token per rank \(8 ranks\)/,
    ],
    [
      ['--model', 'synthetic:tiny', '--prompt-tokens', '64', '--partition', 'balanced'],
      /needs a partition table/,
    ],
    [
      ['--model', 'synthetic:tiny', '--prompt-file', '/nonexistent.txt'],
      /--prompt-file \/nonexistent.txt: ENOENT/,
    ],
  ])(
    'checks %j before loading the model: exit 2 with the reason',
    async (args, message) => {
      const r = await runCli(['run', '--ranks', '2', ...args], { timeoutMs: 60_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/loading model|exited unexpectedly/);
    },
    70_000,
  );

  it('prefill and run name a missing model the same way', async () => {
    const [prefill, run] = await Promise.all([
      runCli(['prefill', '--model', '/nonexistent', '--prompt', 'hi']),
      runCli(['run', '--model', '/nonexistent', '--prompt', 'hi']),
    ]);
    expect([prefill.code, run.code]).toEqual([2, 2]);
    const message = 'model: checkpoint directory /nonexistent does not exist (--model)';
    expect(prefill.stderr).toContain(message);
    expect(run.stderr).toContain(message);
  }, 70_000);

  it('a rank that exits with a configuration error while loading ends the run at once: exit 2 with its message', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'broken-'));
    await cp(modelDir('llama3-tiny'), dir, { recursive: true });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    delete config['hidden_size'];
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    // The launcher's own checks pass (the directory and its tokenizer exist); the ranks find the
    // broken config while loading.
    const r = await runCli(['run', '--ranks', '2', '--model', dir, '--prompt', 'hi'], { timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/rank \d exited unexpectedly \(code 2\)/);
    expect(r.stderr).toMatch(/config\.json: hidden_size/);
  }, 70_000);

  it('a rank killed while the ranks load ends the run within seconds, naming it, and leaves no rank running', async () => {
    const seed = String(40_000 + (process.pid % 10_000));
    const child = spawn(
      process.execPath,
      [
        RUNAHEAD_BIN,
        'run',
        '--ranks',
        '3',
        '--model',
        'synthetic:small',
        '--seed',
        seed,
        '--prompt-tokens',
        '2048',
      ],
      { cwd: ROOT, env: { ...process.env, RUNAHEAD_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const ranks = (rank?: number) =>
      pids(
        `runahead.js worker --model synthetic:small --model-origin --model --seed ${seed} --rank ${rank ?? ''}`,
      );
    try {
      const victim = await eventually('rank 1 to start', async () => (await ranks(1))[0], 60_000, 100);
      process.kill(victim, 'SIGKILL');
      // exitCode stays null until it exits (and 0 would be falsy: a wrong success times out here).
      const code = await eventually('the launcher to exit after the kill', () => child.exitCode, 15_000, 50);
      expect(code).toBe(1);
      // Its stderr may still be draining after the exit event.
      await eventuallyExpect(
        'the dead rank named',
        () => stderr,
        (text) => {
          expect(text).toMatch(/rank 1 exited unexpectedly \(signal SIGKILL\)/);
        },
        5_000,
      );
      await eventuallyExpect(
        'no rank left running',
        () => ranks(),
        (left) => {
          expect(left).toEqual([]);
        },
        10_000,
      );
    } finally {
      child.kill('SIGKILL');
    }
  }, 100_000);
});

/** Pids of processes whose command line contains `pattern`. */
async function pids(pattern: string): Promise<number[]> {
  const out = await new Promise<string>((resolve) => {
    execFile('pgrep', ['-f', '--', pattern], (_, stdout) => {
      resolve(stdout);
    });
  });
  return out.split('\n').filter(Boolean).map(Number);
}
