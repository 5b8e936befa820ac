// `runahead serve --ranks-at`: the front alone, in front of ranks it did not start (as a RunaheadServer
// group's front pod in front of its rank pods): real `runahead worker --serve` processes at fixed
// addresses, the real command, real HTTP. Ranks started again at the same addresses (the operator
// recreating a group's pods under their stable names) are served again without restarting the front.
import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { freePorts } from '../../cli/launcher/ports.ts';
import { runCli } from '../support/cli.ts';
import { eventuallyExpect } from '../support/eventually.ts';
import { call, startServe, stopServe, type Server } from '../support/serve.ts';
import { startWorker, type WorkerProcess } from '../support/worker-process.ts';

jest.setTimeout(90_000);

const MODEL = 'synthetic:tiny';

interface CompletionReply {
  runahead?: { ranks: number; boundaries: number[]; token_ids: number[] };
  error?: { code: string | null; message: string };
}

let addresses: string[] = [];
let ranks: WorkerProcess[] = [];
let server: Server | undefined;

/** Both ranks, at `addresses`, each `runahead worker --serve` as in a rank pod. */
async function startRanks(): Promise<void> {
  ranks = addresses.map((listen, rank) =>
    startWorker([
      '--serve',
      ...['--rank', String(rank), '--world-size', '2', '--peers', addresses.join(','), '--listen', listen],
      ...['--model', MODEL, '--threads', '1', '--peer-timeout-ms', '20000'],
    ]),
  );
  await Promise.all(ranks.map((r) => r.waitForLog(/"msg":"serving"/, 30_000)));
}

async function stopRanks(): Promise<void> {
  for (const r of ranks)
    if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
  await Promise.all(ranks.map((r) => r.exited));
}

const complete = async (port: number, body: object) => {
  const r = await call(port, '/v1/completions', { body: { model: MODEL, ...body } });
  return { status: r.status, headers: r.headers, body: JSON.parse(r.body) as CompletionReply };
};
const prompt = Array.from({ length: 40 }, (_, i) => (i === 0 ? 1 : 3 + ((i * 37) % 400)));

describe('runahead serve --ranks-at', () => {
  beforeAll(async () => {
    addresses = (await freePorts(2)).map((p) => `127.0.0.1:${p}`);
    server = await startServe([
      ...['--ranks-at', addresses.join(','), '--model', MODEL, '--route', 'split', '--port', '0'],
      ...['--request-timeout-ms', '20000'],
    ]);
  });
  afterEach(() => {
    for (const r of ranks) if (r.child.signalCode === 'SIGSTOP') r.child.kill('SIGCONT');
  });
  afterAll(async () => {
    await stopServe(server);
    await stopRanks();
  });

  it('refuses --ranks that disagrees with the addresses, and --pin-cores', async () => {
    const both = await runCli(['serve', '--ranks', '3', '--ranks-at', 'a:1,b:2', '--model', MODEL]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--ranks 3 but --ranks-at lists 2 address\(es\); give only --ranks-at/);
    const bad = await runCli(['serve', '--ranks-at', 'rank-0', '--model', MODEL]);
    expect(bad.stderr).toMatch(/--ranks-at takes host:port addresses, comma-separated/);
    const pinned = await runCli(['serve', '--ranks-at', 'a:1', '--pin-cores', '1', '--model', MODEL]);
    expect(pinned.stderr).toMatch(
      /--pin-cores pins ranks this command starts; with --ranks-at it starts none/,
    );
  });

  it('is not ready until every rank serves, then runs each prompt over the chain of ranks', async () => {
    const port = server!.port;
    expect((await call(port, '/healthz')).status).toBe(200);
    expect((await call(port, '/readyz')).status).toBe(503);
    await startRanks();
    await eventuallyExpect(
      'the front ready once both ranks serve',
      async () => (await call(port, '/readyz')).status,
      (status) => {
        expect(status).toBe(200);
      },
      20_000,
    );
    const r = await complete(port, { prompt, max_tokens: 3 });
    expect(r.status).toBe(200);
    expect(r.body.runahead).toMatchObject({ ranks: 2, boundaries: [0, 20, 40] });
    expect(r.body.runahead?.token_ids).toHaveLength(3);
  });

  it('answers 503 when rank 0 dies mid-request, and serves again once the ranks are back', async () => {
    const port = server!.port;
    const before = await complete(port, { prompt, max_tokens: 3 });
    expect(before.status).toBe(200);
    // Rank 1 held: the request stays in flight on rank 0 until rank 0 is killed.
    ranks[1]!.child.kill('SIGSTOP');
    const inFlight = complete(port, { prompt, max_tokens: 3 });
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    ranks[0]!.child.kill('SIGKILL');
    const failed = await inFlight;
    expect(failed.status).toBe(503);
    expect(failed.body.error).toMatchObject({ code: 'rank_exited' });
    expect(failed.body.error?.message).toMatch(/^rank 0 at 127\.0\.0\.1:\d+ does not answer/);
    expect(failed.headers['retry-after']).toBeDefined();
    expect(Date.now() - started).toBeLessThan(10_000);
    await eventuallyExpect(
      'the front not ready while rank 0 is gone',
      async () => (await call(port, '/readyz')).status,
      (status) => {
        expect(status).toBe(503);
      },
      10_000,
    );
    ranks[1]!.child.kill('SIGCONT');
    await stopRanks();
    await startRanks();
    await eventuallyExpect(
      'the front ready again',
      async () => (await call(port, '/readyz')).status,
      (status) => {
        expect(status).toBe(200);
      },
      20_000,
    );
    const after = await complete(port, { prompt, max_tokens: 3 });
    expect(after.status).toBe(200);
    expect(after.body.runahead?.token_ids).toEqual(before.body.runahead?.token_ids);
  });
});
