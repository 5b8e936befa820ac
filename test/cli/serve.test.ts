// `runahead serve` as a user runs it: the real command, its ranks as processes, real HTTP. A rank
// held with SIGSTOP keeps a request in flight for as long as a test needs (synthetic:tiny answers
// in milliseconds otherwise); SIGKILL is a rank that dies.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { request } from 'node:http';
import { readdir, readFile } from 'node:fs/promises';
import { runCli } from '../support/cli.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';
import { call, startServe, stopServe, type Reply, type Server } from '../support/serve.ts';

jest.setTimeout(120_000);

const MODEL = 'synthetic:tiny';
/** Prompts of fewer tokens run on one rank. */
const SINGLE_BELOW = 24;

interface CompletionReply {
  choices: { text: string; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number };
  runahead: {
    ranks: number;
    mode: string;
    boundaries: number[];
    ttft_ms: number;
    queue_ms: number;
    token_ids: number[];
    route_reason: string;
  };
  error?: { message: string; code: string | null; param: string | null };
}

const complete = (port: number, body: object, signal?: AbortSignal) =>
  call(port, '/v1/completions', { body: { model: MODEL, ...body }, ...(signal ? { signal } : {}) });

const json = (r: Reply) => JSON.parse(r.body) as CompletionReply;

/** A prompt of `n` token ids (BOS first, as the tokenizer would begin). */
const ids = (n: number, from = 3) => [1, ...Array.from({ length: n - 1 }, (_, i) => from + ((i * 37) % 400))];

async function metric(port: number, name: string): Promise<number> {
  const text = (await call(port, '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** The pids of `parent`'s child processes that run rank `rank`. */
async function rankPid(parent: number, rank: number): Promise<number> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== parent) continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      const at = argv.indexOf('--rank');
      if (argv.includes('worker') && argv[at + 1] === String(rank)) return Number(entry);
    } catch {
      // the process went away meanwhile
    }
  }
  throw new Error(`no rank ${rank} under process ${parent}`);
}

