// K/V on a socket of its own, beside the rank's gRPC server (`--kv-transport socket`, the default).
//
// Why not StreamKv: grpc-js moves a byte of K/V at 0.40–0.48 GB/s on the device host, a fifth of
// what a socket between the same two processes carries (1.9–2.3 GB/s; bench/results/link-h200-*.md).
// Its cost is per byte on each rank's one event loop: a copy behind every message's 5-byte prefix
// and a reassembly copy on receipt, each into a fresh buffer (a full garbage collection every
// ~50 ms on both ends), and HTTP/2 DATA frames of 16 KiB whatever the peer allows. A K/V socket
// writes a frame's payloads as they are (views of the sender's K/V) and the receiver assembles each
// message in one buffer it keeps.
//
// What stays the same: the messages (the hello, then KvFrames with their CRC-32, checked by the same
// KvReceiver into the same KvSink), the limits (message size, the sender's bounded queue and
// backpressure deadline), and the credentials — with TLS the socket is mutual TLS with the rank's
// certificate and CA, as its gRPC server. The port is the rank's `--kv-port` (0: any free one),
// which senders ask for over gRPC (KvEndpoint).
import { once } from 'node:events';
import { createServer as createTcpServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { status } from '@grpc/grpc-js';
import {
  KvMessage,
  KvSocketEnd,
  type KvFrame,
  type KvHello,
  type KvStreamSummary,
} from '../../core/gen/runahead/v1/rank.ts';
import { grpcError } from './grpc-error.ts';
import { LinkError, type KvFrameWriter } from './kv-frame-writer.ts';
import { KvReceiver, type KvReceiverContext, type KvSink } from './kv-receiver.ts';
import {
  END_OF_STREAM,
  MessageReader,
  WireError,
  frameWireParts,
  helloBytes,
  socketEndBytes,
} from './kv-socket-wire.ts';
import { tlsMaterial, type TlsFiles } from './tls-files.ts';

/** Bytes a sender lets wait in its socket's buffer before it waits for 'drain'. */
const SEND_BUFFER_BYTES = 8 << 20;
/** Connections a rank's K/V socket serves at once (a rank has at most world size − 1 senders). */
const MAX_CONNECTIONS = 256;
/** How long a connection may stay open without a hello (a slot of MAX_CONNECTIONS held by nobody). */
const HELLO_TIMEOUT_MS = 30_000;
/** How long a closing rank lets open K/V streams finish (as RankNode.stop gives gRPC calls). */
const CLOSE_GRACE_MS = 2000;
/** How long a refused sender may keep writing before its socket is dropped. */
const HANG_UP_GRACE_MS = 5000;

/** The host part of a rank's gRPC address (host:port, [v6]:port). */
export function hostOf(address: string): string {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(address);
  if (bracketed) return bracketed[1]!;
  const colon = address.lastIndexOf(':');
  return colon > 0 ? address.slice(0, colon) : address;
}

/** The receiving end: a server whose connections each carry one sender's stream into the context's runs. */
export class KvSocketServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  readonly port: number;

  private constructor(server: Server, port: number) {
    this.server = server;
    this.port = port;
  }

  static async listen<S extends KvSink>(
    host: string,
    port: number,
    tls: TlsFiles | null,
    maxMessageBytes: number,
    context: () => KvReceiverContext<S>,
  ): Promise<KvSocketServer> {
    let self: KvSocketServer | null = null;
    const serve = (socket: Socket) => {
      self?.sockets.add(socket);
      socket.once('close', () => self?.sockets.delete(socket));
      serveKvSocket(socket, context(), maxMessageBytes);
    };
    const server = tls
      ? createTlsServer({ ...tlsMaterial(tls), requestCert: true, rejectUnauthorized: true }, serve)
      : createTcpServer({ noDelay: true }, serve);
    server.maxConnections = MAX_CONNECTIONS;
    // A failed handshake (no client certificate, another CA) is that client's problem, not the rank's.
    server.on('tlsClientError', () => undefined);
    server.listen(port, host);
    await Promise.race([
      once(server, 'listening'),
      once(server, 'error').then(([err]) => {
        throw new Error(`cannot listen for K/V on ${host}:${port}: ${(err as Error).message}`);
      }),
    ]);
    const address = server.address();
    self = new KvSocketServer(server, typeof address === 'object' && address ? address.port : port);
    return self;
  }

  /** Stop listening and drop every connection (their runs hear that their streams closed). */
  /**
   * Stop taking connections, give open streams up to `graceMs` to end (a sender's last frames and
   * end of stream may still be on their way when this rank's own run is over: its answer is what
   * the sender's run waits for — as gRPC's tryShutdown lets StreamKv calls finish), then drop the
   * rest (their runs hear that their streams closed).
   */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
    const deadline = Date.now() + graceMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const s of this.sockets) s.destroy();
    await closed;
  }
}

