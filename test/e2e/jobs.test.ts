// End to end, as a user runs it on a cluster: `kubectl apply -f examples/<job>.yaml`, `kubectl wait
// --for=condition=Complete`, `kubectl get runaheadjobs` — on a real API server, with the operator as
// a process and the test node agent running every rank pod's `runahead worker` as a local process.
// The jobs: 1, 2 and 4 ranks; even and balanced splits; the reference checkpoint (through a hostPath
// volume) and synthetic models. Each job's first token (and generated tokens) must be what
// `runahead prefill` gives for the same prompt and model in one process.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { evenBoundaries } from '../../core/partition.ts';
import { lookupBoundaries, parsePartitionTable } from '../../core/partition-table.ts';
import { runCli } from '../support/cli.ts';
import { E2eCluster, NODE_MODELS_DIR } from '../support/e2e.ts';
import { eventually } from '../support/eventually.ts';
import { FIXTURES } from '../support/fixtures.ts';
import { repoPath } from '../support/operator.ts';

jest.setTimeout(600_000);

interface Prefill {
  firstToken: number;
  firstTokenText: string;
  tokens: number[];
  contextLength: number;
}

/** The example's documents, parsed. */
function example(file: string): Record<string, unknown>[] {
  return parseAllDocuments(readFileSync(repoPath(`examples/${file}`), 'utf8')).map(
    (d) => d.toJS() as Record<string, unknown>,
  );
}

interface JobSpec {
  ranks: number;
  mode?: string;
  dtype: string;
  maxNewTokens?: number;
  model: {
    synthetic?: { preset: string; seed?: number };
    checkpoint?: { volume: { hostPath: { path: string } }; path: string };
  };
  prompt: { text?: string; syntheticTokens?: number };
  partition?: { strategy: string };
}

function jobOf(file: string): { name: string; spec: JobSpec } {
  const doc = example(file).find((d) => d['kind'] === 'RunaheadJob')!;
  return { name: (doc['metadata'] as { name: string }).name, spec: doc['spec'] as JobSpec };
}

