// Test certificates made with the openssl CLI: a CA, a certificate for the ranks (serverAuth and
// clientAuth, for localhost and 127.0.0.1), and a rogue pair signed by another CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TlsFiles } from '../../worker/chain/transport.ts';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function ca(dir: string, name: string): void {
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}-ca.key`,
      '-out',
      `${name}-ca.pem`,
      '-days',
      '1',
      '-subj',
      `/CN=${name} test CA`,
    ],
    dir,
  );
}

function leaf(dir: string, caName: string, name: string): void {
  writeFileSync(
    join(dir, `${name}.ext`),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
  );
  openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    ],
    dir,
  );
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${caName}-ca.pem`,
      '-CAkey',
      `${caName}-ca.key`,
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

export interface TestCerts {
  readonly ranks: TlsFiles;
  /** A certificate from another CA: peers must refuse it. */
  readonly rogue: TlsFiles;
}

export function makeTestCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'runahead-certs-'));
  ca(dir, 'good');
  ca(dir, 'rogue');
  leaf(dir, 'good', 'rank');
  leaf(dir, 'rogue', 'intruder');
  return {
    ranks: { cert: join(dir, 'rank.pem'), key: join(dir, 'rank.key'), ca: join(dir, 'good-ca.pem') },
    rogue: { cert: join(dir, 'intruder.pem'), key: join(dir, 'intruder.key'), ca: join(dir, 'good-ca.pem') },
  };
}
