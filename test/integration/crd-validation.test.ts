// The CRD on a real API server: it installs, the examples are accepted by `kubectl apply
// --server-side`, and every manifest of the invalid corpus is refused twice — by the API server
// (schema, CEL rules, strict field validation) and by the operator's own zod check — each time with
// a message that names the field.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';
import { parseRunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { installCrds, repoPath } from '../support/operator.ts';

const EXAMPLES = repoPath('examples');

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown>;
  spec: Record<string, unknown>;
}

const base: Manifest = {
  apiVersion: 'runahead.dev/v1alpha1',
  kind: 'RunaheadJob',
  metadata: { name: 'bad' },
  spec: {
    ranks: 2,
    model: { synthetic: { preset: 'tiny' } },
    prompt: { syntheticTokens: 64 },
    executionProvider: 'cpu',
  },
};

/** The base job with `edit` applied to a deep copy. */
function invalid(edit: (m: Manifest) => void): Manifest {
  const m = structuredClone(base);
  edit(m);
  return m;
}

interface Case {
  readonly name: string;
  readonly manifest: Manifest;
  /** What the API server's refusal must say (the field, and what is wrong). */
  readonly server: RegExp;
  /** What the operator's zod check must say. */
  readonly zod: RegExp;
}

// Paths a rank must never read or mount over (issue: hostile manifests).
const mountPathCase = (path: string, what: string): Case => ({
  name: `checkpoint mountPath ${what} (${JSON.stringify(path)})`,
  manifest: invalid(
    (m) =>
      (m.spec['model'] = { checkpoint: { volume: { hostPath: { path: '/data/models' } }, mountPath: path } }),
  ),
  server: /spec\.model\.checkpoint\.mountPath: .*mountPath must be a normalized absolute path/,
  zod: /model\.checkpoint\.mountPath: mountPath must be a normalized absolute path/,
});
const hostPathCase = (path: string, what: string): Case => ({
  name: `checkpoint hostPath ${what} (${JSON.stringify(path)})`,
  manifest: invalid((m) => (m.spec['model'] = { checkpoint: { volume: { hostPath: { path } } } })),
  server:
    /spec\.model\.checkpoint\.volume\.hostPath\.path: .*hostPath\.path must be a normalized absolute path/,
  zod: /model\.checkpoint\.volume\.hostPath\.path: hostPath\.path must be a normalized absolute path/,
});