/** `runahead prefill --json` in one process, for the job's model and prompt. */
async function prefill(spec: JobSpec): Promise<Prefill> {
  const m = spec.model;
  const model = m.synthetic
    ? ['--model', `synthetic:${m.synthetic.preset}`, '--seed', String(m.synthetic.seed ?? 0)]
    : [
        '--model',
        join(
          m.checkpoint!.volume.hostPath.path.replace(NODE_MODELS_DIR, join(FIXTURES, 'models')),
          m.checkpoint!.path,
        ),
      ];
  const prompt =
    spec.prompt.text !== undefined
      ? ['--prompt', spec.prompt.text]
      : ['--prompt-tokens', String(spec.prompt.syntheticTokens)];
  const r = await runCli(
    [
      'prefill',
      ...model,
      ...prompt,
      '--dtype',
      spec.dtype,
      '--threads',
      '1',
      '--max-new-tokens',
      String(spec.maxNewTokens ?? 0),
      '--json',
    ],
    { timeoutMs: 120_000 },
  );
  if (r.code !== 0) throw new Error(`runahead prefill failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Prefill;
}

const EXAMPLES = [
  'checkpoint-text-1rank.yaml',
  'synthetic-2ranks.yaml',
  'checkpoint-text-4ranks.yaml',
  'synthetic-4ranks-balanced.yaml',
] as const;

describe('RunaheadJobs from examples/, end to end', () => {
  let cluster: E2eCluster;
  const started = Date.now();
  beforeAll(async () => {
    cluster = await E2eCluster.start();
  }, 120_000);
  afterAll(async () => {
    await cluster.stop();
  });

  it('the balanced example’s table is what runahead tune makes from the profile it names', async () => {
    const cm = example('synthetic-4ranks-balanced.yaml').find((d) => d['kind'] === 'ConfigMap')!;
    const table = JSON.parse((cm['data'] as Record<string, string>)['table-4.json']!) as unknown;
    const out = join(cluster.cp.dir, 'table-4.json');
    const tune = await runCli([
      'tune',
      '--ranks',
      '4',
      '--profile',
      'bench/results/cpu-balanced-h100host/profile.json',
      '--contexts',
      '512,1024,2048',
      '--out',
      out,
    ]);
    expect(tune.code).toBe(0);
    expect(table).toEqual(JSON.parse(readFileSync(out, 'utf8')));
  });

  it('kubectl apply, kubectl wait --for=condition=Complete: every job gets the first token runahead prefill gives', async () => {
    // All four at once, as jobs arrive on a cluster; the references meanwhile.
    for (const file of EXAMPLES) await cluster.applyExample(file);
    const references = new Map<string, Prefill>();
    for (const file of EXAMPLES) references.set(file, await prefill(jobOf(file).spec));
    for (const file of EXAMPLES) await cluster.wait(jobOf(file).name, 'Complete', 300);

    for (const file of EXAMPLES) {
      const { name, spec } = jobOf(file);
      const job = await cluster.job(name);
      const status = job.status!;
      const expected = references.get(file)!;
      expect({ file, phase: status.phase, firstToken: status.firstToken, tokens: status.tokens }).toEqual({
        file,
        phase: 'Succeeded',
        firstToken: expected.firstToken,
        tokens: expected.tokens,
      });
      expect(status.firstTokenText).toBe(expected.firstTokenText);
      expect(status.ttftMs).toBeGreaterThan(0);
      expect(status.contextLength).toBe(expected.contextLength);
      // A restart names its cause in the job's events: shown when there is one.
      const why = status.restarts
        ? await cluster.kubectl([
            'get',
            'events',
            '--field-selector',
            `involvedObject.name=${name}`,
            '-o',
            'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}',
          ])
        : '';
      expect({ file, restarts: status.restarts, why }).toEqual({ file, restarts: 0, why: '' });
      expect(status.ranks).toHaveLength(spec.ranks);
      const boundaries = status.boundaries!;
      expect(boundaries).toHaveLength(spec.ranks + 1);
      if (spec.partition?.strategy === 'balanced') {
        const cm = example(file).find((d) => d['kind'] === 'ConfigMap')!;
        const table = parsePartitionTable(
          JSON.parse(Object.values(cm['data'] as Record<string, string>)[0]!),
        );
        expect(boundaries).toEqual(lookupBoundaries(table, expected.contextLength));
        // Earlier ranks run ahead, so they get more tokens than the last.
        expect(boundaries[1]! - boundaries[0]!).toBeGreaterThan(boundaries[4]! - boundaries[3]!);
      } else if (spec.ranks > 1) {
        expect(boundaries).toEqual(evenBoundaries(expected.contextLength, spec.ranks));
      }
      for (const r of status.ranks ?? []) {
        expect(r.node).toBe(cluster.agent.nodeName);
        expect(r.computeMs).toBeGreaterThan(0);
      }
      // Every rank's process ended well, once (the last ranks may still be on their way out).
      const ranks = () => cluster.agent.pods().filter((p) => p.name.startsWith(`${name}-`));
      await eventually(`the ranks of ${name} to exit`, () => ranks().every((p) => !p.running), 30_000);
      expect(
        ranks()
          .map((p) => [p.name, p.exitCode])
          .sort(),
      ).toEqual(Array.from({ length: spec.ranks }, (_, r) => [`${name}-${r}`, 0]));
    }

    // The gang (checkpoint-text-4ranks' spec.placement) was released whole: its gate is gone from
    // every pod, and the node agent never tried to bind a gated one (its errors are checked below).
    const gang = (
      JSON.parse(
        await cluster.kubectl(['get', 'pods', '-l', 'runahead.dev/job=checkpoint-text-4ranks', '-o', 'json']),
      ) as { items: V1Pod[] }
    ).items.sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
    expect(
      gang.map((p) => [
        p.metadata?.name,
        p.spec?.schedulingGates ?? [],
        p.spec?.affinity?.podAffinity ? 'packed' : '',
      ]),
    ).toEqual([0, 1, 2, 3].map((r) => [`checkpoint-text-4ranks-${r}`, [], 'packed']));

    // The finished pods stay (Succeeded) until the job goes; no process runs any more.
    expect(cluster.agent.liveProcesses()).toEqual([]);
  });

  it('kubectl get runaheadjobs shows the printer columns', async () => {
    const table = await cluster.kubectl(['get', 'runaheadjobs']);
    const [header, ...rows] = table.trimEnd().split('\n');
    expect(header!.split(/\s+/)).toEqual(['NAME', 'PHASE', 'RANKS', 'MODE', 'TOKENS', 'TTFT-MS', 'AGE']);
    for (const file of EXAMPLES) {
      const { name, spec } = jobOf(file);
      const job = await cluster.job(name);
      const row = rows.find((r) => r.startsWith(`${name} `))!.split(/\s+/);
      expect(row.slice(0, 6)).toEqual([
        name,
        'Succeeded',
        String(spec.ranks),
        spec.mode ?? 'runahead',
        String(job.status!.contextLength),
        String(job.status!.ttftMs),
      ]);
    }
    const wide = await cluster.kubectl(['get', 'runaheadjobs', '-o', 'wide']);
    expect(wide.split('\n')[0]!.split(/\s+/)).toEqual([
      'NAME',
      'PHASE',
      'RANKS',
      'MODE',
      'TOKENS',
      'TTFT-MS',
      'RESTARTS',
      'FIRST-TOKEN',
      'AGE',
    ]);
    process.stderr.write(`e2e jobs: ${((Date.now() - started) / 1000).toFixed(0)} s\n${table}`);
  });

  it('kubectl delete runaheadjob: its pods, Service and ConfigMap go with it', async () => {
    expect(await cluster.pods('synthetic-2ranks')).toHaveLength(2);
    await cluster.kubectl(['delete', 'runaheadjob', 'synthetic-2ranks']);
    const left = () =>
      cluster.kubectl([
        'get',
        'pods,services,configmaps',
        '-l',
        'runahead.dev/job=synthetic-2ranks',
        '-o',
        'name',
      ]);
    await eventually(
      'the children of synthetic-2ranks to go',
      async () => (await left()).trim() === '',
      60_000,
    );
    expect(cluster.agent.liveProcesses()).toEqual([]);
    expect(cluster.agent.errors).toEqual([]);
  });
});
