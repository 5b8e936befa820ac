// calibrate → tune → run with the balanced partition, through the CLI as a user runs it.
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attendMs, predict, projectMs, type CostCoefficients } from '../../core/cost-model.ts';
import { evenBoundaries } from '../../core/partition.ts';
import { lookupBoundaries, parsePartitionTable } from '../../core/partition-table.ts';
import type { BenchResults } from '../../cli/bench/results.ts';
import { readLinkGBps } from '../../cli/commands/calibrate.ts';
import { runCli } from '../support/cli.ts';

// Runs of the tiny preset synthesised from known costs: the CLI must recover a profile that
// predicts them, and tune must favour earlier ranks.
const truth: CostCoefficients = {
  project: [0.2, 0.01],
  attend: [0.3, 0.02, 2e-5],
  transfer: [0.1, 1e-5],
  fixedMs: 8,
};
const shape = { numLayers: 2, kvBytesPerToken: 2 * 2 * 16 * 4 };

function point(mode: 'single' | 'runahead' | 'tsp', boundaries: number[]): BenchResults['points'][number] {
  const n = boundaries.length - 1;
  const timeline = [];
  for (let rank = 0; rank < n; rank++) {
    const c = boundaries[rank + 1]! - boundaries[rank]!;
    const keys = mode === 'single' ? boundaries[n]! : boundaries[rank + 1]!;
    for (let layer = 0; layer < shape.numLayers; layer++) {
      timeline.push({ rank, kind: 'project', layer, start: 0, end: projectMs(truth, c) });
      timeline.push({ rank, kind: 'attend', layer, start: 0, end: attendMs(truth, c, keys) });
    }
  }
  const ttftMs = predict(truth, shape, mode, boundaries).ttftMs;
  return {
    context: boundaries[n]!,
    mode,
    ranks: n,
    ttft: { median: ttftMs, min: ttftMs, max: ttftMs, runs: 1 },
    median: { mode, boundaries, ttftMs, timeline },
  };
}

