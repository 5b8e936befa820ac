// Rank-to-rank gRPC with mutual TLS: a group with certificates from one CA runs; a client without
// a certificate, or with one from another CA, is refused.
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Metadata, credentials } from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { Mode, RankClient } from '../../core/gen/runahead/v1/rank.ts';
import { RankGroup } from '../../cli/launcher/rank-group.ts';
import { makeTestCerts, type TestCerts } from '../support/certs.ts';
import { request } from '../support/chain.ts';
import { identity } from '../support/fake-coordinator.ts';

jest.setTimeout(60_000);

let certs: TestCerts;
let group: RankGroup;

beforeAll(async () => {
  certs = makeTestCerts();
  group = await RankGroup.start({
    ranks: 2,
    spec: { model: 'synthetic:tiny', seed: 0, dtype: 'float32', ep: 'cpu', threads: 1, deviceId: 0 },
    tls: certs.ranks,
    startupTimeoutMs: 30_000,
  });
});
afterAll(async () => {
  await group.close();
});

function tryStart(creds: ReturnType<typeof credentials.createInsecure>): Promise<string> {
  const client = new RankClient(group.processes[1]!.address, creds);
  return new Promise((resolve) => {
    client.start(
      {
        from: identity('x', 'synthetic-tiny-0-float32'),
        mode: Mode.MODE_RUNAHEAD,
        boundaries: [0, 1, 2],
        chunkTokenIds: [3],
        maxNewTokens: 0,
        releasedAtMs: 0,
        debugState: false,
      },
      new Metadata(),
      { deadline: Date.now() + 5000 },
      (err) => {
        client.close();
        resolve(err ? `${err.code}: ${err.details}` : 'accepted');
      },
    );
  });
}

describe('mutual TLS between ranks', () => {
  it('runs a prompt through ranks that present certificates from the shared CA', async () => {
    const result = await group.run(
      request([1, 5, 9, 13, 17, 21], Mode.MODE_RUNAHEAD, [], { debugState: false }),
    );
    expect(result.ttftMs).toBeGreaterThan(0);
    expect(result.ranks).toHaveLength(2);
  });

  it('refuses a client without TLS', async () => {
    expect(await tryStart(credentials.createInsecure())).toMatch(/^14: /); // UNAVAILABLE: no handshake
  });

  it('refuses a client whose certificate another CA signed', async () => {
    const rogue = credentials.createSsl(
      readFileSync(certs.rogue.ca),
      readFileSync(certs.rogue.key),
      readFileSync(certs.rogue.cert),
    );
    expect(await tryStart(rogue)).toMatch(/^14: /);
  });

  it('refuses a TLS client that presents no certificate', async () => {
    expect(await tryStart(credentials.createSsl(readFileSync(certs.ranks.ca)))).toMatch(/^14: /);
  });
});
