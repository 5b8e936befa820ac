// `runahead bench`: TTFT side by side — one rank alone, TSP and KV-Runahead — measured through
// the same rank groups and the same coordinator, so the only difference between columns is the
// scheme. One rank group per rank count serves every context and mode; medians of several runs
// after warm-up; a markdown report that carries the exact command, and the raw runs as JSON.
// `runahead bench link` (registerBenchLink) measures the K/V link alone, without a model.
import type { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { RunResult } from '../../core/gen/runahead/v1/rank.ts';
import { DEFAULT_LIMITS, KV_TRANSPORTS, MODE_BY_NAME, RECEIVE_WINDOW_BYTES } from '../../core/protocol.ts';
import { predict, type CostProfile } from '../../core/cost-model.ts';
import type { PartitionTable } from '../../core/partition-table.ts';
import { describeConfig, modelConfig } from '../model-info.ts';
import { readProfile } from './calibrate.ts';
import { readPartitionTable } from './worker.ts';
import { EVEN, partitionToRequest } from '../../core/partition-choice.ts';
import type { BenchResults } from '../bench/results.ts';
import { logger } from '../../core/log.ts';
import { engineSpec, parseFlags, UsageError } from '../options.ts';
import { withEngineFlags } from '../engine-options.ts';
import { progress } from '../progress.ts';
import { summarize, type Summary } from '../bench/stats.ts';
import { LINK_PATHS } from '../bench/link-plan.ts';
import { machineDescription } from '../bench/machine.ts';
import { renderMarkdown, type BenchRow } from '../bench/report.ts';
import { runSummary } from '../run-report.ts';

const list = (flag: string) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => Number(x.trim())))
    .refine(
      (xs) => xs.length > 0 && xs.every((x) => Number.isInteger(x) && x > 0),
      `${flag} must be a comma-separated list of positive integers`,
    );

const MODES = ['single', 'tsp', 'runahead', 'balanced'] as const;
type BenchMode = (typeof MODES)[number];
const LABEL: Record<BenchMode, string> = {
  single: 'single',
  tsp: 'tsp',
  runahead: 'runahead-even',
  balanced: 'runahead-balanced',
};

const BenchFlags = z.object({
  contexts: list('--contexts'),
  ranks: list('--ranks'),
  modes: z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()))
    .refine(
      (xs) => xs.every((x) => (MODES as readonly string[]).includes(x)),
      `--modes must be a comma-separated subset of ${MODES.join(',')}`,
    )
    .transform((xs) => xs as BenchMode[]),
  repeats: z.coerce.number().int().min(1, '--repeats must be ≥ 1'),
  warmup: z.coerce.number().int().min(0, '--warmup must be ≥ 0'),
  pinCores: z.coerce.number().int().min(1).optional(),
  kvTransport: z.enum(KV_TRANSPORTS, { error: `--kv-transport must be ${KV_TRANSPORTS.join(' or ')}` }),
  partitionTable: z.string().optional(),
  profile: z.string().optional(),
  out: z.string().optional(),
  jsonOut: z.string().optional(),
  json: z.boolean().default(false),
});

interface Measured {
  readonly context: number;
  readonly mode: BenchMode;
  readonly ranks: number;
  readonly ttft: Summary;
  /** The run whose TTFT is the median: its per-rank figures go into the report. */
  readonly median: RunResult;
}

