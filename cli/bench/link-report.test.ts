import { describe, expect, it } from '@jest/globals';
import { parseFlags } from '../options.ts';
import {
  LinkFlags,
  framesPerTransfer,
  planSpec,
  planTrials,
  transferBytes,
  type LinkPlanSpec,
} from './link-plan.ts';
import { jsonKey, linkSummary, renderLinkReport, summarizeRuns, type LinkRun } from './link-report.ts';

const flags = (over: Record<string, unknown> = {}) => ({
  kvHeads: '8',
  headDim: '128',
  tokens: '4096',
  layers: '32',
  dtype: 'float16',
  paths: 'grpc,grpc-tls,tcp,memcpy,memcpy-warm,crc32',
  frameBytes: String(1 << 20),
  window: String(16 << 20),
  sweepFrameBytes: '',
  sweepWindows: '',
  repeats: '3',
  warmup: '1',
  timeoutMs: '1000',
  json: false,
  ...over,
});

describe('bench link plan', () => {
  it('sizes llama3-8b’s K/V at 4096 tokens: 512 MiB in 512 frames of 1 MiB', () => {
    const spec = planSpec(parseFlags(LinkFlags, flags()));
    expect(transferBytes(spec.shape)).toBe(512 * 2 ** 20);
    expect(framesPerTransfer(spec.shape, spec.main.frameBytes)).toBe(512);
  });

  it('runs each path’s warm-ups right before its measured runs, then the sweep', () => {
    const spec = planSpec(
      parseFlags(
        LinkFlags,
        flags({ paths: 'tcp,grpc', repeats: '2', sweepFrameBytes: '65536', sweepWindows: '65535,1048576' }),
      ),
    );
    expect(planTrials(spec).map((t) => `${t.path}${t.sweep ? `@${t.windowBytes}` : ''}:${t.repeat}`)).toEqual(
      [
        'grpc:-1',
        'grpc:0',
        'grpc:1',
        'tcp:-1',
        'tcp:0',
        'tcp:1',
        'grpc@65535:-1',
        'grpc@65535:0',
        'grpc@65535:1',
        'grpc@1048576:-1',
        'grpc@1048576:0',
        'grpc@1048576:1',
      ],
    );
  });

  it('refuses flags it cannot run, naming them', () => {
    expect(() => parseFlags(LinkFlags, flags({ paths: 'grpc,udp' }))).toThrow(/--paths must be/);
    expect(() => parseFlags(LinkFlags, flags({ frameBytes: '4000' }))).toThrow(/at least one token/);
    expect(() => parseFlags(LinkFlags, flags({ sweepWindows: '65535' }))).toThrow(/go together/);
    expect(() => parseFlags(LinkFlags, flags({ window: String(2 ** 31) }))).toThrow(
      /--window must be at most/,
    );
    expect(() => parseFlags(LinkFlags, flags({ tlsCert: 'a.pem' }))).toThrow(
      /--tls-cert, --tls-key and --tls-ca/,
    );
  });
});

describe('bench link report', () => {
  const spec: LinkPlanSpec = planSpec(
    parseFlags(LinkFlags, flags({ paths: 'grpc,tcp,memcpy', repeats: '3' })),
  );
  const bytes = transferBytes(spec.shape);
  const run = (path: 'grpc' | 'tcp' | 'memcpy', repeat: number, ms: number, checksum = 7): LinkRun => ({
    trial: { path, ...spec.main, sweep: false, repeat, warmup: repeat < 0 },
    send: { elapsedMs: ms, cpuMs: ms / 2, bytes, frames: 512 },
    receive: path === 'memcpy' ? null : { cpuMs: ms / 4, bytes, frames: 512, checksum },
  });
  const runs = [
    run('grpc', -1, 10_000, 1), // a warm-up: neither its time nor its checksum counts
    run('grpc', 0, 1000),
    run('grpc', 1, 4000),
    run('grpc', 2, 2000),
    run('tcp', 0, 500),
    run('tcp', 1, 500),
    run('tcp', 2, 500),
    run('memcpy', 0, 100),
    run('memcpy', 1, 100),
    run('memcpy', 2, 100),
  ];

  it('summarizes measured runs: medians of GB/s, frames/s and CPU, and whether every checksum matched', () => {
    const [grpc, tcp, memcpy] = summarizeRuns(runs, 7);
    expect(grpc!.runs).toBe(3);
    expect(grpc!.gbps.median).toBeCloseTo(bytes / 2000 / 1e6);
    expect(grpc!.framesPerS).toBeCloseTo(256);
    expect(grpc!.senderCpuMs).toBe(1000);
    expect(grpc!.receiverCpuMs).toBe(500);
    expect(grpc!.checksumsMatch).toBe(true);
    expect(tcp!.receivedBytes).toBe(bytes);
    expect(memcpy!.receiverCpuMs).toBeNull();
    expect(memcpy!.checksumsMatch).toBeNull();
    expect(summarizeRuns([...runs, run('tcp', 3, 500, 8)], 7)[1]!.checksumsMatch).toBe(false);
  });

  it('prints the --json keys the issue names, null for paths not measured', () => {
    const s = linkSummary(spec, summarizeRuns(runs, 7), 7);
    expect(s).toMatchObject({
      grpcGBps: Number((bytes / 2000 / 1e6).toFixed(4)),
      tcpGBps: Number((bytes / 500 / 1e6).toFixed(4)),
      memcpyGBps: Number((bytes / 100 / 1e6).toFixed(4)),
      grpcTlsGBps: null,
      grpcOverTcp: 0.25,
      sentBytes: bytes,
      received: { grpc: { bytes, checksumsMatch: true }, tcp: { bytes, checksumsMatch: true } },
      checksumsMatch: true,
    });
    expect(jsonKey('grpc-tls')).toBe('grpcTls');
    expect(jsonKey('memcpy-warm')).toBe('memcpyWarm');
  });

  it('writes the command first and a row per path', () => {
    const md = renderLinkReport({
      command: 'runahead bench link --repeats 3',
      machine: 'test machine',
      spec,
      tls: 'none',
      results: summarizeRuns(runs, 7),
    });
    expect(md.split('\n').slice(0, 5)).toEqual([
      '# runahead bench link: 32 layers × 4096 tokens × 8 KV heads × 128 × float16',
      '',
      '```',
      'runahead bench link --repeats 3',
      '```',
    ]);
    expect(md).toMatch(/^\| grpc \| 0\.268 \| 0\.134 \| 0\.537 \| 0\.25× \| 256 \| 1000 \| 500 \|/m);
    expect(md).toMatch(/^\| memcpy \| 5\.37 \|/m);
  });
});