/** One sender's stream: messages handled one at a time, the socket paused meanwhile (backpressure). */
export function serveKvSocket<S extends KvSink>(
  socket: Socket,
  ctx: KvReceiverContext<S>,
  maxMessageBytes: number,
): KvReceiver<S> {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 10_000);
  const reader = new MessageReader(maxMessageBytes);
  let over = false;
  let greeted = false;
  socket.setTimeout(HELLO_TIMEOUT_MS, () => {
    if (!greeted) socket.destroy();
  });
  const receiver = new KvReceiver(ctx, {
    answer: (err, summary) => {
      const end: KvSocketEnd = err
        ? { summary, code: err.code, error: err.details || err.message }
        : { summary, code: status.OK, error: '' };
      if (!socket.destroyed) socket.end(socketEndBytes(end));
    },
    hangUp: () => {
      over = true;
      // Let the answer reach the sender; what it still writes is read and dropped.
      setTimeout(() => socket.destroy(), HANG_UP_GRACE_MS).unref();
    },
  });
  let chain: Promise<void> = Promise.resolve();
  const afterMessages = (fn: () => void) => void chain.then(fn);
  const closeWith = (cause: string) => {
    over = true;
    receiver.closed(cause, grpcError(status.DATA_LOSS, cause));
  };
  const refuseMalformed = (err: unknown) => {
    const why =
      err instanceof WireError ? err.message : `undecodable K/V message (${(err as Error).message})`;
    closeWith(`a malformed message on the K/V socket: ${why}`);
  };
  /** Handle one message; false once the stream is over. */
  const handle = async (bytes: Uint8Array): Promise<boolean> => {
    if (bytes.byteLength === 0) {
      over = true;
      receiver.closed(null, null);
      return false;
    }
    // The first message arrived: from here the run's own deadlines apply. A hello may wait for its
    // run much longer than the hello timeout (runFor: a Start that comes once every rank has loaded
    // its model) while the sender has nothing to send yet; dropping it then failed whole groups.
    if (!greeted) {
      greeted = true;
      socket.setTimeout(0);
    }
    // K and V are views of `bytes`, which the reader reuses: the sink copies what it keeps.
    await receiver.receive(KvMessage.decode(bytes));
    const phase = receiver.state.phase;
    if (phase === 'answered' || phase === 'closed') over = true;
    return !over;
  };
  // Most chunks (64 KiB reads of 1 MiB frames) complete no message: they are only assembled, at
  // once. A chunk that completes one pauses the socket until the run has taken it (backpressure);
  // pausing and resuming for every chunk cost two epoll_ctl calls and a promise chain per read.
  socket.on('data', (chunk: Buffer) => {
    if (over) return;
    const messages = reader.push(chunk);
    let next: IteratorResult<Uint8Array, void>;
    try {
      next = messages.next();
    } catch (err) {
      refuseMalformed(err);
      return;
    }
    if (next.done) return;
    socket.pause();
    const first = next;
    chain = chain
      .then(async () => {
        try {
          for (let r: IteratorResult<Uint8Array, void> = first; !r.done; r = messages.next())
            if (!(await handle(r.value))) return;
        } catch (err) {
          refuseMalformed(err);
        }
      })
      .finally(() => {
        if (!over) socket.resume();
      });
  });
  const ended = (cause: string) => {
    afterMessages(() => {
      if (!over) closeWith(reader.atBoundary ? cause : `${cause}, inside a message`);
    });
  };
  socket.on('end', () => {
    ended('the sender closed its K/V socket before the end of the stream');
  });
  socket.on('error', (err) => {
    ended(`the K/V socket failed: ${err.message}`);
  });
  socket.on('close', () => {
    ended('the K/V socket closed before the end of the stream');
  });
  return receiver;
}

