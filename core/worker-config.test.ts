// The contract across the process boundary: what the operator and the launcher write with
// workerArgv() is what `runahead worker`'s own flag definitions read back, field for field.
import { describe, expect, test } from '@jest/globals';
import { Command } from 'commander';
import { withWorkerFlags } from '../cli/worker-flags.ts';
import {
  DEFAULT_OPERATOR_DEFAULTS,
  desiredPod,
  workerConfig,
  type JobRef,
} from '../operator/desired-children.ts';
import { RunaheadJobSpecSchema, type RunaheadJobSpecInput } from './api/v1alpha1/runahead-job.ts';
import { FlagsError, workerArgv, workerConfigFromFlags, type WorkerConfig } from './worker-config.ts';

/** Parse `runahead worker …` argv with the worker's real flag definitions. */
function parseWorkerArgv(argv: readonly string[]): { config: WorkerConfig; fromDefaults: string[] } {
  const cmd = withWorkerFlags(new Command('worker').exitOverride().allowExcessArguments(false));
  cmd.parse(argv.slice(1), { from: 'user' });
  const opts = cmd.opts();
  const fromDefaults = Object.keys(opts).filter((k) => cmd.getOptionValueSource(k) === 'default');
  return { config: workerConfigFromFlags(opts), fromDefaults };
}

function job(spec: Partial<RunaheadJobSpecInput>): JobRef {
  return {
    name: 'j',
    namespace: 'team',
    uid: 'u',
    spec: RunaheadJobSpecSchema.parse({
      ranks: 3,
      model: { synthetic: { preset: 'tiny' } },
      prompt: { text: 'hi' },
      ...spec,
    }),
  };
}

const launcherRank: WorkerConfig = {
  rank: 1,
  worldSize: 2,
  peers: ['127.0.0.1:4001', '127.0.0.1:4002'],
  listen: '127.0.0.1:4002',
  kvPort: 4003,
  serve: true,
  engine: {
    model: '/models/llama 3',
    ep: 'cuda',
    dtype: 'float16',
    threads: 3,
    seed: 7,
    device: 1,
    layersPerGraph: 8,
    attention: 'reference',
    io: 'native',
  },
  modelOrigin: '--model',
  prompt: null,
  chain: {
    mode: 'tsp',
    partition: { kind: 'balanced' },
    partitionTable: '/tmp/table, 2.json',
    maxNewTokens: 5,
    maxFrameBytes: 4096,
    maxQueuedFrames: 3,
    peerTimeoutMs: 1234,
    startupTimeoutMs: 5678,
    runTimeoutMs: 91011,
    kvTransport: 'grpc',
    tls: { cert: '/t/c.pem', key: '/t/k.pem', ca: '/t/ca.pem' },
  },
  terminationLog: '/dev/termination-log',
  resultFile: '/tmp/result.json',
  json: true,
};

describe('WorkerConfig across the process boundary', () => {
  test('a launcher rank with every field set survives argv → the worker’s parser, with no flag left to its default', () => {
    const { config, fromDefaults } = parseWorkerArgv(workerArgv(launcherRank));
    expect(config).toEqual(launcherRank);
    expect(fromDefaults).toEqual([]);
  });

  test('job ranks of every partition kind and prompt source, as the operator builds them', () => {
    const jobs = [
      job({ partition: { strategy: 'explicit', boundaries: [0, 1, 2, 3] }, prompt: { syntheticTokens: 3 } }),
      job({ partition: { strategy: 'balanced', tableConfigMapRef: { name: 't', key: 'k' } } }),
      job({ tls: { secretName: 's' }, mode: 'tsp', activeDeadlineSeconds: 99 }),
      job({
        model: { checkpoint: { volume: { persistentVolumeClaim: { claimName: 'm' } }, path: 'a/b' } },
        executionProvider: 'cpu',
        dtype: 'float32',
        threads: 2,
      }),
    ];
    for (const j of jobs)
      for (const rank of [0, 1, 2]) {
        const sent = workerConfig(j, rank, DEFAULT_OPERATOR_DEFAULTS);
        const args = desiredPod(j, rank, 0, DEFAULT_OPERATOR_DEFAULTS).spec!.containers[0]!.args!;
        expect(parseWorkerArgv(args).config).toEqual(sent);
      }
  });

  test('a text prompt with commas, quotes and newlines crosses intact', () => {
    const c: WorkerConfig = {
      ...launcherRank,
      rank: 0,
      serve: false,
      prompt: { kind: 'text', text: 'a, "b"\n--model x' },
      chain: { ...launcherRank.chain, partition: { kind: 'explicit', boundaries: [0, 4, 9] } },
    };
    expect(parseWorkerArgv(workerArgv(c)).config).toEqual(c);
  });

  test('a bad or inconsistent flag is refused by name', () => {
    const argv = workerArgv(launcherRank);
    const withFlag = (flag: string, value: string) => {
      const i = argv.indexOf(flag);
      return [...argv.slice(0, i + 1), value, ...argv.slice(i + 2)];
    };
    expect(() => parseWorkerArgv(withFlag('--rank', '2'))).toThrow('--rank 2 must be below --world-size 2');
    expect(() => parseWorkerArgv(withFlag('--ep', 'tpu'))).toThrow('--ep must be one of');
    expect(() => parseWorkerArgv(withFlag('--peers', 'a:1'))).toThrow('--peers must list 2 addresses');
    expect(() => parseWorkerArgv(withFlag('--max-frame-bytes', '10'))).toThrow(
      '--max-frame-bytes must be ≥ 1024',
    );
    const noCa = argv.filter((a, i) => a !== '--tls-ca' && argv[i - 1] !== '--tls-ca');
    expect(() => parseWorkerArgv(noCa)).toThrow(FlagsError);
    const job0 = workerArgv({ ...launcherRank, rank: 0, serve: false });
    expect(() => parseWorkerArgv(job0)).toThrow('rank 0 of a job needs one of --prompt');
  });
});
