// Faults of whole processes: a rank killed in the middle of a prefill, a peer that never comes
// up, and the job mode a RunaheadJob pod uses (including its failure path).
import { afterAll, describe, expect, it, jest } from '@jest/globals';
import { Metadata } from '@grpc/grpc-js';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mode, type RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { RankGroup } from '../../cli/launcher/rank-group.ts';
import { freePorts } from '../../cli/launcher/ports.ts';
import { request } from '../support/chain.ts';
import { eventually } from '../support/eventually.ts';
import { startWorker } from '../support/worker-process.ts';

jest.setTimeout(120_000);

const PEER_TIMEOUT_MS = 3000;
const groups: RankGroup[] = [];
afterAll(async () => {
  await Promise.all(groups.map((g) => g.close()));
});

function isAlive(pid: number | undefined): boolean {
  try {
    process.kill(pid!, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a rank killed mid-prefill', () => {
  it('fails the run within the deadline, naming the rank, and leaves nothing running', async () => {
    const group = await RankGroup.start({
      ranks: 3,
      spec: { model: 'synthetic:small', seed: 0, dtype: 'float32', ep: 'cpu', threads: 1, deviceId: 0 },
      limits: { maxFrameBytes: 1 << 20, maxQueuedFrames: 16, peerTimeoutMs: PEER_TIMEOUT_MS },
      startupTimeoutMs: 60_000,
      runTimeoutMs: 60_000,
      env: { RUNAHEAD_LOG_LEVEL: 'debug' },
    });
    groups.push(group);
    const ids = Array.from({ length: 600 }, (_, i) => 3 + ((i * 7919) % 31000));
    // Call rank 0 directly, to see the coordinator's own verdict rather than the launcher's.
    const run = new Promise<RunResult>((resolve, reject) => {
      group
        .client(0)
        .run(
          request(ids, Mode.MODE_RUNAHEAD, [], { debugState: false }),
          new Metadata(),
          { deadline: Date.now() + 60_000 },
          (err, r) => {
            if (err) reject(err);
            else resolve(r);
          },
        );
    });
    run.catch(() => undefined);
    const victim = group.processes[1]!;
    await eventually(
      'rank 1 to reach layer 2',
      async () => /"layer":2,"msg":"layer done"/.test(await readFile(victim.logFile, 'utf8')),
      30_000,
      10,
    );
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await expect(run).rejects.toThrow(/rank \d: .*rank 1|rank 1/);
    const error = await run.catch((e: unknown) => (e as Error).message);
    expect(error).toMatch(/KV stream (to|from) rank 1|rank 1 .*(unreachable|ended|failed)/);
    expect(Date.now() - killedAt).toBeLessThan(PEER_TIMEOUT_MS * 3);
    expect(await victim.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The launcher names the dead rank too, and the group shuts down completely.
    await expect(group.run(request(ids, Mode.MODE_RUNAHEAD))).rejects.toThrow(
      /rank 1 exited unexpectedly \(signal SIGKILL\)/,
    );
    await group.close();
    expect(group.processes.map((p) => isAlive(p.child.pid))).toEqual([false, false, false]);
  });
});

describe('job mode (one run, then exit: what a RunaheadJob pod does)', () => {
  it('runs the prompt through two ranks, prints the result, writes the result file and exits 0', async () => {
    const ports = await freePorts(2);
    const peers = ports.map((p) => `127.0.0.1:${p}`).join(',');
    const dir = await mkdtemp(join(tmpdir(), 'job-'));
    const common = [
      '--world-size',
      '2',
      '--peers',
      peers,
      '--model',
      'synthetic:tiny',
      '--threads',
      '1',
      '--peer-timeout-ms',
      '5000',
    ];
    const rank1 = startWorker(['--rank', '1', '--listen', `127.0.0.1:${ports[1]}`, ...common]);
    const rank0 = startWorker([
      ...['--rank', '0', '--listen', `127.0.0.1:${ports[0]}`, ...common],
      ...['--prompt', 'hello chain', '--json', '--result-file', join(dir, 'result.json')],
    ]);
    expect(await rank0.exited).toEqual({ code: 0, signal: null });
    expect(await rank1.exited).toEqual({ code: 0, signal: null });
    const result = JSON.parse(await readFile(join(dir, 'result.json'), 'utf8')) as {
      ttftMs: number;
      boundaries: number[];
      ranks: unknown[];
    };
    expect(result.ttftMs).toBeGreaterThan(0);
    expect(result.boundaries).toEqual([0, 6, 12]); // BOS + 11 bytes, split evenly
    expect(result.ranks).toHaveLength(2);
  });

  it('fails cleanly when a peer never comes up', async () => {
    const ports = await freePorts(2);
    const dir = await mkdtemp(join(tmpdir(), 'job-'));
    const started = Date.now();
    const rank0 = startWorker([
      ...[
        '--rank',
        '0',
        '--world-size',
        '2',
        '--peers',
        ports.map((p) => `127.0.0.1:${p}`).join(','),
        '--listen',
        `127.0.0.1:${ports[0]}`,
      ],
      ...[
        '--model',
        'synthetic:tiny',
        '--threads',
        '1',
        '--startup-timeout-ms',
        '2000',
        '--prompt',
        'x',
        '--result-file',
        join(dir, 'result.json'),
      ],
    ]);
    expect(await rank0.exited).toEqual({ code: 1, signal: null });
    expect(Date.now() - started).toBeLessThan(20_000);
    const written = JSON.parse(await readFile(join(dir, 'result.json'), 'utf8')) as { error: string };
    expect(written.error).toMatch(
      new RegExp(`rank 1 at 127\\.0\\.0\\.1:${ports[1]} was not ready within 2000 ms`),
    );
    // Rank 0 ends, naming the rank it waited for.
    expect(rank0.log).toMatch(/runahead: rank 0: rank 1 at .* was not ready within 2000 ms/);
  });
});
