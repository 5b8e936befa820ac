// A RunaheadServer end to end, as a user runs it: `kubectl apply` of a server on a real API server
// with the operator as a process and the test node agent running its pods (rank pods as `runahead
// worker --serve`, the front as `runahead serve --ranks-at`); completions through the server's
// Service (the node's kube-proxy role: test/support/service-proxy.ts); a rank pod deleted → the
// whole group is started again and serves again through the same Service; a rolling change.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { stringify } from 'yaml';
import type { RunaheadServerStatus } from '../../core/api/v1alpha1/runahead-server.ts';
import { E2eCluster } from '../support/e2e.ts';
import { eventually } from '../support/eventually.ts';
import { call } from '../support/serve.ts';

jest.setTimeout(120_000);

const NAME = 'tiny-server';
const MANIFEST = {
  apiVersion: 'runahead.dev/v1alpha1',
  kind: 'RunaheadServer',
  metadata: { name: NAME, namespace: 'default' },
  spec: {
    ranks: 2,
    replicas: 1,
    model: { synthetic: { preset: 'tiny' } },
    dtype: 'float32',
    executionProvider: 'cpu',
    threads: 1,
    resources: { requests: { cpu: '100m', memory: '256Mi' } },
  },
};

interface CompletionReply {
  runahead?: { ranks: number; token_ids: number[] };
  error?: { code: string | null; message: string };
}

describe('RunaheadServer on the test cluster', () => {
  let cluster: E2eCluster;

  beforeAll(async () => {
    cluster = await E2eCluster.start();
  }, 120_000);
  afterAll(async () => {
    await cluster.stop();
  });

  const status = async () =>
    (
      JSON.parse(await cluster.kubectl(['get', 'runaheadserver', NAME, '-o', 'json'])) as {
        status?: RunaheadServerStatus;
      }
    ).status;
  const podJson = async (name: string) =>
    JSON.parse(await cluster.kubectl(['get', 'pod', name, '-o', 'json'])) as {
      metadata: { uid: string };
      status?: { podIP?: string };
    };
  /** POST a completion to the server's Service, at the address its port has on the node. */
  const complete = async () => {
    const service = await cluster.agent.serviceAddress('default', NAME, 8000);
    const r = await call(service.port, '/v1/completions', {
      host: service.host,
      body: { model: NAME, prompt: [1, 17, 42, 99, 7, 8, 9, 10], max_tokens: 3 },
    }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message} (${service.lastError})`, { cause: err });
    });
    return { status: r.status, body: JSON.parse(r.body) as CompletionReply };
  };
  const describeAll = async () =>
    [
      await cluster.kubectl(['get', 'runaheadserver', NAME, '-o', 'yaml']).catch((e: unknown) => String(e)),
      await cluster.kubectl(['get', 'pods', '-o', 'wide']).catch((e: unknown) => String(e)),
    ].join('\n');

  it('serves completions through its Service once the group is ready', async () => {
    await cluster.apply(stringify(MANIFEST));
    await eventually(
      'the server Available with 1 ready group',
      async () => (await status())?.readyReplicas === 1,
      60_000,
      250,
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\n${await describeAll()}`, { cause: err });
    });
    const s = (await status())!;
    expect(s.endpoint).toBe(`http://${NAME}.default.svc.cluster.local:8000/v1/completions`);
    expect(s.conditions?.find((c) => c.type === 'Available')?.status).toBe('True');
    expect(await cluster.kubectl(['get', 'service', NAME, '-o', 'jsonpath={.spec.ports[0].port}'])).toBe(
      '8000',
    );
    const r = await complete();
    expect(r.status).toBe(200);
    expect(r.body.runahead?.ranks).toBe(2);
    expect(r.body.runahead?.token_ids).toHaveLength(3);
    // The operator reads the fronts' TTFT histograms into the status (every 15 s while serving).
    const ttft = await eventually(
      'TTFT percentiles in the status',
      async () => (await status())?.ttftMs,
      30_000,
      500,
    );
    expect(ttft.requests).toBeGreaterThanOrEqual(1);
    expect(ttft.p50).toBeGreaterThan(0);
    expect(ttft.p99).toBeGreaterThanOrEqual(ttft.p50);
  });

  it('a deleted rank pod restarts its whole group, which serves again', async () => {
    const before = await complete();
    const oldFront = (await podJson(`${NAME}-g0-front`)).metadata.uid;
    await cluster.kubectl(['delete', 'pod', `${NAME}-g0-1`, '--wait=false']);
    await eventually(
      'the group restarted (new front pod) and ready again',
      async () => {
        const s = await status();
        const front = await podJson(`${NAME}-g0-front`).catch(() => null);
        return s?.groups?.[0]?.restarts === 1 && s.readyReplicas === 1 && front?.metadata.uid !== oldFront;
      },
      60_000,
      250,
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\n${await describeAll()}`, { cause: err });
    });
    const after = await eventually(
      'a completion after the restart',
      async () => {
        const r = await complete();
        return r.status === 200 ? r : null;
      },
      20_000,
      250,
    );
    expect(after.body.runahead?.token_ids).toEqual(before.body.runahead?.token_ids);
    expect(
      await cluster.kubectl(['get', 'events', '--field-selector', `involvedObject.name=${NAME}`]),
    ).toMatch(/RankPodDeleted/);
  });

  it('a spec change rolls the group to the new revision, which serves', async () => {
    const before = (await status())!.revision;
    await cluster.kubectl([
      'patch',
      'runaheadserver',
      NAME,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { routing: { maxQueue: 4 } } }),
    ]);
    await eventually(
      'the group ready at the new revision',
      async () => {
        const s = await status();
        return s?.revision !== before && s?.updatedReplicas === 1 && s.readyReplicas === 1;
      },
      60_000,
      250,
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message}\n${await describeAll()}`, { cause: err });
    });
    const front = JSON.parse(await cluster.kubectl(['get', 'pod', `${NAME}-g0-front`, '-o', 'json'])) as {
      metadata: { labels: Record<string, string> };
      spec: { containers: { args: string[] }[] };
    };
    expect(front.metadata.labels['runahead.dev/server-revision']).toBe((await status())!.revision);
    expect(front.spec.containers[0]!.args.join(' ')).toContain('--max-queue 4');
    const r = await eventually(
      'a completion after the roll',
      async () => {
        const c = await complete();
        return c.status === 200 ? c : null;
      },
      20_000,
      250,
    );
    expect(r.body.runahead?.ranks).toBe(2);
  });
});
