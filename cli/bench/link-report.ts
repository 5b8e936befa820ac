// What `runahead bench link` reports: per path (and per sweep point) the medians of its measured
// runs, the checksums, the --json summary and the markdown report. Pure.
import type { ReceiveResult, SendResult } from './link-ipc.ts';
import {
  CROSSING,
  framesPerTransfer,
  geometryOf,
  transferBytes,
  type KvShape,
  type LinkPath,
  type LinkPlanSpec,
  type LinkSettings,
  type Trial,
} from './link-plan.ts';
import { tokensPerFrame } from '../../worker/chain/frames.ts';
import { median, summarize, type Summary } from './stats.ts';

export interface LinkRun {
  readonly trial: Trial;
  readonly send: SendResult;
  /** What the receiving process measured; null for the paths inside one process. */
  readonly receive: ReceiveResult | null;
}

export interface PathResult {
  readonly path: LinkPath;
  readonly settings: LinkSettings;
  readonly sweep: boolean;
  readonly runs: number;
  /** 10^9 bytes of K/V per second, over the measured runs. */
  readonly gbps: Summary;
  readonly framesPerS: number;
  readonly senderCpuMs: number;
  readonly receiverCpuMs: number | null;
  /** Per transfer. */
  readonly bytes: number;
  readonly frames: number;
  /** Fewest bytes the receiver held after a run; null for local paths. */
  readonly receivedBytes: number | null;
  /** Every run's receiver held exactly the sender's bytes (CRC-32 and length); null for local paths. */
  readonly checksumsMatch: boolean | null;
}

const gbps = (bytes: number, ms: number) => bytes / ms / 1e6;