export function registerBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description('measure TTFT of single, TSP and KV-Runahead side by side and write a markdown report')
    // bench's options stop at its subcommand: `bench link --repeats 5` is link's --repeats (main.ts).
    .enablePositionalOptions();
  registerBenchLink(cmd);
  registerBenchServe(cmd);
  withEngineFlags(cmd)
    .option('--contexts <list>', 'context lengths in tokens', '1024,2048,4096')
    .option('--ranks <list>', 'rank counts for TSP and KV-Runahead', '2')
    .option('--modes <list>', `which of ${MODES.join(',')}`, 'single')
    .option('--repeats <n>', 'measured runs per point (the report quotes the median)', '3')
    .option('--warmup <n>', 'unmeasured runs first', '1')
    .option('--pin-cores <k>', 'pin rank i to CPU cores [i·k, (i+1)·k)')
    .option('--kv-transport <kind>', 'how ranks send K/V: socket or grpc (StreamKv)', 'socket')
    .option(
      '--partition-table <files>',
      'for mode balanced: runahead tune tables, one per rank count, comma-separated',
    )
    .option('--profile <file>', 'a cost profile: adds predicted TTFT and the model error to every row')
    .option('--out <file>', 'write the markdown report here')
    .option('--json-out <file>', 'write every measured run here')
    .option('--json', 'print the rows as JSON on stdout')
    .action(async (flags: Record<string, unknown>) => {
      if (flags.model === undefined) cmd.error("error: required option '--model <ref>' not specified");
      const spec = engineSpec(flags);
      const f = parseFlags(BenchFlags, flags);
      const log = logger('bench');
      const tables = new Map<number, { path: string; table: PartitionTable }>();
      for (const path of (f.partitionTable ?? '').split(',').filter((p) => p.length > 0)) {
        const table = await readPartitionTable(path.trim());
        tables.set(table.ranks, { path: path.trim(), table });
      }
      const missing = f.modes.includes('balanced') ? f.ranks.filter((n) => !tables.has(n)) : [];
      if (missing.length > 0)
        throw new UsageError(
          `mode balanced needs a --partition-table for ${missing.join(', ')} rank(s) (runahead tune --ranks N)`,
        );
      const profile = f.profile ? await readProfile(f.profile) : null;
      const config = await modelConfig(spec.model);
      const measured: Measured[] = [];
      const plan: { ranks: number; modes: BenchMode[] }[] = [
        ...(f.modes.includes('single') ? [{ ranks: 1, modes: ['single' as const] }] : []),
        ...f.ranks
          .map((ranks) => ({ ranks, modes: f.modes.filter((m) => m !== 'single') }))
          .filter((p) => p.modes.length > 0),
      ];
      const started = Date.now();
      // The launcher loads onnxruntime (for the model's shapes): only when a model is benchmarked.
      const { RankGroup } = await import('../launcher/rank-group.ts');
      for (const { ranks, modes } of plan) {
        const bar = progress(`loading ${spec.model} on ${ranks} rank(s)`);
        const group = await RankGroup.start({
          ranks,
          spec,
          ...(f.pinCores ? { pinCores: f.pinCores } : {}),
          kvTransport: f.kvTransport,
          ...(tables.has(ranks) ? { partitionTable: tables.get(ranks)!.path } : {}),
          onProgress: (d, t) => {
            bar.update(d, t, '');
          },
        });
        bar.stop();
        try {
          for (const context of f.contexts) {
            for (const mode of modes) {
              const runs: RunResult[] = [];
              for (let i = 0; i < f.warmup + f.repeats; i++) {
                const result = await group.run({
                  prompt: { source: { $case: 'syntheticTokens', value: context } },
                  mode: MODE_BY_NAME[mode === 'balanced' ? 'runahead' : mode],
                  ...partitionToRequest(mode === 'balanced' ? { kind: 'balanced' } : EVEN),
                  maxNewTokens: 0,
                  debugState: false,
                });
                const warm = i < f.warmup;
                if (!warm) runs.push(result);
                log.info(
                  {
                    ranks,
                    context,
                    mode,
                    run: i,
                    warmup: warm,
                    ttftMs: Math.round(result.ttftMs),
                    elapsedS: Math.round((Date.now() - started) / 1000),
                  },
                  'run',
                );
              }
              const ttft = summarize(runs.map((r) => r.ttftMs));
              const median = [...runs].sort((a, b) => a.ttftMs - b.ttftMs)[Math.floor(runs.length / 2)]!;
              measured.push({ context, mode, ranks, ttft, median });
            }
          }
        } finally {
          await group.close();
        }
      }
      const rows = benchRows(measured, profile);
      const report = renderMarkdown({
        title: `runahead bench: ${spec.model}`,
        command: `runahead bench ${process.argv.slice(3).join(' ')}`,
        machine: machineDescription(),
        settings: [
          `model: ${spec.model} (seed ${spec.seed}), ${describeConfig(config)}, ${spec.dtype}`,
          `execution provider ${spec.ep}; every rank is one process with ${spec.threads} intra-op threads${f.pinCores ? `, pinned to its own ${f.pinCores} cores` : ''}; ranks talk gRPC over loopback`,
          `${f.warmup} warm-up run(s), then ${f.repeats} measured; TTFT = prompt released by rank 0 → first token back at rank 0, on rank 0's clock`,
          'runahead-even and tsp use the even split, runahead-balanced the lookup table; speedups are ratios of medians from this one run of the command',
          ...(profile
            ? [
                `predicted TTFT from the cost profile ${f.profile} (${profile.hardware}); error = (predicted − measured) / measured`,
              ]
            : []),
          ...[...tables.values()].map(
            (t) =>
              `balanced splits for ${t.table.ranks} ranks from ${t.path} (${t.table.profile ?? 'no profile recorded'})`,
          ),
        ],
        rows,
        notes: breakdown(measured),
      });
      if (f.out) {
        await mkdir(dirname(f.out), { recursive: true });
        await writeFile(f.out, report);
      }
      if (f.jsonOut) {
        const results: BenchResults = {
          version: 1,
          command: `runahead bench ${process.argv.slice(3).join(' ')}`,
          machine: machineDescription(),
          model: spec.model,
          dtype: spec.dtype,
          ep: spec.ep,
          threadsPerRank: spec.threads,
          points: measured.map((m) => ({
            context: m.context,
            mode: m.mode,
            ranks: m.ranks,
            ttft: m.ttft,
            median: runSummary(m.median),
          })),
        };
        await mkdir(dirname(f.jsonOut), { recursive: true });
        await writeFile(f.jsonOut, JSON.stringify(results));
      }
      process.stdout.write(f.json ? `${JSON.stringify(rows)}\n` : report);
    });
  // commander checks a command's required options before it runs any subcommand of the command:
  // --model is checked in bench's action instead, so that `bench link` (no model) runs.
  const model = cmd.options.find((o) => o.long === '--model');
  if (model) model.mandatory = false;
}

