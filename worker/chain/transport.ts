// gRPC plumbing for the rank protocol: credentials (plain or mutual TLS), the rank's server with
// the HTTP/2 receive window K/V streams need, clients to peers with bounded message sizes, and the
// service definition with a copy-free serializer for K/V frames.
import type { Http2SecureServer, Http2Server, ServerHttp2Session } from 'node:http2';
import {
  ChannelCredentials,
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  makeGenericClientConstructor,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { RankClient, RankService, type KvMessage } from '../../core/gen/runahead/v1/rank.ts';
import { RECEIVE_WINDOW_BYTES, grpcOptions, type LinkLimits } from '../../core/protocol.ts';
import { logger } from '../../core/log.ts';
import { encodeKvMessage } from './kv-codec.ts';
import { socketFrameWriter, hostOf } from './kv-socket.ts';
import type { KvFrameWriter } from './kv-frame-writer.ts';
import { grpcFrameWriter } from './grpc-frame-writer.ts';
import { readTlsFile, type TlsFiles } from './tls-files.ts';
import type { KvHello } from '../../core/gen/runahead/v1/rank.ts';
import type { KvTransport } from '../../core/protocol.ts';

export type { TlsFiles };
const read = readTlsFile;

export function serverCredentials(tls: TlsFiles | null): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(
    read(tls.ca, 'CA'),
    [{ cert_chain: read(tls.cert, 'certificate'), private_key: read(tls.key, 'key') }],
    true,
  );
}

export function channelCredentials(tls: TlsFiles | null): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  return credentials.createSsl(read(tls.ca, 'CA'), read(tls.key, 'key'), read(tls.cert, 'certificate'));
}

/** The part of grpc-js's Server that rankServer reaches into (private in 1.14; see rankServer). */
interface ServerInternals {
  createHttp2Server?: (this: Server, credentials: ServerCredentials) => Http2Server | Http2SecureServer;
}

/**
 * The gRPC server of a rank: message limits from grpcOptions, and every HTTP/2 session granting
 * `receiveWindowBytes` of flow-control window to each stream and to the connection.
 *
 * K/V streams are client streams, so the window that paces them is the receiving server's. grpc-js
 * 1.14 reads 'grpc-node.flow_control_window' on the client only (the server side is
 * grpc/grpc-node#3058, open): its server keeps Node's 64 KiB window, and a sender waits on the
 * receiver's event loop for every 64 KiB. On the device host that held llama3-8b's K/V to 0.23 GB/s
 * (0.40 with a 16 MiB window, same code; bench/results/link-h200-sweep.md). Until grpc-js has the
 * option, each HTTP/2 server grpc-js makes gets a 'session' listener (Node's documented way:
 * session.settings, session.setLocalWindowSize).
 * Should grpc-js change its internals, the server still works with the default window, and says so.
 */
export function rankServer(limits: LinkLimits, receiveWindowBytes: number = RECEIVE_WINDOW_BYTES): Server {
  const server = new Server(grpcOptions(limits));
  const internals = server as unknown as ServerInternals;
  const create = internals.createHttp2Server;
  if (typeof create !== 'function') {
    logger('transport').warn(
      { receiveWindowBytes },
      'grpc-js has no createHttp2Server: K/V streams keep the 64 KiB HTTP/2 window and are slower',
    );
    return server;
  }
  internals.createHttp2Server = function (this: Server, creds: ServerCredentials) {
    const http2Server = create.call(this, creds);
    http2Server.on('session', (session: ServerHttp2Session) => {
      session.settings({ initialWindowSize: receiveWindowBytes });
      session.setLocalWindowSize(receiveWindowBytes);
    });
    return http2Server;
  };
  return server;
}

/**
 * StreamKv frames are encoded with their payloads copied once (kv-codec.ts); grpc-js copies the
 * result once more behind its 5-byte message prefix. A KvLink writes its frames already encoded,
 * into buffers it reuses: those pass through as they are. Decoding keeps K and V as views of the
 * message.
 */
export const RankServiceDefinition = {
  ...RankService,
  streamKv: {
    ...RankService.streamKv,
    requestSerialize: (value: KvMessage | Buffer): Buffer =>
      Buffer.isBuffer(value) ? value : encodeKvMessage(value),
  },
} as const satisfies ServiceDefinition;