export function summarizeRuns(runs: readonly LinkRun[], sentChecksum: number): PathResult[] {
  const groups = new Map<string, LinkRun[]>();
  for (const r of runs) {
    if (r.trial.warmup) continue;
    const key = `${r.trial.sweep}/${r.trial.path}/${r.trial.frameBytes}/${r.trial.windowBytes}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()].map((rs) => {
    const t = rs[0]!.trial;
    const received = rs.map((r) => r.receive).filter((r): r is ReceiveResult => r !== null);
    const crossing = received.length === rs.length;
    return {
      path: t.path,
      settings: { frameBytes: t.frameBytes, windowBytes: t.windowBytes },
      sweep: t.sweep,
      runs: rs.length,
      gbps: summarize(rs.map((r) => gbps(r.send.bytes, r.send.elapsedMs))),
      framesPerS: median(rs.map((r) => (1000 * r.send.frames) / r.send.elapsedMs)),
      senderCpuMs: median(rs.map((r) => r.send.cpuMs)),
      receiverCpuMs: crossing ? median(received.map((r) => r.cpuMs)) : null,
      bytes: rs[0]!.send.bytes,
      frames: rs[0]!.send.frames,
      receivedBytes: crossing ? Math.min(...received.map((r) => r.bytes)) : null,
      checksumsMatch: crossing
        ? rs.every((r) => r.receive?.checksum === sentChecksum && r.receive.bytes === r.send.bytes)
        : null,
    };
  });
}

/** grpc-tls → grpcTls, memcpy-warm → memcpyWarm: the --json key prefix of a path. */
export function jsonKey(path: LinkPath): string {
  return path.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

/** The --json object: flat medians per path of the main table, then checks, settings and the sweep. */
export function linkSummary(
  spec: LinkPlanSpec,
  results: readonly PathResult[],
  sentChecksum: number,
): Record<string, unknown> {
  const main = results.filter((r) => !r.sweep);
  const out: Record<string, unknown> = {};
  for (const path of ['socket', 'socket-tls', 'grpc', 'grpc-tls', 'tcp', 'memcpy'] as const) {
    out[`${jsonKey(path)}GBps`] = null;
  }
  for (const r of main) {
    const k = jsonKey(r.path);
    out[`${k}GBps`] = round(r.gbps.median, 4);
    out[`${k}FramesPerS`] = round(r.framesPerS, 1);
    out[`${k}SenderCpuMs`] = round(r.senderCpuMs, 1);
    if (r.receiverCpuMs !== null) out[`${k}ReceiverCpuMs`] = round(r.receiverCpuMs, 1);
  }
  const grpc = main.find((r) => r.path === 'grpc');
  const tcp = main.find((r) => r.path === 'tcp');
  out.grpcOverTcp = grpc && tcp ? round(grpc.gbps.median / tcp.gbps.median, 3) : null;
  const socket = main.find((r) => r.path === 'socket');
  out.socketOverTcp = socket && tcp ? round(socket.gbps.median / tcp.gbps.median, 3) : null;
  const crossing = main.filter((r) => CROSSING.has(r.path));
  Object.assign(out, {
    bytesPerTransfer: transferBytes(spec.shape),
    framesPerTransfer: framesPerTransfer(spec.shape, spec.main.frameBytes),
    frameBytes: spec.main.frameBytes,
    windowBytes: spec.main.windowBytes,
    repeats: spec.repeats,
    warmup: spec.warmup,
    shape: spec.shape,
    sentBytes: transferBytes(spec.shape),
    sentCrc32: sentChecksum,
    received: Object.fromEntries(
      crossing.map((r) => [jsonKey(r.path), { bytes: r.receivedBytes, checksumsMatch: r.checksumsMatch }]),
    ),
    checksumsMatch: crossing.every((r) => r.checksumsMatch === true),
  });
  const sweep = results.filter((r) => r.sweep);
  if (sweep.length > 0) {
    out.sweep = sweep.map((r) => ({
      frameBytes: r.settings.frameBytes,
      windowBytes: r.settings.windowBytes,
      GBps: round(r.gbps.median, 4),
      framesPerS: round(r.framesPerS, 1),
      senderCpuMs: round(r.senderCpuMs, 1),
      receiverCpuMs: r.receiverCpuMs === null ? null : round(r.receiverCpuMs, 1),
      checksumsMatch: r.checksumsMatch,
    }));
  }
  return out;
}

/** Where each path touches every byte, besides the kernel's copy in and out of the socket. */
export const DATA_PATH: Readonly<Record<LinkPath, string>> = {
  socket: 'send: CRC, writev of views; receive: assembly copy into a kept buffer, CRC, copy into the inbox',
  'socket-tls': 'as socket, plus encryption and decryption',
  grpc: 'send: CRC, encode copy, grpc-js prefix copy; receive: grpc-js reassembly copy, CRC, copy into the inbox',
  'grpc-tls': 'as grpc, plus encryption and decryption',
  tcp: 'send: none (writev of views); receive: copy into place',
  memcpy: 'one copy, into fresh pages',
  'memcpy-warm': 'one copy',
  crc32: 'one read',
};

const mib = (b: number) => {
  const m = b / 2 ** 20;
  return Number.isInteger(m) ? `${m} MiB` : m >= 1 ? `${m.toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`;
};
const f2 = (x: number) => x.toFixed(x >= 10 ? 1 : x >= 1 ? 2 : 3);

export interface LinkReportInput {
  readonly command: string;
  readonly machine: string;
  readonly spec: LinkPlanSpec;
  readonly tls: string;
  readonly results: readonly PathResult[];
}

function describeShape(s: KvShape): string {
  return `${s.layers} layers × ${s.tokens} tokens × ${s.kvHeads} KV heads × ${s.headDim} × ${s.dtype}`;
}

export function renderLinkReport(input: LinkReportInput): string {
  const { spec, results } = input;
  const s = spec.shape;
  const tokens = tokensPerFrame(geometryOf(s), spec.main.frameBytes);
  const main = results.filter((r) => !r.sweep);
  const sweep = results.filter((r) => r.sweep);
  const tcp = main.find((r) => r.path === 'tcp');
  const lines = [
    `# runahead bench link: ${describeShape(s)}`,
    '',
    '```',
    input.command,
    '```',
    '',
    `- machine: ${input.machine}`,
    `- K/V: ${describeShape(s)} = ${mib(transferBytes(s))} per transfer (every layer's K and V), in ${framesPerTransfer(s, spec.main.frameBytes)} frames of ≤ ${mib(spec.main.frameBytes)} (${tokens} tokens); receiver's HTTP/2 window ${mib(spec.main.windowBytes)}`,
    "- socket: the chain's code on both ends as ranks run it by default, in two processes over loopback — KvOutbox (framesOf: views, CRC-32) → KvLink → a K/V socket per transfer (kv-socket.ts: length-prefixed KvMessages, payloads written as views) → serveKvSocket → KvReceiver → KvInbox (frame checks, CRC-32, copy into shared buffers)",
    `- socket-tls: the same with mutual TLS (${input.tls}), from the same files as grpc-tls`,
    "- grpc: the chain's code on both ends, with `--kv-transport grpc`, in two processes over loopback — KvOutbox (framesOf: views, CRC-32) → KvLink (kv-codec encoding into reused buffers) → the rank client (transport.ts) → HTTP/2 → rankServer → serveKvStream → KvInbox (frame checks, CRC-32, copy into shared buffers); its buffers reused from the trial before, as a rank's runs reuse theirs",
    `- grpc-tls: the same with mutual TLS (${input.tls}), credentials as the chain makes them from --tls-cert/--tls-key/--tls-ca`,
    '- tcp: a raw socket between the same two processes: 16-byte header + K + V per frame, written as views (writev), copied once into fresh per-layer buffers; no checksum',
    '- memcpy / memcpy-warm / crc32: the same frames inside the sending process: copied into fresh memory, into memory written before, and checksummed',
    `- ${spec.warmup} warm-up run(s), then ${spec.repeats} measured per path; medians; GB/s = 10^9 bytes of K/V per second, from the first frame queued to the receiver's acknowledgement; CPU = process.cpuUsage (user + system) of each process over the transfer`,
    '',
    '| path | GB/s | min | max | vs tcp | frames/s | sender CPU ms | receiver CPU ms | CPU s per GB | received = sent | touches every byte |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...main.map((r) => {
      const cpu = r.senderCpuMs + (r.receiverCpuMs ?? 0);
      return `| ${[
        r.path,
        f2(r.gbps.median),
        f2(r.gbps.min),
        f2(r.gbps.max),
        tcp && CROSSING.has(r.path) ? `${(r.gbps.median / tcp.gbps.median).toFixed(2)}×` : '',
        r.framesPerS.toFixed(0),
        r.senderCpuMs.toFixed(0),
        r.receiverCpuMs === null ? '' : r.receiverCpuMs.toFixed(0),
        (cpu / 1000 / (r.bytes / 1e9)).toFixed(2),
        r.checksumsMatch === null ? '' : r.checksumsMatch ? 'yes (CRC-32)' : '**no**',
        DATA_PATH[r.path],
      ].join(' | ')} |`;
    }),
  ];
  if (sweep.length > 0) {
    lines.push(
      '',
      '## grpc by frame size and receive window',
      '',
      '| frame | tokens/frame | window | GB/s | min | max | frames/s | sender CPU ms | receiver CPU ms | received = sent |',
      '|---|---|---|---|---|---|---|---|---|---|',
      ...sweep.map(
        (r) =>
          `| ${[
            mib(r.settings.frameBytes),
            tokensPerFrame(geometryOf(s), r.settings.frameBytes),
            mib(r.settings.windowBytes),
            f2(r.gbps.median),
            f2(r.gbps.min),
            f2(r.gbps.max),
            r.framesPerS.toFixed(0),
            r.senderCpuMs.toFixed(0),
            r.receiverCpuMs?.toFixed(0) ?? '',
            r.checksumsMatch ? 'yes' : '**no**',
          ].join(' | ')} |`,
      ),
    );
  }
  return `${lines.join('\n')}\n`;
}