describe('runahead serve', () => {
  let server: Server;

  beforeAll(async () => {
    server = await startServe([
      ...['--ranks', '2', '--model', MODEL, '--threads', '1', '--port', '0'],
      ...['--single-below', String(SINGLE_BELOW), '--max-queue', '1', '--max-prompt-tokens', '256'],
      // A stopped rank must not fail its run on a peer deadline before the test is done with it.
      ...['--peer-timeout-ms', '20000'],
    ]);
  });
  afterAll(async () => {
    await stopServe(server);
  });

  it('is ready once every rank serves, lists its model, and answers a completion with where it ran', async () => {
    expect((await call(server.port, '/healthz')).status).toBe(200);
    expect(await call(server.port, '/readyz?verbose')).toMatchObject({
      status: 200,
      body: '[+]ranks-serving ok\nok\n',
    });
    expect(JSON.parse((await call(server.port, '/v1/models')).body)).toMatchObject({ data: [{ id: MODEL }] });
    const long = json(await complete(server.port, { prompt: ids(40), max_tokens: 3 }));
    expect(long.runahead).toMatchObject({ ranks: 2, mode: 'runahead', boundaries: [0, 20, 40] });
    expect(long.runahead.route_reason).toBe(`40 tokens ≥ --single-below ${SINGLE_BELOW}`);
    expect(long.usage).toMatchObject({ prompt_tokens: 40, completion_tokens: 3 });
    expect(long.runahead.token_ids).toHaveLength(3);
    expect(long.runahead.ttft_ms).toBeGreaterThan(0);
    const short = json(await complete(server.port, { prompt: ids(8), max_tokens: 2 }));
    expect(short.runahead).toMatchObject({ ranks: 1, mode: 'single', boundaries: [0, 8] });
  });

  it('generates the tokens runahead prefill does, on one rank and split', async () => {
    for (const text of ['Hello', 'The quick brown fox jumps over the lazy dog, twice over']) {
      const prefill = await runCli([
        'prefill',
        '--model',
        MODEL,
        '--prompt',
        text,
        '--max-new-tokens',
        '5',
        '--json',
      ]);
      expect(prefill.code).toBe(0);
      const expected = JSON.parse(prefill.stdout) as { tokens: number[]; contextLength: number };
      const served = json(await complete(server.port, { prompt: text, max_tokens: 6 }));
      expect(served.runahead.ranks).toBe(expected.contextLength < SINGLE_BELOW ? 1 : 2);
      expect(served.runahead.token_ids).toEqual(expected.tokens);
    }
  });

  it('streams the first token the moment it exists, then each token as it is decoded, then [DONE]', async () => {
    // 200 tokens of decoding on the last rank: the first chunk must not wait for them.
    const events: { at: number; data: string }[] = [];
    const status = await new Promise<{ status: number; type: string | undefined }>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: server.port, path: '/v1/completions', method: 'POST', agent: false },
        (res) => {
          let buffered = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buffered += c;
            for (let i = buffered.indexOf('\n\n'); i >= 0; i = buffered.indexOf('\n\n')) {
              events.push({ at: performance.now(), data: buffered.slice(0, i).replace(/^data: /, '') });
              buffered = buffered.slice(i + 2);
            }
          });
          res.on('end', () => {
            resolve({
              status: res.statusCode ?? 0,
              type: res.headers['content-type'],
            });
          });
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ model: MODEL, prompt: ids(40), max_tokens: 200, stream: true }));
    });
    expect(status).toMatchObject({ status: 200, type: 'text/event-stream' });
    expect(events.at(-1)!.data).toBe('[DONE]');
    const chunks = events
      .slice(0, -1)
      .map((e) => JSON.parse(e.data) as CompletionReply & { runahead: { first_token?: number } });
    const last = chunks.at(-1)!;
    expect(chunks[0]!.choices[0]!.finish_reason).toBeNull();
    expect(last.runahead.token_ids[0]).toBe(chunks[0]!.runahead.first_token);
    expect(last.usage.completion_tokens).toBe(200);
    // Token by token: a chunk for each token that adds text (random bytes of the synthetic model
    // often end inside a character and wait for the next), and together the whole text.
    expect(chunks.length).toBeGreaterThan(10);
    const whole = json(await complete(server.port, { prompt: ids(40), max_tokens: 200 }));
    expect(chunks.map((c) => c.choices[0]!.text).join('')).toBe(whole.choices[0]!.text);
    // The first chunk came while the last rank was still decoding: well before the last one.
    expect(events.at(-1)!.at - events[0]!.at).toBeGreaterThan(20);
  });

  it('serves concurrent requests one at a time, each as it would alone, refusing what the queue cannot hold', async () => {
    const prompts = [ids(40, 5), ids(8, 9), ids(30, 11)];
    const alone = [];
    for (const prompt of prompts)
      alone.push(json(await complete(server.port, { prompt, max_tokens: 4 })).runahead.token_ids);
    // The queue holds one: the third may be refused; the others wait their turn.
    const replies = await Promise.all(
      prompts.map((prompt) => complete(server.port, { prompt, max_tokens: 4 })),
    );
    const served = replies.filter((r) => r.status === 200);
    expect(served.length).toBeGreaterThanOrEqual(2);
    for (const [i, r] of replies.entries()) {
      if (r.status === 200) expect(json(r).runahead.token_ids).toEqual(alone[i]);
      else expect(r.status).toBe(429);
    }
    expect(Math.max(...served.map((r) => json(r).runahead.queue_ms))).toBeGreaterThan(0);
  });

  it('refuses bad requests by field, and bodies over the limit', async () => {
    const badModel = await call(server.port, '/v1/completions', { body: { model: 'gpt-4', prompt: 'x' } });
    expect(badModel.status).toBe(404);
    expect(json(badModel).error).toMatchObject({ param: 'model', code: 'model_not_found' });
    const tooLong = await complete(server.port, { prompt: ids(300) });
    expect(tooLong.status).toBe(400);
    expect(json(tooLong).error!.message).toBe(
      'prompt has 300 tokens; this server takes at most 256 (--max-prompt-tokens)',
    );
    const huge = await complete(server.port, { prompt: 'x'.repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    expect((await call(server.port, '/v1/completions')).status).toBe(405);
  });

  it('answers 429 with Retry-After when the queue is full, then serves what it took', async () => {
    const rank1 = await rankPid(server.child.pid!, 1);
    process.kill(rank1, 'SIGSTOP');
    try {
      const running = complete(server.port, { prompt: ids(40), max_tokens: 2 });
      await eventually(
        'a request in flight',
        async () => (await metric(server.port, 'runahead_serve_in_flight')) === 1,
      );
      const queued = complete(server.port, { prompt: ids(8), max_tokens: 2 });
      await eventually(
        'a request queued',
        async () => (await metric(server.port, 'runahead_serve_queue_depth')) === 1,
      );
      const refused = await complete(server.port, { prompt: ids(8), max_tokens: 2 });
      expect(refused.status).toBe(429);
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(json(refused).error).toMatchObject({ code: 'queue_full' });
      process.kill(rank1, 'SIGCONT');
      expect((await running).status).toBe(200);
      expect((await queued).status).toBe(200);
    } finally {
      process.kill(rank1, 'SIGCONT');
    }
  });

  it('stops the work of a client that goes away, queued or running, and serves the next', async () => {
    const rank1 = await rankPid(server.child.pid!, 1);
    const gone = () => metric(server.port, 'runahead_serve_requests_total{code="499"}');
    const before = await gone();
    process.kill(rank1, 'SIGSTOP');
    try {
      const runningClient = new AbortController();
      const queuedClient = new AbortController();
      const running = complete(server.port, { prompt: ids(40), max_tokens: 2 }, runningClient.signal);
      await eventually(
        'a request in flight',
        async () => (await metric(server.port, 'runahead_serve_in_flight')) === 1,
      );
      const queued = complete(server.port, { prompt: ids(8), max_tokens: 2 }, queuedClient.signal);
      await eventually(
        'a request queued',
        async () => (await metric(server.port, 'runahead_serve_queue_depth')) === 1,
      );
      queuedClient.abort();
      await expect(queued).rejects.toThrow();
      await eventually(
        'the queued request to leave',
        async () => (await metric(server.port, 'runahead_serve_queue_depth')) === 0,
      );
      runningClient.abort();
      await expect(running).rejects.toThrow();
      await eventually(
        'the run to stop',
        async () => (await metric(server.port, 'runahead_serve_in_flight')) === 0,
      );
      expect(await gone()).toBe(before + 2);
    } finally {
      process.kill(rank1, 'SIGCONT');
    }
    const next = await complete(server.port, { prompt: ids(40), max_tokens: 2 });
    expect(next.status).toBe(200);
  });

  it('answers 503 naming the rank when one dies mid-request, and serves again once the group is back', async () => {
    const rank1 = await rankPid(server.child.pid!, 1);
    process.kill(rank1, 'SIGSTOP');
    const running = complete(server.port, { prompt: ids(40), max_tokens: 2 });
    await eventually(
      'a request in flight',
      async () => (await metric(server.port, 'runahead_serve_in_flight')) === 1,
    );
    process.kill(rank1, 'SIGKILL');
    const failed = await running;
    expect(failed.status).toBe(503);
    expect(failed.headers['retry-after']).toBe('5');
    expect(json(failed).error).toMatchObject({ code: 'rank_exited' });
    expect(json(failed).error!.message).toMatch(
      /^rank 1 exited unexpectedly \(signal SIGKILL\).*; the rank group is starting again$/,
    );
    await eventuallyExpect(
      'the group to serve again',
      () => call(server.port, '/readyz'),
      (r) => {
        expect(r.status).toBe(200);
      },
      60_000,
      200,
    );
    expect(await metric(server.port, 'runahead_serve_group_restarts_total')).toBe(1);
    const again = await complete(server.port, { prompt: ids(40), max_tokens: 2 });
    expect(again.status).toBe(200);
    expect(json(again).runahead.ranks).toBe(2);
    // The TTFT histogram and the per-rank times saw every run.
    expect(await metric(server.port, 'runahead_serve_ttft_seconds_count{ranks="2"}')).toBeGreaterThan(0);
    expect(
      await metric(server.port, 'runahead_serve_rank_seconds_count{rank="1",kind="wait"}'),
    ).toBeGreaterThan(0);
  });
});

