// The chain's TLS material: one certificate per rank, signed by the group's CA. Read once per use,
// with an error that names the file.
import { readFileSync } from 'node:fs';

export interface TlsFiles {
  /** This rank's certificate chain (PEM); it serves and connects with it. */
  readonly cert: string;
  readonly key: string;
  /** The CA that signed every rank's certificate: peers without one are refused. */
  readonly ca: string;
}

export function readTlsFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read the TLS ${what} ${path}: ${(err as Error).message}`);
  }
}

/** The PEMs of `tls`, as node:tls takes them. */
export function tlsMaterial(tls: TlsFiles): { ca: Buffer; cert: Buffer; key: Buffer } {
  return {
    ca: readTlsFile(tls.ca, 'CA'),
    cert: readTlsFile(tls.cert, 'certificate'),
    key: readTlsFile(tls.key, 'key'),
  };
}
