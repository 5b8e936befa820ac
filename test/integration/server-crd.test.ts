// The RunaheadServer CRD on a real API server: the example is accepted and stored with the same
// defaults the operator's zod schema fills in, and invalid manifests are refused twice — by the API
// server (CEL, schema) and by the operator's zod check — each naming the field.
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { parseRunaheadServer } from '../../core/api/v1alpha1/runahead-server.ts';
import { SERVER_CRD_NAME } from '../../core/api/v1alpha1/server-names.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { eventually } from '../support/eventually.ts';
import { installCrds, repoPath } from '../support/operator.ts';

jest.setTimeout(30_000);

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: Record<string, unknown>;
}

const base: Manifest = {
  apiVersion: 'runahead.dev/v1alpha1',
  kind: 'RunaheadServer',
  metadata: { name: 'bad' },
  spec: { ranks: 2, model: { synthetic: { preset: 'tiny' } }, executionProvider: 'cpu' },
};

function edited(edit: (m: Manifest) => void): Manifest {
  const m = structuredClone(base);
  edit(m);
  return m;
}

const CORPUS: { name: string; manifest: Manifest; server: RegExp; zod: RegExp }[] = [
  {
    name: 'explicit partition',
    manifest: edited((m) => (m.spec['partition'] = { strategy: 'explicit', boundaries: [0, 1, 2] })),
    server: /spec\.partition\.strategy: .*a server splits each prompt by its own length/,
    zod: /partition\.strategy: .*use even or balanced/,
  },
  {
    name: 'auto routing without singleBelowTokens',
    manifest: edited((m) => (m.spec['routing'] = { policy: 'auto' })),
    server: /spec\.routing\.singleBelowTokens: .*required with policy auto/,
    zod: /routing\.singleBelowTokens: .*required with policy auto/,
  },
  {
    name: 'maxUnavailable 0',
    manifest: edited((m) => (m.spec['maxUnavailable'] = 0)),
    server: /spec\.maxUnavailable: Invalid value: 0: .*greater than or equal to 1/,
    zod: /maxUnavailable: /,
  },
  {
    name: 'two model sources',
    manifest: edited(
      (m) =>
        (m.spec['model'] = {
          synthetic: { preset: 'tiny' },
          checkpoint: { volume: { hostPath: { path: '/data' } } },
        }),
    ),
    server: /spec\.model: .*set exactly one of synthetic, checkpoint/,
    zod: /model: set exactly one of synthetic, checkpoint/,
  },
  {
    name: 'a name too long for its pods',
    manifest: edited((m) => (m.metadata.name = 'a'.repeat(51))),
    server: /metadata\.name must be a DNS-1035 label of at most 50 characters/,
    zod: /metadata\.name: must be at most 50 characters/,
  },
];

describe('RunaheadServer CRD on a real API server', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    cp = await ControlPlane.start();
    await installCrds(cp);
    await eventually(
      `CRD ${SERVER_CRD_NAME} Established`,
      async () =>
        (await cp.kubectl([
          'get',
          `crd/${SERVER_CRD_NAME}`,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Established")].status}',
        ])) === 'True',
      60_000,
      100,
    );
  }, 120_000);

  afterAll(async () => {
    await cp.stop();
  });

  test('the example is accepted and stored with the defaults the operator fills in', async () => {
    const text = readFileSync(repoPath('examples/server/synthetic-2ranks-server.yaml'), 'utf8');
    const out = await cp.kubectl(['apply', '--server-side', '-f', '-', '-n', 'default'], text);
    expect(out).toMatch(/runaheadserver\.runahead\.dev\/synthetic-server serverside-applied/);
    const stored = JSON.parse(
      await cp.kubectl(['get', 'runaheadserver', 'synthetic-server', '-n', 'default', '-o', 'json']),
    ) as { spec: unknown };
    const parsed = parseRunaheadServer(parse(text));
    if (!parsed.ok) throw new Error(parsed.message);
    expect(stored.spec).toEqual(JSON.parse(JSON.stringify(parsed.server.spec)));
    expect(parsed.server.spec).toMatchObject({ replicas: 2, service: { port: 8000, type: 'ClusterIP' } });
  });

  test('a spec change is allowed (the operator rolls the groups)', async () => {
    const name = 'rolls';
    await cp.kubectl(
      ['apply', '--server-side', '-f', '-', '-n', 'default'],
      stringify({ ...base, metadata: { name } }),
    );
    await expect(
      cp.kubectl([
        'patch',
        'runaheadserver',
        name,
        '-n',
        'default',
        '--type=merge',
        '-p',
        JSON.stringify({ spec: { ranks: 4, dtype: 'float32' } }),
      ]),
    ).resolves.toMatch(/patched/);
  });

  test('a gang scheduler pod group is accepted by the API server and by the operator', async () => {
    const manifest = edited((m) => {
      m.metadata.name = 'ganged';
      m.spec['placement'] = { podGroup: { scheduler: 'Volcano' } };
    });
    await expect(
      cp.kubectl(['apply', '--server-side', '-f', '-', '-n', 'default'], stringify(manifest)),
    ).resolves.toMatch(/serverside-applied/);
    expect(parseRunaheadServer(manifest).ok).toBe(true);
  });

  test.each(CORPUS)('$name is refused by the API server and by the operator', async (c) => {
    const err = await cp
      .kubectl(['apply', '--server-side', '-f', '-', '-n', 'default'], stringify(c.manifest))
      .then(
        (out) => new Error(`accepted: ${out}`),
        (e: unknown) => e as Error,
      );
    expect(err.message).toMatch(c.server);
    const parsed = parseRunaheadServer(c.manifest);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.message).toMatch(c.zod);
  });
});
