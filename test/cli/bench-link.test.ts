// `runahead bench link` as a user runs it, on a tiny geometry: the two rank processes stream K/V over
// real sockets (gRPC, gRPC with mutual TLS, raw TCP), and the receiver must end up with exactly the
// bytes sent. The link benchmark needs no model: none of its three processes may load onnxruntime
// (witness: a module resolve hook in each, as in operator-imports.test.ts).
import { describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, RUNAHEAD_BIN } from '../support/cli.ts';
import { recordLog } from '../support/test-logs.ts';

// Preloaded with --import (fork passes it on to the rank processes): each process writes the URLs
// of the modules it resolved to <dir>/<pid> when it exits.
const RECORD_MODULES = `
import { registerHooks } from 'node:module';
import { writeFileSync } from 'node:fs';
const urls = new Set();
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); urls.add(r.url); return r; } });
process.on('exit', () => writeFileSync(process.env.RECORD_MODULES_DIR + '/' + process.pid, [...urls].join('\\n')));
`;

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Per process, the modules it loaded. */
  readonly modules: readonly string[][];
}

async function benchLink(args: readonly string[]): Promise<Ran> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-link-modules-'));
  try {
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        [
          `--import=data:text/javascript,${encodeURIComponent(RECORD_MODULES)}`,
          RUNAHEAD_BIN,
          'bench',
          'link',
          ...args,
        ],
        {
          cwd: ROOT,
          env: { ...process.env, RUNAHEAD_LOG_LEVEL: 'warn', RECORD_MODULES_DIR: dir },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`runahead bench link did not finish in 90 s\n${err}`));
      }, 90_000);
      child.on('error', reject);
      child.on('close', (c) => {
        clearTimeout(timer);
        recordLog('runahead bench link', err);
        resolve({ code: c, stdout: out, stderr: err });
      });
    });
    const files = await readdir(dir);
    const modules = await Promise.all(
      files.map(async (f) => (await readFile(join(dir, f), 'utf8')).split('\n')),
    );
    return { code, stdout, stderr, modules };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('runahead bench link', () => {
  it('streams K/V over the K/V socket and gRPC (plain and mutual TLS) and raw TCP between two processes: positive rates, every byte arrives', async () => {
    const out = await mkdtemp(join(tmpdir(), 'bench-link-'));
    try {
      // 3 layers × 96 tokens × 2 heads × 32 × fp16: 12 KiB per layer and side, frames of 16 tokens.
      const ran = await benchLink([
        ...['--kv-heads', '2', '--head-dim', '32', '--tokens', '96', '--layers', '3'],
        ...['--frame-bytes', '4096', '--repeats', '2', '--warmup', '1'],
        ...['--sweep-frame-bytes', '2048', '--sweep-windows', '65535,1048576'],
        ...['--out', join(out, 'link.md'), '--json-out', join(out, 'link.json'), '--json'],
      ]);
      expect(ran.code).toBe(0);
      const summary = JSON.parse(ran.stdout) as Record<string, unknown>;
      const sent = 3 * 2 * 96 * 2 * 32 * 2;
      for (const key of [
        'socketGBps',
        'socketTlsGBps',
        'grpcGBps',
        'grpcTlsGBps',
        'tcpGBps',
        'memcpyGBps',
        'memcpyWarmGBps',
        'crc32GBps',
      ]) {
        expect([key, summary[key]]).toEqual([key, expect.any(Number)]);
        expect(summary[key]).toBeGreaterThan(0);
      }
      for (const key of [
        'socketFramesPerS',
        'socketReceiverCpuMs',
        'grpcFramesPerS',
        'grpcSenderCpuMs',
        'grpcReceiverCpuMs',
        'tcpReceiverCpuMs',
      ]) {
        expect(summary[key]).toBeGreaterThan(0);
      }
      expect(summary).toMatchObject({
        sentBytes: sent,
        framesPerTransfer: 3 * 6,
        received: {
          socket: { bytes: sent, checksumsMatch: true },
          socketTls: { bytes: sent, checksumsMatch: true },
          grpc: { bytes: sent, checksumsMatch: true },
          grpcTls: { bytes: sent, checksumsMatch: true },
          tcp: { bytes: sent, checksumsMatch: true },
        },
        checksumsMatch: true,
      });
      expect(summary.sweep).toEqual([
        expect.objectContaining({ frameBytes: 2048, windowBytes: 65535, checksumsMatch: true }),
        expect.objectContaining({ frameBytes: 2048, windowBytes: 1048576, checksumsMatch: true }),
      ]);

      const report = await readFile(join(out, 'link.md'), 'utf8');
      expect(report).toContain('runahead bench link --kv-heads 2 --head-dim 32');
      expect(report).toMatch(/^\| grpc-tls \| [\d.]+ \|.*\| yes \(CRC-32\) \|/m);
      expect(report).toMatch(/^\| socket-tls \| [\d.]+ \|.*\| yes \(CRC-32\) \|/m);
      const saved = JSON.parse(await readFile(join(out, 'link.json'), 'utf8')) as { runs: unknown[] };
      expect(saved.runs).toHaveLength((8 + 2) * 3);

      // The orchestrator and both rank processes, and not one of them loaded onnxruntime.
      expect(ran.modules).toHaveLength(3);
      for (const modules of ran.modules) {
        expect(modules.filter((m) => m.includes('onnxruntime'))).toEqual([]);
      }
      expect(ran.modules.flat().some((m) => m.endsWith('/cli/bench/link-peer.ts'))).toBe(true);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  }, 120_000);

  it('refuses a frame limit below one token, naming the flag', async () => {
    const ran = await benchLink(['--frame-bytes', '100']);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/--frame-bytes and --sweep-frame-bytes must hold at least one token/);
  });
});
