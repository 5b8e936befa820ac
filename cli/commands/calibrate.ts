// `runahead calibrate`: fit a cost profile to benchmark runs made on the target hardware.
import type { Command } from 'commander';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { CostProfileSchema, PROFILE_VERSION, type CostProfile } from '../../core/cost-model.ts';
import { fitProfile, type MeasuredRun, type TransferFit } from '../../core/calibration.ts';
import { BenchResultsSchema, type BenchResults } from '../bench/results.ts';
import { modelConfig, shapeOf } from '../model-info.ts';
import { readJsonInput } from '../json-input.ts';
import { parseFlags, UsageError } from '../options.ts';

const Flags = z.object({
  runs: z.string().min(1, '--runs is required'),
  out: z.string().min(1, '--out is required'),
  link: z.string().min(1).optional(),
});

/**
 * What `runahead bench link --json` prints; only the rate of the chain's link is read: socketGBps
 * (ranks' default transport), else grpcGBps (files from before K/V sockets, or `--paths grpc`).
 */
const LinkBenchSchema = z.looseObject({
  socketGBps: z.number().positive().nullable().optional(),
  grpcGBps: z.number().positive().nullable().optional(),
});

/** The idle link's rate from a link benchmark's JSON, or undefined when it has none. */
export async function readLinkGBps(path: string): Promise<number | undefined> {
  const r = await readJsonInput('--link', path, LinkBenchSchema, 'a runahead bench link --json file');
  return r.socketGBps ?? r.grpcGBps ?? undefined;
}

function readResults(path: string): Promise<BenchResults> {
  return readJsonInput('--runs', path, BenchResultsSchema, 'a runahead bench --json-out file');
}

export function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('fit the cost model (compute, attention, transfer) to runs from runahead bench --json-out')
    .requiredOption('--runs <files>', 'comma-separated bench result files, from one model on one machine')
    .requiredOption('--out <file>', 'write the profile here (JSON)')
    .option(
      '--link <file>',
      'runahead bench link --json output: its socketGBps (else grpcGBps) is the idle link rate, a floor under the rate the runs measured while computing (used alone when the runs have no sends)',
    )
    .action(async (flags: Record<string, unknown>) => {
      const f = parseFlags(Flags, flags);
      const all = await Promise.all(f.runs.split(',').map((p) => readResults(p.trim())));
      const first = all[0]!;
      const mismatch = all.find(
        (r) => r.model !== first.model || r.dtype !== first.dtype || r.machine !== first.machine,
      );
      if (mismatch)
        throw new UsageError(
          `--runs mixes models or machines (${first.model}/${first.machine} vs ${mismatch.model}/${mismatch.machine})`,
        );
      const config = await modelConfig(first.model);
      const shape = shapeOf(config, first.dtype);
      const runs: MeasuredRun[] = all.flatMap((r) =>
        r.points.map((p) => ({ ...p.median, ttftMs: p.ttft.median })),
      );
      const linkGBps = f.link !== undefined ? await readLinkGBps(f.link) : undefined;
      const fit = fitProfile(runs, shape, linkGBps !== undefined ? { linkGBps } : {});
      const profile: CostProfile = CostProfileSchema.parse({
        version: PROFILE_VERSION,
        model: first.model,
        hardware: first.machine,
        ep: first.ep,
        dtype: first.dtype,
        threadsPerRank: first.threadsPerRank,
        ...shape,
        coefficients: fit.coefficients,
        fit: {
          spans: fit.spans,
          runs: runs.length,
          rmsRelativeError: fit.rmsRelativeError,
          transfer: fit.transfer,
        },
        createdAt: new Date().toISOString(),
        command: `runahead calibrate ${process.argv.slice(3).join(' ')}`,
      });
      await mkdir(dirname(f.out), { recursive: true });
      await writeFile(f.out, `${JSON.stringify(profile, null, 2)}\n`);
      const lines = [
        `profile for ${profile.model} on ${profile.hardware} → ${f.out}`,
        `fitted on ${fit.spans} spans and ${runs.length} runs; RMS relative TTFT error ${(100 * fit.rmsRelativeError).toFixed(1)}%`,
        transferLine(fit.transfer, fit.coefficients.transfer),
        '',
        '| mode | split | measured ms | predicted ms | error |',
        '|---|---|---|---|---|',
        ...fit.residuals.map(
          (r) =>
            `| ${r.mode} | ${r.boundaries.join(',')} | ${r.measuredMs.toFixed(0)} | ${r.predictedMs.toFixed(0)} | ${((100 * (r.predictedMs - r.measuredMs)) / r.measuredMs).toFixed(1)}% |`,
        ),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}

export function readProfile(path: string): Promise<CostProfile> {
  return readJsonInput('--profile', path, CostProfileSchema, 'a runahead calibrate profile');
}

const gbps = (x: number) => (x >= 0.1 ? x.toFixed(2) : x.toPrecision(2));

/** How the link's rate was chosen, in one line. */
function transferLine(t: TransferFit, [r0, r1]: readonly [number, number]): string {
  const rate = `link ${gbps(1 / (r1 * 1e6))} GB/s, latency ${r0} ms`;
  const idle = t.linkGBps !== undefined ? `; idle link (--link) ${gbps(t.linkGBps)} GB/s` : '';
  switch (t.source) {
    case 'sends':
      return `transfer: ${rate} — measured under compute load on ${t.samples} layer sends (${gbps(t.loadedGBps!)} GB/s)${idle}`;
    case 'link':
      return `transfer: ${rate} — from the link benchmark (the runs had no sends)`;
    case 'ttft':
      return `transfer: ${rate} — searched to fit the TTFTs (no sends in the runs, no --link)`;
  }
}