describe('runahead serve with a short request deadline', () => {
  let server: Server | undefined;
  beforeAll(async () => {
    server = await startServe([
      ...['--ranks', '2', '--model', MODEL, '--threads', '1', '--port', '0', '--route', 'split'],
      ...['--request-timeout-ms', '3000'],
    ]);
  });
  afterAll(async () => {
    await stopServe(server);
  });

  /** Once the stopped rank runs again, the group serves (a late Start may hold a rank a moment). */
  const servesAgain = (port: number) =>
    eventuallyExpect(
      'a completion again',
      () => complete(port, { prompt: ids(40), max_tokens: 2 }),
      (r) => {
        expect(r.status).toBe(200);
      },
      15_000,
      200,
    );

  it('answers 504 when a request outlives --request-timeout-ms, stops its run, and serves the next', async () => {
    const { port, child } = server!;
    const rank0 = await rankPid(child.pid!, 0);
    process.kill(rank0, 'SIGSTOP');
    let late: Reply;
    try {
      late = await complete(port, { prompt: ids(40), max_tokens: 2 });
    } finally {
      process.kill(rank0, 'SIGCONT');
    }
    expect(late.status).toBe(504);
    expect(json(late).error).toMatchObject({
      message: 'no answer within 3000 ms (--request-timeout-ms)',
      code: 'deadline_exceeded',
    });
    await servesAgain(port);
  });
});

describe('runahead serve refuses what it cannot serve before loading anything', () => {
  it.each([
    [
      ['--route', 'auto'],
      /--route auto \(the default\) needs --profile <cost profile>.* or --single-below <tokens>/,
    ],
    [['--route', 'split', '--single-below', '8'], /--route split takes neither/],
    [
      ['--profile', 'bench/results/cpu-balanced-h100host/profile.json'],
      /is calibrated for synthetic:small; this server serves synthetic:tiny/,
    ],
    [['--route', 'split', '--split', '0,4,8'], /--split: a server splits each prompt by its length/],
    [['--route', 'split', '--max-new-tokens', '4'], /--max-new-tokens: each request says its own max_tokens/],
  ])('%j', async (args, message) => {
    const r = await runCli(['serve', '--model', MODEL, '--port', '0', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