const CORPUS: Case[] = [
  {
    name: 'ranks is a string',
    manifest: invalid((m) => (m.spec['ranks'] = 'two')),
    server: /\.spec\.ranks: expected numeric \(int or float\), got string/,
    zod: /ranks: .*number/,
  },
  {
    name: 'ranks 0',
    manifest: invalid((m) => (m.spec['ranks'] = 0)),
    server: /spec\.ranks: Invalid value: 0: spec\.ranks in body should be greater than or equal to 1/,
    zod: /ranks: .*>=1/,
  },
  {
    name: 'ranks huge',
    manifest: invalid((m) => (m.spec['ranks'] = 100000)),
    server: /spec\.ranks: Invalid value: 100000: spec\.ranks in body should be less than or equal to 64/,
    zod: /ranks: .*<=64/,
  },
  {
    name: 'ranks missing',
    manifest: invalid((m) => delete m.spec['ranks']),
    server: /spec\.ranks: Required value/,
    zod: /ranks: /,
  },
  {
    name: 'model missing',
    manifest: invalid((m) => delete m.spec['model']),
    server: /spec\.model: Required value/,
    zod: /model: /,
  },
  {
    name: 'model with both synthetic and checkpoint',
    manifest: invalid(
      (m) =>
        (m.spec['model'] = {
          synthetic: { preset: 'tiny' },
          checkpoint: { volume: { hostPath: { path: '/m' } } },
        }),
    ),
    server: /spec\.model: Invalid value: "object": model: set exactly one of synthetic, checkpoint/,
    zod: /model: set exactly one of synthetic, checkpoint/,
  },
  {
    name: 'unknown synthetic preset',
    manifest: invalid((m) => (m.spec['model'] = { synthetic: { preset: 'gpt-5' } })),
    server:
      /spec\.model\.synthetic\.preset: Unsupported value: "gpt-5": supported values: "tiny", "small", "llama-7b", "llama3-8b"/,
    zod: /model\.synthetic\.preset: /,
  },
  {
    name: 'checkpoint volume with neither PVC nor hostPath',
    manifest: invalid((m) => (m.spec['model'] = { checkpoint: { volume: {} } })),
    server:
      /spec\.model\.checkpoint\.volume: Invalid value: "object": volume: set exactly one of persistentVolumeClaim, hostPath/,
    zod: /model\.checkpoint\.volume: set exactly one of persistentVolumeClaim, hostPath/,
  },
  {
    name: 'checkpoint path escaping the mount',
    manifest: invalid(
      (m) => (m.spec['model'] = { checkpoint: { volume: { hostPath: { path: '/m' } }, path: '../etc' } }),
    ),
    server:
      /spec\.model\.checkpoint\.path: Invalid value: "object": must be relative to mountPath, without "\.\."/,
    zod: /model\.checkpoint\.path: must be relative to mountPath, without "\.\."/,
  },
  {
    name: 'prompt with two sources',
    manifest: invalid((m) => (m.spec['prompt'] = { text: 'hi', syntheticTokens: 10 })),
    server:
      /spec\.prompt: Invalid value: "object": prompt: set exactly one of text, configMapKeyRef, syntheticTokens/,
    zod: /prompt: set exactly one of text, configMapKeyRef, syntheticTokens/,
  },
  {
    name: 'explicit boundaries not increasing',
    manifest: invalid((m) => (m.spec['partition'] = { strategy: 'explicit', boundaries: [0, 40, 30] })),
    server: /spec\.partition\.boundaries: Invalid value: "array": boundaries must be strictly increasing/,
    zod: /partition\.boundaries: boundaries must be strictly increasing/,
  },
  {
    name: 'explicit boundaries not matching ranks',
    manifest: invalid((m) => (m.spec['partition'] = { strategy: 'explicit', boundaries: [0, 20, 40, 64] })),
    server:
      /spec\.partition\.boundaries: Invalid value: "object": partition\.boundaries must hold ranks \+ 1 offsets/,
    zod: /partition\.boundaries: partition\.boundaries must hold ranks \+ 1 offsets/,
  },
  {
    name: 'explicit boundaries not starting at 0',
    manifest: invalid((m) => (m.spec['partition'] = { strategy: 'explicit', boundaries: [5, 30, 64] })),
    server: /spec\.partition\.boundaries: Invalid value: "array": boundaries must start at 0/,
    zod: /partition\.boundaries: boundaries must start at 0/,
  },
  {
    name: 'explicit boundaries not ending at the synthetic prompt length',
    manifest: invalid((m) => (m.spec['partition'] = { strategy: 'explicit', boundaries: [0, 30, 60] })),
    server:
      /spec\.partition\.boundaries: Invalid value: "object": the last partition boundary must equal prompt\.syntheticTokens/,
    zod: /partition\.boundaries: the last partition boundary must equal prompt\.syntheticTokens/,
  },
  {
    name: 'explicit strategy without boundaries',
    manifest: invalid((m) => (m.spec['partition'] = { strategy: 'explicit' })),
    server:
      /spec\.partition\.boundaries: Invalid value: "object": partition\.boundaries is required with strategy explicit/,
    zod: /partition\.boundaries: partition\.boundaries is required with strategy explicit/,
  },
  {
    name: 'balanced strategy without a table',
    manifest: invalid((m) => (m.spec['partition'] = { strategy: 'balanced' })),
    server:
      /spec\.partition\.tableConfigMapRef: Invalid value: "object": partition\.tableConfigMapRef is required with strategy balanced/,
    zod: /partition\.tableConfigMapRef: partition\.tableConfigMapRef is required with strategy balanced/,
  },
  {
    name: 'unknown partition strategy',
    manifest: invalid((m) => (m.spec['partition'] = { strategy: 'random' })),
    server: /spec\.partition\.strategy: Unsupported value: "random"/,
    zod: /partition\.strategy: /,
  },
  {
    name: 'unknown field',
    manifest: invalid((m) => (m.spec['rankz'] = 3)),
    server: /\.spec\.rankz: field not declared in schema/,
    zod: /Unrecognized key: "rankz"/,
  },
  {
    name: 'bad resource quantity',
    manifest: invalid((m) => (m.spec['resources'] = { limits: { memory: 'lots' } })),
    server:
      /spec\.resources\.limits\.memory: Invalid value: "lots": spec\.resources\.limits\.memory in body should match/,
    zod: /resources\.limits\.memory: must be a Kubernetes quantity/,
  },
  {
    name: 'unknown execution provider',
    manifest: invalid((m) => (m.spec['executionProvider'] = 'tpu')),
    server: /spec\.executionProvider: Unsupported value: "tpu": supported values: "cpu", "webgpu", "cuda"/,
    zod: /executionProvider: /,
  },
  {
    name: 'mode single on several ranks',
    manifest: invalid((m) => (m.spec['mode'] = 'single')),
    server: /spec\.ranks: Invalid value: "object": mode single runs on exactly 1 rank/,
    zod: /ranks: mode single runs on exactly 1 rank/,
  },
  {
    name: 'fewer synthetic tokens than ranks',
    manifest: invalid((m) => ((m.spec['ranks'] = 8), (m.spec['prompt'] = { syntheticTokens: 4 }))),
    server:
      /spec\.prompt\.syntheticTokens: Invalid value: "object": prompt\.syntheticTokens must give every rank at least one token/,
    zod: /prompt\.syntheticTokens: prompt\.syntheticTokens must give every rank at least one token/,
  },
  {
    name: 'negative backoffLimit',
    manifest: invalid((m) => (m.spec['backoffLimit'] = -1)),
    server:
      /spec\.backoffLimit: Invalid value: -1: spec\.backoffLimit in body should be greater than or equal to 0/,
    zod: /backoffLimit: /,
  },
  {
    name: 'name too long for the pods it names',
    manifest: invalid((m) => (m.metadata['name'] = `job-${'x'.repeat(60)}`)),
    server: /metadata\.name must be a DNS-1035 label of at most 52 characters/,
    zod: /metadata\.name: must be at most 52 characters/,
  },
  {
    // Within maxLength (characters), over the limit in bytes: 65537 four-byte emoji.
    name: 'prompt text over 256 KiB of UTF-8',
    manifest: invalid((m) => (m.spec['prompt'] = { text: '\u{1F600}'.repeat(65537) })),
    server:
      /spec\.prompt\.text: .*prompt\.text must be at most 262144 bytes of UTF-8; put a longer prompt in a ConfigMap/,
    zod: /prompt\.text: prompt\.text must be at most 262144 bytes of UTF-8/,
  },
  {
    name: 'prompt ConfigMap key with a slash',
    manifest: invalid((m) => (m.spec['prompt'] = { configMapKeyRef: { name: 'p', key: 'a/b' } })),
    server: /spec\.prompt\.configMapKeyRef\.key: Invalid value: "a\/b"/,
    zod: /prompt\.configMapKeyRef\.key: must be a ConfigMap key/,
  },
  {
    name: 'a GPU limit of -1',
    manifest: invalid((m) => (m.spec['resources'] = { limits: { 'nvidia.com/gpu': -1 } })),
    server: /spec\.resources\.limits: .*resource quantities must not be negative/,
    zod: /resources\.limits\.nvidia\.com\/gpu: /,
  },
  {
    name: 'a GPU request of "0.5"',
    manifest: invalid((m) => (m.spec['resources'] = { requests: { 'nvidia.com/gpu': '0.5' } })),
    server: /spec\.resources\.requests: .*GPU counts \(resources named …gpu\) must be whole numbers/,
    zod: /resources\.requests\.nvidia\.com\/gpu: GPU counts \(resources named …gpu\) must be whole numbers/,
  },
  {
    name: 'a CPU limit of "-1"',
    manifest: invalid((m) => (m.spec['resources'] = { limits: { cpu: '-1' } })),
    server: /spec\.resources\.limits: .*resource quantities must not be negative/,
    zod: /resources\.limits\.cpu: resource quantities must not be negative/,
  },
  {
    name: 'a resource named "nvidia gpu!"',
    manifest: invalid((m) => (m.spec['resources'] = { limits: { 'nvidia gpu!': 1 } })),
    server: /spec\.resources\.limits: .*resource names look like cpu, memory or nvidia\.com\/gpu/,
    zod: /resources\.limits.*resource names look like cpu, memory or nvidia\.com\/gpu/,
  },
  {
    name: 'activeDeadlineSeconds of 2^53 + 1',
    manifest: invalid((m) => (m.spec['activeDeadlineSeconds'] = 2 ** 53 + 2)),
    server: /spec\.activeDeadlineSeconds: .*less than or equal to 31536000/,
    zod: /activeDeadlineSeconds: .*(<=31536000|safe integer)/,
  },
  mountPathCase('/', 'the root'),
  mountPathCase('/tmp', 'the operator’s /tmp'),
  mountPathCase('/etc/runahead/prompt', 'the operator’s prompt mount'),
  mountPathCase('/dev/shm', 'under /dev'),
  mountPathCase('/models/../etc', 'a ".." segment'),
  mountPathCase('/models\nx', 'a newline'),
  mountPathCase('/models/', 'a trailing /'),
  mountPathCase('/a:b', 'a ":"'),
  hostPathCase('/', 'the root'),
  hostPathCase('/etc', '/etc'),
  hostPathCase('/var/run/docker.sock', 'the container runtime socket'),
  hostPathCase('/var/lib/kubelet/pods', 'the kubelet’s pods'),
  hostPathCase('/data/../etc', 'a ".." segment'),
  hostPathCase('/data//m', 'an empty segment'),
  hostPathCase('/proc/1/root', '/proc'),
  // Scheduling fields, checked as the Pod API would check them (core/api/v1alpha1/scheduling.ts).
  {
    name: 'affinity with a misspelt field (nodeAffinty)',
    manifest: invalid(
      (m) => (m.spec['affinity'] = { nodeAffinty: { requiredDuringSchedulingIgnoredDuringExecution: {} } }),
    ),
    server: /\.spec\.affinity\.nodeAffinty: field not declared in schema/,
    zod: /affinity: Unrecognized key: "nodeAffinty"/,
  },
  {
    name: 'a pod anti-affinity term without a topologyKey',
    manifest: invalid(
      (m) =>
        (m.spec['affinity'] = {
          podAntiAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { labelSelector: { matchLabels: { app: 'x' } } },
            ],
          },
        }),
    ),
    server:
      /spec\.affinity\.podAntiAffinity\.requiredDuringSchedulingIgnoredDuringExecution\[0\]\.topologyKey: Required value/,
    zod: /affinity\.podAntiAffinity\.requiredDuringSchedulingIgnoredDuringExecution\.0\.topologyKey: /,
  },
  {
    name: 'a pod affinity label selector key with a space',
    manifest: invalid(
      (m) =>
        (m.spec['affinity'] = {
          podAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: [
              { labelSelector: { matchLabels: { 'my app': 'x' } }, topologyKey: 'kubernetes.io/hostname' },
            ],
          },
        }),
    ),
    server:
      /spec\.affinity\.podAffinity\.requiredDuringSchedulingIgnoredDuringExecution\[0\]\.labelSelector\.matchLabels: .*matchLabels key "my app" must be a qualified name/,
    zod: /labelSelector\.matchLabels\.my app: matchLabels keys must be a qualified name/,
  },
  {
    name: 'a preferred node affinity weight of 0',
    manifest: invalid(
      (m) =>
        (m.spec['affinity'] = {
          nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 0, preference: {} }] },
        }),
    ),
    server:
      /spec\.affinity\.nodeAffinity\.preferredDuringSchedulingIgnoredDuringExecution\[0\]\.weight: Invalid value: 0: .*greater than or equal to 1/,
    zod: /affinity\.nodeAffinity\.preferredDuringSchedulingIgnoredDuringExecution\.0\.weight: .*>=1/,
  },
  {
    name: 'a node selector requirement In without values',
    manifest: invalid(
      (m) =>
        (m.spec['affinity'] = {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/os', operator: 'In' }] }],
            },
          },
        }),
    ),
    server: /matchExpressions\[0\]\.values: .*values must be non-empty with operator In or NotIn/,
    zod: /matchExpressions\.0\.values: values must be non-empty with operator In or NotIn/,
  },
  {
    name: 'a toleration operator Matches',
    manifest: invalid((m) => (m.spec['tolerations'] = [{ key: 'gpu', operator: 'Matches', value: 'x' }])),
    server:
      /spec\.tolerations\[0\]\.operator: Unsupported value: "Matches": supported values: "Exists", "Equal"/,
    zod: /tolerations\.0\.operator: /,
  },
  {
    name: 'a toleration effect NoRun',
    manifest: invalid((m) => (m.spec['tolerations'] = [{ key: 'gpu', operator: 'Exists', effect: 'NoRun' }])),
    server: /spec\.tolerations\[0\]\.effect: Unsupported value: "NoRun"/,
    zod: /tolerations\.0\.effect: /,
  },
  {
    name: 'a toleration without a key and operator Equal',
    manifest: invalid((m) => (m.spec['tolerations'] = [{ operator: 'Equal', value: 'x' }])),
    server: /spec\.tolerations\[0\]\.operator: .*a toleration without a key must have operator Exists/,
    zod: /tolerations\.0\.operator: a toleration without a key must have operator Exists/,
  },
  {
    name: 'a toleration with tolerationSeconds and effect NoSchedule',
    manifest: invalid(
      (m) =>
        (m.spec['tolerations'] = [
          { key: 'gpu', operator: 'Exists', effect: 'NoSchedule', tolerationSeconds: 60 },
        ]),
    ),
    server:
      /spec\.tolerations\[0\]\.tolerationSeconds: .*tolerationSeconds is only allowed with effect NoExecute/,
    zod: /tolerations\.0\.tolerationSeconds: tolerationSeconds is only allowed with effect NoExecute/,
  },
  {
    name: 'a toleration key with a space',
    manifest: invalid((m) => (m.spec['tolerations'] = [{ key: 'nvidia gpu', operator: 'Exists' }])),
    server: /spec\.tolerations\[0\]\.key: Invalid value: "nvidia gpu"/,
    zod: /tolerations\.0\.key: must be a qualified name/,
  },
  {
    name: 'a nodeSelector value of 64 characters',
    manifest: invalid((m) => (m.spec['nodeSelector'] = { pool: 'x'.repeat(64) })),
    server: /spec\.nodeSelector\.pool: Too long: may not be more than 63 bytes/,
    zod: /nodeSelector\.pool: .*<=63/,
  },
  {
    name: 'a nodeSelector value of 1 MiB',
    manifest: invalid((m) => (m.spec['nodeSelector'] = { pool: 'x'.repeat(1 << 20) })),
    server: /spec\.nodeSelector\.pool: Too long: may not be more than 63 bytes/,
    zod: /nodeSelector\.pool: .*<=63/,
  },
  {
    name: 'a nodeSelector key with a space and "!"',
    manifest: invalid((m) => (m.spec['nodeSelector'] = { 'node role!': 'gpu' })),
    server: /spec\.nodeSelector: .*nodeSelector key "node role!" must be a qualified name/,
    zod: /nodeSelector\.node role!: nodeSelector keys must be a qualified name/,
  },
  {
    name: 'a nodeSelector value with a slash',
    manifest: invalid((m) => (m.spec['nodeSelector'] = { 'kubernetes.io/os': 'linux/amd64' })),
    server: /spec\.nodeSelector\.kubernetes\.io\/os: Invalid value: "linux\/amd64"/,
    zod: /nodeSelector\.kubernetes\.io\/os: must be a label value/,
  },
  {
    name: 'exclusive placement without a topologyKey',
    manifest: invalid((m) => (m.spec['placement'] = { exclusive: true })),
    server: /spec\.placement\.exclusive: .*placement\.exclusive needs placement\.topologyKey/,
    zod: /placement\.exclusive: placement\.exclusive needs placement\.topologyKey/,
  },
  {
    name: 'a placement topologyKey with a space',
    manifest: invalid((m) => (m.spec['placement'] = { topologyKey: 'my rack' })),
    server: /spec\.placement\.topologyKey: Invalid value: "my rack"/,
    zod: /placement\.topologyKey: must be a qualified name/,
  },
  {
    name: 'a pod group of an unknown scheduler',
    manifest: invalid((m) => (m.spec['placement'] = { podGroup: { scheduler: 'Yunikorn' } })),
    server: /spec\.placement\.podGroup\.scheduler: Unsupported value: "Yunikorn"/,
    zod: /placement\.podGroup\.scheduler: /,
  },
  {
    name: 'placement packing misspelt',
    manifest: invalid((m) => (m.spec['placement'] = { packing: 'consecutive' })),
    server: /spec\.placement\.packing: Unsupported value: "consecutive"/,
    zod: /placement\.packing: /,
  },
];