/**
 * `runahead bench link`: K/V streamed between two rank processes over the chain's gRPC link (with
 * and without TLS), a raw TCP socket and memcpy. Its module (link-bench.ts) and everything it
 * loads come only when it runs; none of it loads onnxruntime.
 */
function registerBenchLink(bench: Command): void {
  bench
    .command('link')
    .description(
      'stream K/V between two rank processes over the chain’s gRPC link (TLS on and off), raw TCP and memcpy; GB/s, frames/s, CPU',
    )
    .option('--kv-heads <n>', 'KV heads (llama3-8b: 8)', '8')
    .option('--head-dim <n>', 'head dimension', '128')
    .option('--tokens <n>', 'tokens of K/V per layer', '4096')
    .option('--layers <n>', 'layers', '32')
    .option('--dtype <type>', 'float16 or float32', 'float16')
    .option('--paths <list>', `which of ${LINK_PATHS.join(',')}`, LINK_PATHS.join(','))
    .option(
      '--frame-bytes <n>',
      'largest K+V payload per frame (the chain’s --max-frame-bytes)',
      String(DEFAULT_LIMITS.maxFrameBytes),
    )
    .option(
      '--window <n>',
      'HTTP/2 flow-control window the receiving rank grants, bytes',
      String(RECEIVE_WINDOW_BYTES),
    )
    .option('--sweep-frame-bytes <list>', 'also measure grpc for each of these frame sizes …', '')
    .option('--sweep-windows <list>', '… with each of these windows', '')
    .option('--repeats <n>', 'measured runs per path (the report quotes the median)', '5')
    .option('--warmup <n>', 'unmeasured runs first, per path', '1')
    .option('--timeout-ms <n>', 'longest one transfer may take', '300000')
    .option(
      '--tls-cert <file>',
      'certificate for grpc-tls, valid for localhost (default: throwaway ones made with openssl)',
    )
    .option('--tls-key <file>', 'its private key')
    .option('--tls-ca <file>', 'the CA that signed it')
    .option('--out <file>', 'write the markdown report here')
    .option('--json-out <file>', 'write every run and the summary here')
    .option('--json', 'print the summary as JSON on stdout')
    .action(async (flags: Record<string, unknown>) => {
      const { runBenchLink } = await import('../bench/link-bench.ts');
      const at = process.argv.indexOf('link');
      await runBenchLink(flags, at < 0 ? [] : process.argv.slice(at + 1));
    });
}

/**
 * `runahead bench serve`: a load generator against the serving front, one rank vs always split vs
 * length-aware routing on one warm group. Its module (serve-bench.ts) loads only when it runs.
 */