export interface SocketWriterOptions {
  /** Where the receiver takes K/V (asks it over gRPC: KvEndpoint). */
  readonly endpoint: () => Promise<{ host: string; port: number }>;
  readonly tls: TlsFiles | null;
  readonly hello: KvHello;
  /** Longest the connection may take. */
  readonly timeoutMs: number;
}

async function connect(host: string, port: number, tls: TlsFiles | null, timeoutMs: number): Promise<Socket> {
  const socket: Socket | TLSSocket = tls
    ? tlsConnect({ host, port, servername: host, ...tlsMaterial(tls) })
    : tcpConnect({ host, port, noDelay: true });
  const timer = setTimeout(
    () => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    await once(socket, tls ? 'secureConnect' : 'connect');
  } finally {
    clearTimeout(timer);
  }
  socket.setNoDelay(true);
  socket.setKeepAlive(true, 10_000);
  return socket;
}

/** The sending end: a K/V socket to the receiver, opened in the background; frames wait until it is. */
export function socketFrameWriter(o: SocketWriterOptions): KvFrameWriter {
  const toRank = o.hello.toRank;
  let socket: Socket | null = null;
  // An object: the connection reads it after awaits, which a plain `let` narrowing would hide.
  const state = { cancelled: false };
  let settle: { resolve(s: KvStreamSummary): void; reject(e: Error): void } | undefined;
  const summary = new Promise<KvStreamSummary>((resolve, reject) => (settle = { resolve, reject }));
  summary.catch(() => undefined);
  // Worded as the gRPC link words it (grpc-frame-writer.ts): "KV stream to rank N failed: …".
  const fail = (why: string) => settle?.reject(new LinkError(`KV stream to rank ${toRank} failed: ${why}`));

  const ready = (async () => {
    const { host, port } = await o.endpoint();
    if (port === 0)
      throw new LinkError(`rank ${toRank} takes no K/V socket (its KvEndpoint answered port 0)`);
    const s = await connect(host, port, o.tls, o.timeoutMs).catch((err: unknown) => {
      throw new LinkError(
        `cannot open a K/V socket to rank ${toRank} at ${host}:${port}: ${(err as Error).message}`,
      );
    });
    if (state.cancelled) {
      s.destroy();
      throw new LinkError(`KV stream to rank ${toRank} failed: cancelled`);
    }
    socket = s;
    const reader = new MessageReader(64 << 10);
    let answered = false;
    s.on('data', (chunk: Buffer) => {
      try {
        for (const bytes of reader.push(chunk)) {
          if (answered) continue;
          answered = true;
          const end = KvSocketEnd.decode(bytes);
          if (end.code === (status.OK as number)) settle?.resolve(end.summary ?? { frames: 0, bytes: 0 });
          else fail(`rank ${toRank} ended the stream: ${end.error}`);
          // The stream is over either way: close this end too (the receiver closed its own).
          s.end();
        }
      } catch (err) {
        fail(`a malformed answer (${(err as Error).message})`);
        s.destroy();
      }
    });
    s.on('error', (err) => fail(err.message));
    s.on('close', () => fail('closed before the receiver answered'));
    s.write(helloBytes({ body: { $case: 'hello', value: o.hello } }));
  })();
  // The reason the socket never opened is the link's error (not the cancel that follows it).
  ready.catch((err: unknown) => settle?.reject(err as Error));

  return {
    ready,
    summary,
    write(frame: KvFrame, released, sent) {
      const s = socket!;
      const parts = frameWireParts(frame);
      s.cork();
      for (const part of parts.slice(0, -1)) s.write(part);
      s.write(parts.at(-1)!, (err) => {
        if (err) return;
        // The kernel has every byte: the frame's arrays are free.
        released();
        sent();
      });
      s.uncork();
      return s.writableLength < SEND_BUFFER_BYTES;
    },
    onceDrain(cb) {
      if (!socket || socket.writableLength === 0) setImmediate(cb);
      else socket.once('drain', cb);
    },
    end() {
      // A link may end before its socket is open (nothing to send): the end follows the hello.
      void ready.then(
        () => socket?.write(END_OF_STREAM),
        () => undefined,
      );
    },
    cancel() {
      state.cancelled = true;
      socket?.destroy();
      fail('cancelled');
    },
  };
}