const RankClientCtor = makeGenericClientConstructor(
  RankServiceDefinition,
  'runahead.v1.Rank',
) as unknown as typeof RankClient;

/** A client of the standard gRPC health service (grpc.health.v1.Health). */
export interface HealthCheckClient {
  check(
    request: { service: string },
    options: { deadline: number },
    cb: (err: Error | null, reply?: { status: string }) => void,
  ): void;
  close(): void;
}
const HealthClientCtor = makeGenericClientConstructor(
  healthService,
  'grpc.health.v1.Health',
) as unknown as new (address: string, creds: ChannelCredentials, options: object) => HealthCheckClient;

export function healthClient(
  address: string,
  creds: ChannelCredentials,
  options: object = {},
): HealthCheckClient {
  return new HealthClientCtor(address, creds, options);
}

/** Clients to every rank of the group, made on first use. */
export class Peers {
  private readonly addresses: readonly string[];
  private readonly creds: ChannelCredentials;
  private readonly options: object;
  private readonly clients = new Map<number, RankClient>();
  private readonly tls: TlsFiles | null;
  private readonly kvTransport: KvTransport;

  constructor(
    addresses: readonly string[],
    tls: TlsFiles | null,
    limits: LinkLimits,
    kvTransport: KvTransport = 'socket',
  ) {
    this.addresses = addresses;
    this.tls = tls;
    this.creds = channelCredentials(tls);
    this.options = grpcOptions(limits);
    this.kvTransport = kvTransport;
  }

  /**
   * How this rank sends K/V to `rank` (hello first): on the peer's K/V socket, whose port it asks
   * for over gRPC, or on a StreamKv call.
   */
  kvWriter(rank: number, hello: KvHello, timeoutMs: number): KvFrameWriter {
    const client = this.client(rank);
    if (this.kvTransport === 'grpc') return grpcFrameWriter(client, hello);
    const host = hostOf(this.address(rank));
    return socketFrameWriter({
      hello,
      tls: this.tls,
      timeoutMs,
      endpoint: () =>
        new Promise((resolve, reject) => {
          client.kvEndpoint(
            { from: hello.from },
            new Metadata(),
            { deadline: Date.now() + timeoutMs },
            (err, reply) => {
              if (err)
                reject(
                  new Error(`rank ${rank} did not say where it takes K/V: ${err.details || err.message}`),
                );
              else resolve({ host, port: reply.port });
            },
          );
        }),
    });
  }

  address(rank: number): string {
    const a = this.addresses[rank];
    if (a === undefined)
      throw new Error(`no address for rank ${rank} (${this.addresses.length} peers configured)`);
    return a;
  }

  client(rank: number): RankClient {
    let c = this.clients.get(rank);
    if (!c) {
      c = new RankClientCtor(this.address(rank), this.creds, this.options);
      this.clients.set(rank, c);
    }
    return c;
  }

  /** Wait until `rank` serves and this process's channel to it is connected. */
  async connect(rank: number, timeoutMs: number): Promise<void> {
    await this.waitServing(rank, timeoutMs);
    const client = this.client(rank);
    await new Promise<void>((resolve, reject) => {
      client.waitForReady(Date.now() + timeoutMs, (err) => {
        if (err) reject(new Error(`cannot connect to rank ${rank} at ${this.address(rank)}: ${err.message}`));
        else resolve();
      });
    });
  }

  /**
   * Resolve once `rank` answers its health check with SERVING; fail after `timeoutMs`, or as soon
   * as `signal` aborts (a launcher whose rank died stops waiting for the others).
   */
  async waitServing(rank: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const client = new HealthClientCtor(this.address(rank), this.creds, this.options);
    let last = 'no answer';
    try {
      while (Date.now() < deadline) {
        if (signal?.aborted) throw new Error(`stopped waiting for rank ${rank}: ${String(signal.reason)}`);
        const status = await new Promise<string>((resolve) => {
          client.check({ service: '' }, { deadline: Math.min(deadline, Date.now() + 2000) }, (err, reply) => {
            resolve(
              err
                ? `unreachable (${err.message.replace(/^\d+ [A-Z_]+: /, '')})`
                : (reply?.status ?? 'UNKNOWN'),
            );
          });
        });
        if (status === 'SERVING') return;
        last = status;
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      client.close();
    }
    throw new Error(
      `rank ${rank} at ${this.address(rank)} was not ready within ${timeoutMs} ms (last: ${last})`,
    );
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}
