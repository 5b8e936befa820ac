// Throwaway certificates for the grpc-tls path of `runahead bench link`: a CA and one certificate
// for both ranks (serverAuth and clientAuth, for 127.0.0.1 and localhost), P-256 as the test
// certificates, made with the openssl CLI in a temporary directory that is removed afterwards.
// The link is then set up as the chain sets it up from --tls-cert/--tls-key/--tls-ca: mutual TLS.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TlsFiles } from '../../worker/chain/transport.ts';

const run = promisify(execFile);

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    throw new Error(
      e.code === 'ENOENT'
        ? 'the grpc-tls path needs certificates: install the openssl CLI, or pass --tls-cert, --tls-key and --tls-ca (valid for 127.0.0.1)'
        : `openssl ${args[0] ?? ''} failed: ${e.stderr?.trim() ?? e.message}`,
    );
  }
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export interface TempCerts {
  readonly files: TlsFiles;
  remove(): Promise<void>;
}

export async function makeTempCerts(): Promise<TempCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'runahead-bench-link-'));
  try {
    await openssl(
      ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=bench CA'],
      dir,
    );
    await writeFile(
      join(dir, 'rank.ext'),
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
    );
    await openssl(['req', ...EC, '-keyout', 'rank.key', '-out', 'rank.csr', '-subj', '/CN=rank'], dir);
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        'rank.csr',
        '-CA',
        'ca.pem',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        'rank.pem',
        '-days',
        '1',
        '-extfile',
        'rank.ext',
      ],
      dir,
    );
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    files: { cert: join(dir, 'rank.pem'), key: join(dir, 'rank.key'), ca: join(dir, 'ca.pem') },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
