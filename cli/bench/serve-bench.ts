// `runahead bench serve`: a load generator against the serving front, the same prompts under three
// routing policies — every prompt on one rank, every prompt split over the chain, and length-aware
// routing — on one warm rank group. Each policy has its own front (serve-front.ts, real HTTP on
// loopback) over the same group and one admission queue; one client sends each prompt to every
// policy in turn (the order rotated from prompt to prompt), so that load from elsewhere on the
// machine falls on all three alike instead of on whichever ran last. It times the first streamed
// token as a user would (queue and HTTP included), beside rank 0's own TTFT. The report gives TTFT
// p50/p99 per part of the prompt-length mix, throughput, and length-aware routing against the others.
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { request } from 'node:http';
import { dirname } from 'node:path';
import { z } from 'zod';
import { routePrompt, splitFrom, type RouteContext, type RoutePolicy } from '../../core/length-routing.ts';
import { EVEN } from '../../core/partition-choice.ts';
import { engineConfigFromFlags } from '../../core/worker-config.ts';
import { readProfile } from '../commands/calibrate.ts';
import { engineSpecOf } from '../engine-spec.ts';
import { modelConfig } from '../model-info.ts';
import { parseFlags, UsageError } from '../options.ts';
import { AdmissionQueue } from '../serve/admission-queue.ts';
import { LocalGroup } from '../serve/local-group.ts';
import { ServeFront } from '../serve/serve-front.ts';
import { ServeMetrics } from '../serve/serve-metrics.ts';
import { machineDescription } from './machine.ts';
import {
  drawPrompts,
  MixSchema,
  seeded,
  summarizePolicy,
  type MixPart,
  type PolicySummary,
  type ServedRequest,
} from './serve-load.ts';

const POLICIES = ['single', 'split', 'auto'] as const;
type Policy = (typeof POLICIES)[number];
const LABEL: Record<Policy, string> = { single: 'one rank', split: 'always split', auto: 'length-aware' };

const int = (flag: string, min: number) =>
  z.coerce
    .number({ error: `${flag} must be a number` })
    .int(`${flag} must be an integer`)
    .min(min, `${flag} must be ≥ ${min}`);

const Flags = z.object({
  ranks: int('--ranks', 2).max(64, '--ranks must be ≤ 64'),
  mix: MixSchema,
  requests: int('--requests', 1),
  warmup: int('--warmup', 0),
  policies: z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()))
    .refine(
      (xs) => xs.every((x) => (POLICIES as readonly string[]).includes(x)),
      `--policies must be a comma-separated subset of ${POLICIES.join(',')}`,
    )
    .transform((xs) => xs as Policy[]),
  profile: z.string().min(1).optional(),
  singleBelow: int('--single-below', 1).optional(),
  promptSeed: int('--prompt-seed', 0),
  pinCores: int('--pin-cores', 1).optional(),
  out: z.string().optional(),
  jsonOut: z.string().optional(),
});
type BenchFlags = z.infer<typeof Flags>;

interface StreamedAnswer {
  readonly clientTtftMs: number;
  /** Send → the end of the answer. */
  readonly durationMs: number;
  readonly ttftMs: number;
  readonly queueMs: number;
  readonly ranks: number;
}

/** One streamed completion of `ids`; the first token's arrival timed on this side. */
function streamOne(port: number, model: string, ids: readonly number[]): Promise<StreamedAnswer> {
  return new Promise((resolve, reject) => {
    const sent = performance.now();
    let first: number | null = null;
    let body = '';
    const req = request(
      { host: '127.0.0.1', port, path: '/v1/completions', method: 'POST', agent: false },
      (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          first ??= performance.now();
          body += chunk;
        });
        res.on('end', () => {
          const events = body.split('\n\n').filter((e) => e.startsWith('data: {'));
          const last = JSON.parse(events.at(-1)?.slice(6) ?? '{}') as {
            runahead?: { ttft_ms: number; queue_ms: number; ranks: number };
            error?: { message: string };
          };
          if (res.statusCode !== 200 || !last.runahead || first === null)
            reject(
              new Error(`request failed (${res.statusCode}): ${last.error?.message ?? body.slice(0, 200)}`),
            );
          else
            resolve({
              clientTtftMs: first - sent,
              durationMs: performance.now() - sent,
              ttftMs: last.runahead.ttft_ms,
              queueMs: last.runahead.queue_ms,
              ranks: last.runahead.ranks,
            });
        });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ model, prompt: ids, max_tokens: 1, stream: true }));
  });
}