describe('RunaheadJob CRD on a real API server', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await ControlPlane.start();
    await installCrds(cp);
  }, 120_000);

  afterAll(async () => {
    await cp.stop();
  });

  test('the corpus is large enough', () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(15);
  });

  test.each(readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')))(
    'example %s is accepted by kubectl apply --server-side and by the operator',
    async (file) => {
      const text = readFileSync(`${EXAMPLES}/${file}`, 'utf8');
      const out = await cp.kubectl(['apply', '--server-side', '-f', '-', '-n', 'default'], text);
      expect(out).toMatch(/runaheadjob\.runahead\.dev\/\S+ serverside-applied/);
      const jobs = parseAllDocuments(text)
        .map((d) => d.toJS() as { kind: string; metadata: { name: string } })
        .filter((d) => d.kind === 'RunaheadJob');
      for (const j of jobs) {
        // As stored: the API server's defaults applied, then the operator's check.
        const stored = JSON.parse(
          await cp.kubectl(['get', 'runaheadjob', j.metadata.name, '-n', 'default', '-o', 'json']),
        ) as unknown;
        const parsed = parseRunaheadJob(stored);
        expect(parsed).toMatchObject({ ok: true });
      }
    },
  );

  test('affinity, tolerations and nodeSelector in every form the Pod API takes are accepted and kept', async () => {
    const term = {
      labelSelector: {
        matchLabels: { 'app.kubernetes.io/name': 'runahead' },
        matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['batch'] }],
      },
      namespaceSelector: { matchExpressions: [{ key: 'team', operator: 'Exists' }] },
      namespaces: ['default'],
      topologyKey: 'kubernetes.io/hostname',
      matchLabelKeys: ['runahead.dev/job'],
    };
    const spec = {
      ...base.spec,
      nodeSelector: { 'kubernetes.io/os': 'linux', 'nvidia.com/gpu.present': 'true', empty: '' },
      tolerations: [
        { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
        { key: 'dedicated', operator: 'Equal', value: 'ml', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: '', operator: 'Exists' },
        { operator: 'Exists' },
      ],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              {
                matchExpressions: [{ key: 'gpu.memory', operator: 'Gt', values: ['80000'] }],
                matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-1'] }],
              },
            ],
          },
          preferredDuringSchedulingIgnoredDuringExecution: [
            { weight: 100, preference: { matchExpressions: [{ key: 'zone', operator: 'DoesNotExist' }] } },
          ],
        },
        podAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, podAffinityTerm: term }],
        },
        podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] },
      },
    };
    const manifest = { ...base, metadata: { name: 'scheduling' }, spec };
    await cp.kubectl(['apply', '--server-side', '-f', '-', '-n', 'default'], stringify(manifest));
    const stored = JSON.parse(
      await cp.kubectl(['get', 'runaheadjob', 'scheduling', '-n', 'default', '-o', 'json']),
    ) as { spec: Record<string, unknown> };
    const parsed = parseRunaheadJob(stored);
    if (!parsed.ok) throw new Error(parsed.message);
    for (const field of ['nodeSelector', 'tolerations', 'affinity'] as const) {
      expect(stored.spec[field]).toEqual(spec[field]);
      expect(parsed.job.spec[field]).toEqual(spec[field]);
    }
  });

  test('the API server fills in the same defaults as the zod schema', async () => {
    await cp.kubectl(
      ['apply', '--server-side', '-f', '-', '-n', 'default'],
      stringify({ ...base, metadata: { name: 'defaults' } }),
    );
    const stored = JSON.parse(
      await cp.kubectl(['get', 'runaheadjob', 'defaults', '-n', 'default', '-o', 'json']),
    ) as {
      spec: unknown;
    };
    const parsed = parseRunaheadJob({ ...base, metadata: { name: 'defaults' } });
    if (!parsed.ok) throw new Error(parsed.message);
    expect(stored.spec).toEqual(JSON.parse(JSON.stringify(parsed.job.spec)));
  });

  test.each(CORPUS)(
    '$name is refused by the API server and by the operator',
    async ({ manifest, server, zod }) => {
      const err = await cp
        .kubectl(['apply', '--server-side', '-f', '-', '-n', 'default'], stringify(manifest))
        .then(
          (out) => new Error(`accepted: ${out}`),
          (e: unknown) => e as Error,
        );
      expect(err.message).toMatch(server);
      const parsed = parseRunaheadJob(manifest);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(parsed.message).toMatch(zod);
    },
  );

  test('immutable fields cannot change; suspend can', async () => {
    const name = 'immutable';
    await cp.kubectl(
      ['apply', '--server-side', '-f', '-', '-n', 'default'],
      stringify({ ...base, metadata: { name } }),
    );
    const patch = (spec: object) =>
      cp.kubectl([
        'patch',
        'runaheadjob',
        name,
        '-n',
        'default',
        '--type=merge',
        '-p',
        JSON.stringify({ spec }),
      ]);
    await expect(patch({ ranks: 4 })).rejects.toThrow(
      /spec\.ranks: Invalid value: .*spec\.ranks is immutable; create a new job instead/,
    );
    await expect(patch({ dtype: 'float32', image: 'example.com/worker:2' })).rejects.toThrow(
      /spec\.dtype is immutable[\s\S]*spec\.image is immutable|spec\.image is immutable[\s\S]*spec\.dtype is immutable/,
    );
    await expect(patch({ suspend: true })).resolves.toMatch(/patched/);
  });
});
