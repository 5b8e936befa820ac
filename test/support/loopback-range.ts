// Pod IPs for the test node agent: a /16 of 127/8 (all of it is loopback on Linux), claimed with a
// lock file so that the agents of concurrent test runs on one machine never hand out the same
// address. A lock whose process is gone is taken over.
import { existsSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FIRST_OCTET = 100;
const OCTETS = 150;

export class LoopbackRange {
  /** `127.<n>`: every address handed out starts with it. */
  readonly prefix: string;
  /** The lock file (holds this process's id) to remove when the range is given back. */
  readonly lockPath: string;
  #next = 2;

  private constructor(octet: number, lockPath: string) {
    this.prefix = `127.${octet}`;
    this.lockPath = lockPath;
  }

  static claim(): LoopbackRange {
    const start = Math.floor(Math.random() * OCTETS);
    for (let i = 0; i < OCTETS; i++) {
      const octet = FIRST_OCTET + ((start + i) % OCTETS);
      const lockPath = join(tmpdir(), `runahead-node-agent-127.${octet}.lock`);
      if (tryLock(lockPath)) return new LoopbackRange(octet, lockPath);
      const owner = Number(readOrEmpty(lockPath));
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
        rmSync(lockPath, { force: true });
        if (tryLock(lockPath)) return new LoopbackRange(octet, lockPath);
      }
    }
    throw new Error('no free 127.x.0.0/16 range for the node agent');
  }

  /** A fresh address of the range (127.n.0.2, 127.n.0.3, …). */
  allocate(): string {
    const n = this.#next++;
    if (n >= 254 * 256) throw new Error('the node agent ran out of loopback addresses');
    return `${this.prefix}.${Math.floor(n / 254)}.${(n % 254) + 1}`;
  }

  /** Gives the range back (synchronous: also called from a process 'exit' handler). */
  release(): void {
    if (existsSync(this.lockPath) && readOrEmpty(this.lockPath) === String(process.pid)) {
      try {
        unlinkSync(this.lockPath);
      } catch {
        // gone
      }
    }
  }
}

function tryLock(path: string): boolean {
  try {
    writeFileSync(path, String(process.pid), { flag: 'wx' });
    return true;
  } catch {
    return false;
  }
}

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