/** The token ids of prompt `index`: the same for every policy. */
function promptIds(index: number, tokens: number, vocabSize: number, seed: number): number[] {
  const random = seeded(seed * 1_000_003 + index);
  return [1, ...Array.from({ length: tokens - 1 }, () => 3 + Math.floor(random() * (vocabSize - 3)))];
}

function autoPolicy(f: BenchFlags, profile: Awaited<ReturnType<typeof readProfile>> | null): RoutePolicy {
  if (profile) return { kind: 'cost-model', profile };
  if (f.singleBelow) return { kind: 'threshold', singleBelow: f.singleBelow };
  throw new UsageError('--policies auto needs --profile <cost profile> or --single-below <tokens>');
}

const mixLabel = (p: MixPart) => `${p.min}–${p.max}`;
const ms = (x: number) => (Number.isNaN(x) ? '' : x >= 100 ? x.toFixed(0) : x.toFixed(1));

export function renderServeReport(
  command: string,
  settings: readonly string[],
  mix: readonly MixPart[],
  summaries: readonly PolicySummary[],
): string {
  const total = mix.reduce((s, p) => s + p.weight, 0);
  const lines = [
    '# runahead bench serve: one rank, always split and length-aware routing',
    '',
    '```',
    command,
    '```',
    '',
    ...settings.map((s) => `- ${s}`),
    `- prompt-length mix: ${mix.map((p) => `${((100 * p.weight) / total).toFixed(0)}% ${mixLabel(p)} tokens`).join(', ')}`,
    '- client TTFT: request sent → first streamed token received (queue and HTTP included); TTFT: rank 0’s clock',
    '',
    '| policy | requests | req/s | prompt tok/s | client TTFT p50 ms | p99 |',
    '|---|---|---|---|---|---|',
    ...summaries.map(
      (s) =>
        `| ${s.policy} | ${s.requests} | ${s.requestsPerSecond.toFixed(2)} | ${s.promptTokensPerSecond.toFixed(0)} | ${ms(s.clientP50)} | ${ms(s.clientP99)} |`,
    ),
    '',
    '| prompt tokens | policy | requests | split | client TTFT p50 ms | p99 | TTFT p50 ms | p99 |',
    '|---|---|---|---|---|---|---|---|',
    ...mix.flatMap((p, i) =>
      summaries.map((s) => {
        const part = s.parts[i]!;
        return `| ${mixLabel(p)} | ${s.policy} | ${part.requests} | ${part.split} | ${ms(part.clientP50)} | ${ms(part.clientP99)} | ${ms(part.ttftP50)} | ${ms(part.ttftP99)} |`;
      }),
    ),
  ];
  const aware = summaries.find((s) => s.policy === LABEL.auto);
  const others = summaries.filter((s) => s !== aware);
  if (aware && others.length > 0) {
    lines.push(
      '',
      'Length-aware routing against the others, client TTFT p50 per part (1.00: as fast; the goal: within 5% of the better one):',
      '',
    );
    for (const [i, p] of mix.entries()) {
      const mine = aware.parts[i]!.clientP50;
      const vs = others.map((o) => `${(mine / o.parts[i]!.clientP50).toFixed(2)}× ${o.policy}`).join(', ');
      lines.push(`- ${mixLabel(p)} tokens: ${vs}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export async function runBenchServe(flags: Record<string, unknown>, argv: readonly string[]): Promise<void> {
  const f = parseFlags(Flags, flags);
  const engine = engineConfigFromFlags(flags);
  const profile = f.profile ? await readProfile(f.profile) : null;
  if (profile && profile.model !== engine.model)
    throw new UsageError(`--profile is calibrated for ${profile.model}; this benchmark runs ${engine.model}`);
  const auto = f.policies.includes('auto') ? autoPolicy(f, profile) : null;
  const config = await modelConfig(engine.model);
  const maxTokens = Math.max(...f.mix.map((p) => p.max));
  if (maxTokens + 1 > config.maxPositionEmbeddings)
    throw new UsageError(
      `--mix goes to ${maxTokens} tokens; the model has ${config.maxPositionEmbeddings} positions`,
    );
  const ctx: RouteContext = { ranks: f.ranks, partition: EVEN, table: null };
  const policyOf = (p: Policy): RoutePolicy => (p === 'auto' ? auto! : { kind: p });
  const prompts = drawPrompts(f.mix, f.requests, f.promptSeed);
  const warm = drawPrompts(f.mix, f.warmup, f.promptSeed + 1);
  const backend = await LocalGroup.start({
    ranks: f.ranks,
    spec: engineSpecOf(engine),
    startupTimeoutMs: 600_000,
    runTimeoutMs: 600_000,
    ...(f.pinCores ? { pinCores: f.pinCores } : {}),
  });
  const loadBefore = loadavg()[0]!;
  const raw: Record<string, ServedRequest[]> = {};
  const busyMs: Record<string, number> = {};
  const fronts: { policy: Policy; front: ServeFront }[] = [];
  try {
    // One queue for every front: one request holds the group at a time, whichever policy sent it.
    const queue = new AdmissionQueue({ concurrency: 1, capacity: 1 });
    const limits = { maxBodyBytes: 64 * 1024 * 1024, maxPromptTokens: maxTokens, maxTokens: 1 };
    for (const policy of f.policies) {
      fronts.push({
        policy,
        front: await ServeFront.start({
          host: '127.0.0.1',
          port: 0,
          model: engine.model,
          backend,
          queue,
          metrics: new ServeMetrics({ queue: () => queue, ready: () => backend.ready() }, false),
          limits,
          promptCheck: { vocabSize: config.vocabSize, maxPositions: config.maxPositionEmbeddings, limits },
          requestTimeoutMs: 3_600_000,
          encode: () => {
            throw new Error('the benchmark sends token ids');
          },
          eosTokenIds: config.eosTokenIds,
          route: (contextLength) => routePrompt(policyOf(policy), contextLength, ctx),
        }),
      });
      raw[policy] = [];
      busyMs[policy] = 0;
    }
    for (const [i, p] of warm.entries())
      for (const { front } of fronts)
        await streamOne(
          front.port,
          engine.model,
          promptIds(-1 - i, p.tokens, config.vocabSize, f.promptSeed),
        );
    for (const [i, p] of prompts.entries()) {
      const ids = promptIds(i, p.tokens, config.vocabSize, f.promptSeed);
      for (let k = 0; k < fronts.length; k++) {
        const { policy, front } = fronts[(i + k) % fronts.length]!;
        const a = await streamOne(front.port, engine.model, ids);
        raw[policy]!.push({ part: p.part, tokens: p.tokens, ...a });
        busyMs[policy]! += a.durationMs;
      }
    }
  } finally {
    await Promise.all(fronts.map(({ front }) => front.close()));
    await backend.close();
  }
  const summaries: PolicySummary[] = f.policies.map((policy) => {
    const summary = summarizePolicy(LABEL[policy], raw[policy]!, busyMs[policy]!, f.mix.length);
    process.stderr.write(
      `${LABEL[policy]}: ${summary.requests} requests, client TTFT p50 ${ms(summary.clientP50)} ms, p99 ${ms(summary.clientP99)} ms\n`,
    );
    return summary;
  });
  const from = auto ? splitFrom(auto, ctx, maxTokens) : null;
  const settings = [
    `machine: ${machineDescription()}; load average (1 min) ${loadBefore.toFixed(1)} before the prompts, ${loadavg()[0]!.toFixed(1)} after (other work on the machine shares its cores)`,
    `model: ${engine.model} (${engine.ep}, ${engine.dtype}), ${f.ranks} ranks of ${engine.threads} thread(s)${f.pinCores ? `, pinned to ${f.pinCores} cores each` : ''}`,
    `${f.requests} prompts, each sent to every policy in turn (order rotated per prompt) after ${f.warmup} warm-up, one client, max_tokens 1, prompts seeded (${f.promptSeed}): the same for every policy`,
    'throughput: requests ÷ the time they took end to end (the rate one client would get from that policy alone)',
    ...(auto
      ? [
          `length-aware: ${auto.kind === 'cost-model' ? `cost model ${f.profile}` : `--single-below ${f.singleBelow}`}, ${from === null ? 'never splits (one rank is predicted faster at every length of the mix)' : `one rank below ${from} tokens`}`,
        ]
      : []),
  ];
  const command = `runahead bench serve ${argv.join(' ')}`;
  const report = renderServeReport(command, settings, f.mix, summaries);
  if (f.out) {
    await mkdir(dirname(f.out), { recursive: true });
    await writeFile(f.out, report);
  } else process.stdout.write(report);
  if (f.jsonOut) {
    await mkdir(dirname(f.jsonOut), { recursive: true });
    await writeFile(
      f.jsonOut,
      `${JSON.stringify({ command, settings, mix: f.mix, summaries, requests: raw }, null, 2)}\n`,
    );
  }
}
