// What a rank pod leaves for the operator: each `runahead worker` in job mode writes its termination
// message (--termination-log) and exits 0, 1 (run failure, retriable) or 2 (configuration error).
import { describe, expect, it, jest } from '@jest/globals';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TERMINATION_MESSAGE_MAX_BYTES,
  WorkerExit,
  parseTerminationMessage,
  type TerminationMessage,
} from '../../core/api/termination-message.ts';
import { freePorts } from '../../cli/launcher/ports.ts';
import { runCli } from '../support/cli.ts';
import { modelDir, reference } from '../support/fixtures.ts';
import { startWorker } from '../support/worker-process.ts';

jest.setTimeout(120_000);

async function readLog(path: string): Promise<TerminationMessage> {
  const text = await readFile(path, 'utf8');
  expect(Buffer.byteLength(text)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
  const message = parseTerminationMessage(text);
  if (!message) throw new Error(`not a termination message: ${text}`);
  return message;
}

/** Flags of a 2-rank job on loopback, each rank with its own termination log in `dir`. */
async function job(model: string, extra: readonly string[] = []) {
  const ports = await freePorts(2);
  const dir = await mkdtemp(join(tmpdir(), 'termination-'));
  const rank = (r: number, more: readonly string[] = []) => [
    ...['--rank', String(r), '--world-size', '2', '--listen', `127.0.0.1:${ports[r]}`],
    ...['--peers', ports.map((p) => `127.0.0.1:${p}`).join(',')],
    ...['--model', model, '--threads', '1', '--termination-log', join(dir, `rank${r}.log`)],
    ...extra,
    ...more,
  ];
  return { dir, rank, log: (r: number) => join(dir, `rank${r}.log`) };
}

describe('termination log of a job-mode worker', () => {
  it('2 ranks on the tiny checkpoint: both logs parse, rank 0’s first token is runahead prefill’s', async () => {
    const prompt = reference.models['llama3-tiny'].prompts[0]!;
    const j = await job(modelDir('llama3-tiny'), ['--max-new-tokens', '3']);
    const rank1 = startWorker(j.rank(1));
    const rank0 = startWorker(j.rank(0, ['--prompt', prompt.text]));
    const prefill = await runCli(
      ['prefill', '--model', modelDir('llama3-tiny'), '--prompt', prompt.text, '--json'],
      { timeoutMs: 60_000 },
    );
    expect(await rank0.exited).toEqual({ code: WorkerExit.Ok, signal: null });
    expect(await rank1.exited).toEqual({ code: WorkerExit.Ok, signal: null });

    expect(await readLog(j.log(1))).toEqual({ v: 1, ok: true, rank: 1 });
    const m0 = await readLog(j.log(0));
    if (!m0.ok || !m0.result) throw new Error(`rank 0 reported no result: ${JSON.stringify(m0)}`);
    const expected = JSON.parse(prefill.stdout) as { firstToken: number; firstTokenText: string };
    expect(m0.result).toMatchObject({
      mode: 'runahead',
      partition: 'even',
      firstToken: expected.firstToken,
      firstTokenText: expected.firstTokenText,
      tokens: prompt.greedy.slice(0, 4),
      contextLength: prompt.ids.length,
      boundaries: [0, 14, 27],
    });
    expect(m0.result.firstToken).toBe(prompt.greedy[0]);
    expect(m0.result.ttftMs).toBeGreaterThan(0);
    expect(m0.result.ranks.map((r) => [r.rank, r.chunk])).toEqual([
      [0, [0, 14]],
      [1, [14, 27]],
    ]);
    for (const r of m0.result.ranks) {
      expect(r.timeline).toMatch(/^[cws.]{64}$/);
      expect(r.timeline).toContain('c');
      expect(r.computeMs).toBeGreaterThan(0);
    }
    // Rank 1 needs rank 0's K/V before it can attend: it waits, rank 0 never does.
    expect(m0.result.ranks[0]?.timeline).not.toContain('w');
    expect(m0.result.ranks[1]?.bytesReceived).toBeGreaterThan(0);
  });

  it('a model directory that does not exist: exit 2 at once, not retriable, naming the path', async () => {
    const missing = join(tmpdir(), 'no-such-model-dir');
    const j = await job(missing, ['--model-origin', 'spec.model.checkpoint.path']);
    const started = Date.now();
    // Rank 1 is never started: the check must come before rank 0 waits for its peers.
    const rank0 = startWorker(j.rank(0, ['--prompt', 'hello']));
    expect(await rank0.exited).toEqual({ code: WorkerExit.ConfigError, signal: null });
    expect(Date.now() - started).toBeLessThan(15_000);
    const error = `rank 0: model: checkpoint directory ${missing} does not exist (spec.model.checkpoint.path)`;
    expect(await readLog(j.log(0))).toEqual({ v: 1, ok: false, rank: 0, retriable: false, error });
    expect(rank0.log).toContain(`runahead: ${error}`);
  });

  it.each([
    [
      'a split that does not fit the prompt',
      ['--prompt', 'hello', '--split', '0,3,100'],
      /rank 0: the last boundary must be the context length 6, got 100/,
    ],
    [
      'a missing partition table file',
      ['--prompt', 'hello', '--partition', 'balanced', '--partition-table', '/nope.json'],
      /rank 0: --partition-table \/nope\.json: ENOENT/,
    ],
    [
      'a bad flag value',
      ['--prompt', 'hello', '--mode', 'fastest'],
      /rank 0: --mode must be runahead, tsp or single/,
    ],
    ['an unknown flag', ['--prompt', 'hello', '--turbo'], /unknown option '--turbo'/],
  ])('%s: exit 2, not retriable', async (_what, args, error) => {
    const j = await job('synthetic:tiny');
    const rank0 = startWorker(j.rank(0, args));
    expect(await rank0.exited).toEqual({ code: WorkerExit.ConfigError, signal: null });
    const m = await readLog(j.log(0));
    expect(m).toMatchObject({ ok: false, rank: 0, retriable: false });
    expect(m.ok ? '' : m.error).toMatch(error);
  });

  it('a peer killed mid-prefill: exit 1, retriable, naming the rank', async () => {
    const j = await job('synthetic:small', ['--peer-timeout-ms', '3000']);
    const rank1 = startWorker(j.rank(1));
    const rank0 = startWorker(j.rank(0, ['--prompt-tokens', '600']));
    await rank1.waitForLog(/"layer":2,"msg":"layer done"/, 60_000);
    rank1.child.kill('SIGKILL');
    expect(await rank1.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await rank0.exited).toEqual({ code: WorkerExit.Failed, signal: null });
    const m = await readLog(j.log(0));
    expect(m).toMatchObject({ v: 1, ok: false, rank: 0, retriable: true });
    expect(m.ok ? '' : m.error).toMatch(/^rank 0: KV stream (to|from) rank 1 /);
  });
});
