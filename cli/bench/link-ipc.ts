// Control messages between `runahead bench link` and its two rank processes, over the IPC channel
// of child_process.fork: which link to open, when a trial starts, what it measured. Only control
// crosses here; the K/V bytes go over the sockets under test.
import type { ChildProcess } from 'node:child_process';
import type { TlsFiles } from '../../worker/chain/transport.ts';
import type { KvShape, LinkPath, LinkSettings } from './link-plan.ts';

export type CrossingPath = Extract<LinkPath, 'socket' | 'socket-tls' | 'grpc' | 'grpc-tls' | 'tcp'>;
export type LocalPath = Extract<LinkPath, 'memcpy' | 'memcpy-warm' | 'crc32'>;

export type PeerRequest =
  /** Both: the K/V shape; the sender makes its K/V. */
  | { readonly op: 'init'; readonly shape: KvShape }
  /** Receiver: serve `path` with these settings (closing what it served before); answers the port. */
  | {
      readonly op: 'listen';
      readonly path: CrossingPath;
      readonly settings: LinkSettings;
      readonly tls: TlsFiles | null;
    }
  /** Receiver: the next transfer is `trial`; make room for it and start its CPU clock. */
  | { readonly op: 'arm'; readonly trial: string }
  /** Receiver: wait for `trial` to end and answer what arrived. */
  | { readonly op: 'collect'; readonly trial: string; readonly timeoutMs: number }
  /** Sender: connect to the receiver's `path` (closing the previous link). */
  | {
      readonly op: 'connect';
      readonly path: CrossingPath;
      readonly port: number;
      readonly settings: LinkSettings;
      readonly tls: TlsFiles | null;
      readonly timeoutMs: number;
    }
  /** Sender: one transfer of every layer's K and V over the connected link. */
  | { readonly op: 'send'; readonly trial: string }
  /** Sender: a path inside this process (memcpy, memcpy-warm, crc32) over frames of `frameBytes`. */
  | { readonly op: 'local'; readonly path: LocalPath; readonly frameBytes: number }
  /** Sender: the CRC-32 of its K/V, layer by layer, K then V. */
  | { readonly op: 'checksum' };

/** What the sending side (or a single-process path) measured. */
export interface SendResult {
  readonly elapsedMs: number;
  readonly cpuMs: number;
  readonly bytes: number;
  readonly frames: number;
}

/** What the receiving side measured; `checksum` over what it holds, as SendResult's data. */
export interface ReceiveResult {
  readonly cpuMs: number;
  readonly bytes: number;
  readonly frames: number;
  readonly checksum: number;
}

type Reply = { readonly id: number; readonly ok: true; readonly result: unknown } | ErrorReply;
interface ErrorReply {
  readonly id: number;
  readonly ok: false;
  readonly error: string;
}

/** The parent's end: numbered requests, answered in any order. */
export class PeerChannel {
  private readonly child: ChildProcess;
  private readonly name: string;
  private next = 0;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  private exited: Error | null = null;

  constructor(child: ChildProcess, name: string) {
    this.child = child;
    this.name = name;
    child.on('message', (m: Reply) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new Error(`${this.name}: ${m.error}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = new Error(`the ${this.name} process exited (${signal ?? `code ${code ?? '?'}`})`);
      for (const w of this.waiting.values()) w.reject(this.exited);
      this.waiting.clear();
    });
  }

  call<T>(request: PeerRequest): Promise<T> {
    if (this.exited) return Promise.reject(this.exited);
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, {
        resolve: (v) => {
          resolve(v as T);
        },
        reject,
      });
      this.child.send({ id, request });
    });
  }
}

/** The child's end: answers each request with what `handle` returns or throws. */
export function servePeer(handle: (request: PeerRequest) => Promise<unknown>): void {
  process.on('message', (m: { id: number; request: PeerRequest }) => {
    handle(m.request).then(
      (result) => process.send?.({ id: m.id, ok: true, result }),
      (err: unknown) =>
        process.send?.({ id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  // The parent went away (finished, or killed): nothing is left to measure.
  process.on('disconnect', () => process.exit(0));
}