describe('runahead calibrate, tune, and run --partition balanced', () => {
  it('fits a profile, writes a table whose splits favour earlier ranks, and the launcher uses it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'balance-'));
    const results: BenchResults = {
      version: 1,
      command: 'synthesised',
      machine: 'test machine',
      model: 'synthetic:tiny',
      dtype: 'float32',
      ep: 'cpu',
      threadsPerRank: 1,
      points: [1000, 2000, 4000].flatMap((c) => [
        point('single', [0, c]),
        point('runahead', evenBoundaries(c, 4)),
        point('tsp', evenBoundaries(c, 4)),
      ]),
    };
    await writeFile(join(dir, 'runs.json'), JSON.stringify(results));
    const cal = await runCli([
      'calibrate',
      '--runs',
      join(dir, 'runs.json'),
      '--out',
      join(dir, 'profile.json'),
    ]);
    expect(cal.stderr).toBe('');
    expect(cal.stdout).toMatch(/RMS relative TTFT error \d+\.\d%/);
    const profile = JSON.parse(await readFile(join(dir, 'profile.json'), 'utf8')) as {
      coefficients: CostCoefficients;
      fit: { rmsRelativeError: number };
    };
    expect(profile.fit.rmsRelativeError).toBeLessThan(0.02);

    const tune = await runCli([
      'tune',
      '--ranks',
      '4',
      '--profile',
      join(dir, 'profile.json'),
      '--out',
      join(dir, 'table.json'),
      '--contexts',
      '64,128,4096',
    ]);
    expect(tune.code).toBe(0);
    expect(tune.stdout).toMatch(/\| 4096 \| 0,\d+,\d+,\d+,4096 \|/);
    const table = parsePartitionTable(JSON.parse(await readFile(join(dir, 'table.json'), 'utf8')));
    const big = table.entries.find((e) => e.contextLength === 4096)!;
    const chunks = big.boundaries.slice(1).map((b, i) => b - big.boundaries[i]!);
    expect(chunks[0]!).toBeGreaterThan(chunks[3]!);
    expect(big.predictedMs!).toBeLessThan(big.evenPredictedMs!);

    const run = await runCli(
      [
        'run',
        '--ranks',
        '4',
        '--model',
        'synthetic:tiny',
        '--prompt-tokens',
        '100',
        '--partition',
        'balanced',
        '--partition-table',
        join(dir, 'table.json'),
        '--json',
      ],
      { timeoutMs: 90_000 },
    );
    expect(run.stderr).toBe('');
    const out = JSON.parse(run.stdout) as { boundaries: number[]; partition: string };
    expect(out.partition).toBe('balanced');
    expect(out.boundaries).toEqual(lookupBoundaries(table, 100));
  }, 120_000);

  it('calibrate --link: the link benchmark’s socketGBps (the ranks’ transport) is the rate when the runs have no sends', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'balance-'));
    const results: BenchResults = {
      version: 1,
      command: 'synthesised',
      machine: 'test machine',
      model: 'synthetic:tiny',
      dtype: 'float32',
      ep: 'cpu',
      threadsPerRank: 1,
      points: [1000, 2000, 4000].flatMap((c) => [
        point('single', [0, c]),
        point('runahead', evenBoundaries(c, 4)),
      ]),
    };
    await writeFile(join(dir, 'runs.json'), JSON.stringify(results));
    await writeFile(
      join(dir, 'link.json'),
      JSON.stringify({ socketGBps: 0.8, grpcGBps: 0.5, tcpGBps: 2, memcpyGBps: 9 }),
    );
    const cal = await runCli([
      'calibrate',
      '--runs',
      join(dir, 'runs.json'),
      '--link',
      join(dir, 'link.json'),
      '--out',
      join(dir, 'profile.json'),
    ]);
    expect(cal.stderr).toBe('');
    expect(cal.stdout).toMatch(/transfer: link 0\.80 GB\/s, latency [\d.]+ ms — from the link benchmark/);
    const profile = JSON.parse(await readFile(join(dir, 'profile.json'), 'utf8')) as {
      coefficients: CostCoefficients;
      fit: { transfer: unknown };
    };
    expect(profile.coefficients.transfer[1]).toBeCloseTo(1 / 0.8e6, 15);
    expect(profile.fit.transfer).toEqual({ source: 'link', samples: 0, linkGBps: 0.8 });
    // A file from before K/V sockets (or `--paths grpc`) gives its gRPC rate.
    await writeFile(join(dir, 'grpc.json'), JSON.stringify({ socketGBps: null, grpcGBps: 0.5 }));
    expect(await readLinkGBps(join(dir, 'grpc.json'))).toBe(0.5);

    await writeFile(join(dir, 'bad.json'), JSON.stringify({ grpcGBps: 'fast' }));
    const bad = await runCli([
      'calibrate',
      '--runs',
      join(dir, 'runs.json'),
      '--link',
      join(dir, 'bad.json'),
      '--out',
      join(dir, 'p2.json'),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--link .*bad\.json: not a runahead bench link --json file \(grpcGBps: /);
  }, 60_000);

  it('refuses balanced without a table, and a table for another rank count', async () => {
    const noTable = await runCli(
      [
        'run',
        '--ranks',
        '2',
        '--model',
        'synthetic:tiny',
        '--prompt-tokens',
        '40',
        '--partition',
        'balanced',
      ],
      { timeoutMs: 90_000 },
    );
    // Refused before any rank starts, as a configuration error (exit 2), like the rank-count mismatch.
    expect(noTable.code).toBe(2);
    expect(noTable.stderr).toMatch(
      /partition "balanced" needs a partition table: give rank 0 --partition-table/,
    );
    expect(noTable.stderr).not.toMatch(/exited unexpectedly/);
    const dir = await mkdtemp(join(tmpdir(), 'balance-'));
    await writeFile(
      join(dir, 't.json'),
      JSON.stringify({
        version: 1,
        model: 'synthetic:tiny',
        ranks: 3,
        entries: [{ contextLength: 30, boundaries: [0, 12, 22, 30] }],
      }),
    );
    const wrong = await runCli(
      [
        'run',
        '--ranks',
        '2',
        '--model',
        'synthetic:tiny',
        '--prompt-tokens',
        '40',
        '--partition',
        'balanced',
        '--partition-table',
        join(dir, 't.json'),
      ],
      {
        timeoutMs: 90_000,
      },
    );
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/the partition table is for 3 ranks; this run has 2/);
    expect(wrong.stderr).not.toMatch(/exited unexpectedly/);
  }, 120_000);
});
