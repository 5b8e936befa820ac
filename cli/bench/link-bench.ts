// `runahead bench link`: K/V of one geometry streamed between two rank processes over the chain's
// gRPC link (plain and mutual TLS), beside a raw TCP socket between the same processes and copies
// inside one, all in one run. This file forks the two processes (link-peer.ts), walks the plan
// (link-plan.ts) trial by trial over IPC, and writes what link-report.ts makes of the runs.
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TlsFiles } from '../../worker/chain/transport.ts';
import { parseFlags } from '../options.ts';
import { progress } from '../progress.ts';
import { machineDescription } from './machine.ts';
import { PeerChannel, type CrossingPath, type ReceiveResult, type SendResult } from './link-ipc.ts';
import {
  CROSSING,
  LinkFlags,
  TLS_PATHS,
  planSpec,
  planTrials,
  type LinkPath,
  type LinkPlanSpec,
  type Trial,
} from './link-plan.ts';

const isCrossing = (p: LinkPath): p is CrossingPath => CROSSING.has(p);
import { linkSummary, renderLinkReport, summarizeRuns, type LinkRun } from './link-report.ts';
import { makeTempCerts } from './link-tls.ts';

/** The peer's entry beside this file: link-peer.ts from a checkout, link-peer.js from dist/. */
const PEER = fileURLToPath(new URL(`./link-peer${extname(fileURLToPath(import.meta.url))}`, import.meta.url));

/**
 * The glibc settings every rank process runs with (worker/runtime/ort.ts MALLOC_TUNING_ENV, which
 * the launcher, the Dockerfile and the pod spec set): freed buffers are kept for reuse instead of
 * fresh pages for every frame. Repeated here because ort.ts loads onnxruntime; a test keeps the two
 * equal.
 */
export const RANK_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: String(4 << 20),
  MALLOC_TRIM_THRESHOLD_: String(16 * 2 ** 30),
  MALLOC_TOP_PAD_: String(2 ** 30),
};

interface Peer {
  readonly process: ChildProcess;
  readonly channel: PeerChannel;
}

function spawnPeer(role: 'sender' | 'receiver'): Peer {
  const child = fork(PEER, [role], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...RANK_MALLOC_ENV, ...process.env },
  });
  return { process: child, channel: new PeerChannel(child, role) };
}

async function stopPeer(peer: Peer): Promise<void> {
  const p = peer.process;
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = once(p, 'exit');
  if (p.connected) p.disconnect();
  const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function label(t: Trial): string {
  const what = t.sweep ? `${t.path} ${t.frameBytes} B frames, ${t.windowBytes} B window` : t.path;
  return `${what} ${t.warmup ? 'warm-up' : `run ${t.repeat + 1}`}`;
}

export interface Measured {
  readonly sentChecksum: number;
  readonly runs: readonly LinkRun[];
}

/** Every trial of the plan, in order, between two fresh rank processes. */
export async function measureLink(
  spec: LinkPlanSpec,
  tls: TlsFiles | null,
  timeoutMs: number,
  onTrial: (done: number, total: number, what: string) => void = () => undefined,
): Promise<Measured> {
  const trials = planTrials(spec);
  const sender = spawnPeer('sender');
  const receiver = spawnPeer('receiver');
  const runs: LinkRun[] = [];
  try {
    await Promise.all([
      sender.channel.call({ op: 'init', shape: spec.shape }),
      receiver.channel.call({ op: 'init', shape: spec.shape }),
    ]);
    const sentChecksum = await sender.channel.call<number>({ op: 'checksum' });
    let connected = '';
    for (const [i, trial] of trials.entries()) {
      onTrial(i, trials.length, label(trial));
      const settings = { frameBytes: trial.frameBytes, windowBytes: trial.windowBytes };
      if (isCrossing(trial.path)) {
        const link = `${trial.path}/${trial.frameBytes}/${trial.windowBytes}`;
        const linkTls = TLS_PATHS.has(trial.path) ? tls : null;
        if (link !== connected) {
          const port = await receiver.channel.call<number>({
            op: 'listen',
            path: trial.path,
            settings,
            tls: linkTls,
          });
          await sender.channel.call({
            op: 'connect',
            path: trial.path,
            port,
            settings,
            tls: linkTls,
            timeoutMs,
          });
          connected = link;
        }
        const id = `${link}/${i}`;
        await receiver.channel.call({ op: 'arm', trial: id });
        const [send, receive] = await Promise.all([
          sender.channel.call<SendResult>({ op: 'send', trial: id }),
          receiver.channel.call<ReceiveResult>({ op: 'collect', trial: id, timeoutMs }),
        ]);
        runs.push({ trial, send, receive });
      } else {
        const send = await sender.channel.call<SendResult>({
          op: 'local',
          path: trial.path,
          frameBytes: trial.frameBytes,
        });
        runs.push({ trial, send, receive: null });
      }
    }
    onTrial(trials.length, trials.length, 'done');
    return { sentChecksum, runs };
  } finally {
    await Promise.all([stopPeer(sender), stopPeer(receiver)]);
  }
}

/** The action of `runahead bench link`. */
export async function runBenchLink(flags: Record<string, unknown>, argv: readonly string[]): Promise<void> {
  const f = parseFlags(LinkFlags, flags);
  const spec = planSpec(f);
  const command = ['runahead bench link', ...argv].join(' ');
  // Other work on the machine shows in every path: the report says how busy it was.
  const loadBefore = loadavg()[0]!;
  const wantsTls = spec.paths.some((p) => TLS_PATHS.has(p));
  const given: TlsFiles | null =
    f.tlsCert && f.tlsKey && f.tlsCa ? { cert: f.tlsCert, key: f.tlsKey, ca: f.tlsCa } : null;
  const temp = wantsTls && !given ? await makeTempCerts() : null;
  const tls = given ?? temp?.files ?? null;
  let measured: Measured;
  const bar = progress('bench link');
  try {
    measured = await measureLink(spec, tls, f.timeoutMs, (done, total, what) => {
      bar.update(done, total, what);
    });
  } finally {
    bar.stop();
    await temp?.remove();
  }
  const results = summarizeRuns(measured.runs, measured.sentChecksum);
  const summary = linkSummary(spec, results, measured.sentChecksum);
  const machine = `${machineDescription()}; load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end`;
  const report = renderLinkReport({
    command,
    machine,
    spec,
    tls: given ? 'the certificates given' : 'throwaway P-256 certificates from openssl',
    results,
  });
  if (f.out) {
    await mkdir(dirname(f.out), { recursive: true });
    await writeFile(f.out, report);
  }
  if (f.jsonOut) {
    await mkdir(dirname(f.jsonOut), { recursive: true });
    await writeFile(
      f.jsonOut,
      `${JSON.stringify({ version: 1, command, machine, summary, results, runs: measured.runs }, null, 1)}\n`,
    );
  }
  process.stdout.write(f.json ? `${JSON.stringify(summary)}\n` : report);
  if (summary.checksumsMatch !== true) {
    throw new Error('the receiver did not end up with the bytes sent (see "received = sent")');
  }
}