function registerBenchServe(bench: Command): void {
  withEngineFlags(
    bench
      .command('serve')
      .description(
        'load the serving front with a prompt-length mix: TTFT p50/p99 and throughput for one rank, always split and length-aware routing',
      ),
  )
    .option('--ranks <n>', 'ranks of the group', '2')
    .option(
      '--mix <parts>',
      'prompt lengths: weight:min-max tokens, comma-separated',
      '70:32-256,30:1024-2048',
    )
    .option('--requests <n>', 'measured prompts, each sent to every policy', '30')
    .option('--warmup <n>', 'unmeasured prompts first', '2')
    .option('--policies <list>', 'which of single,split,auto', 'single,split,auto')
    .option('--profile <file>', 'auto: the calibrated cost model decides per length')
    .option('--single-below <tokens>', 'auto: prompts shorter than this run on one rank')
    .option('--prompt-seed <n>', 'seed of the prompts (lengths and ids)', '1')
    .option('--pin-cores <k>', 'pin rank i to CPU cores [i·k, (i+1)·k)')
    .option('--out <file>', 'write the markdown report here')
    .option('--json-out <file>', 'write the summaries and every request here')
    .action(async (flags: Record<string, unknown>) => {
      const { runBenchServe } = await import('../bench/serve-bench.ts');
      const at = process.argv.indexOf('serve');
      await runBenchServe(flags, at < 0 ? [] : process.argv.slice(at + 1));
    });
}

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

export function benchRows(measured: readonly Measured[], profile: CostProfile | null): BenchRow[] {
  const find = (context: number, mode: BenchMode, ranks?: number) =>
    measured.find(
      (m) => m.context === context && m.mode === mode && (ranks === undefined || m.ranks === ranks),
    );
  return measured.map((m) => {
    const single = find(m.context, 'single');
    const tsp = find(m.context, 'tsp', m.ranks);
    const even = find(m.context, 'runahead', m.ranks);
    const moved = m.median.ranks.reduce((s, r) => s + r.bytesSent, 0);
    const scheme = m.mode === 'balanced' ? 'runahead' : m.mode;
    const predicted = profile
      ? predict(profile.coefficients, profile, scheme, m.median.boundaries).ttftMs
      : null;
    return {
      context: m.context,
      mode: LABEL[m.mode],
      ranks: m.ranks,
      ttft: m.ttft,
      extra: {
        split: m.mode === 'single' ? '' : m.median.boundaries.join(','),
        'vs single':
          single && m.mode !== 'single' ? `${(single.ttft.median / m.ttft.median).toFixed(2)}×` : '',
        'vs TSP':
          tsp && (m.mode === 'runahead' || m.mode === 'balanced')
            ? `${(tsp.ttft.median / m.ttft.median).toFixed(2)}×`
            : '',
        'vs even': even && m.mode === 'balanced' ? `${(even.ttft.median / m.ttft.median).toFixed(2)}×` : '',
        'KV moved MiB': m.mode === 'single' ? '' : mib(moved),
        ...(predicted === null
          ? {}
          : {
              'predicted ms': predicted.toFixed(0),
              'model error': `${((100 * (predicted - m.ttft.median)) / m.ttft.median).toFixed(1)}%`,
            }),
      },
    };
  });
}

/** Per-rank compute / wait / send of each median run, as notes under the table. */
function breakdown(measured: readonly Measured[]): string[] {
  return measured
    .filter((m) => m.mode !== 'single')
    .map((m) => {
      const s = runSummary(m.median);
      const ranks = s.ranks
        .map(
          (r) =>
            `r${r.rank} [${r.chunk[0]},${r.chunk[1]}) compute ${r.computeMs.toFixed(0)} / wait ${r.waitMs.toFixed(0)} / send ${r.sendMs.toFixed(0)} ms${r.criticalSendMs === undefined ? '' : ` (${r.criticalSendMs.toFixed(0)} on the TTFT path)`}, sent ${mib(r.bytesSent)} MiB, peak RSS ${mib(r.peakRssBytes)} MiB`,
        )
        .join('; ');
      return `${LABEL[m.mode]} ${m.ranks} ranks @ ${m.context} (median run, TTFT ${s.ttftMs.toFixed(0)} ms): ${ranks}`;
    });
}
