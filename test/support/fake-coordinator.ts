// Plays rank 0 against a real rank process: it serves the coordinator's side of the Rank service
// (recording Abort, Report and FirstToken calls) and lets a test send Start and hand-made KV frames.
import {
  Metadata,
  Server,
  ServerCredentials,
  credentials,
  status,
  type ClientWritableStream,
  type ServiceError,
} from '@grpc/grpc-js';
import type {
  AbortRequest,
  FirstTokenReport,
  Identity,
  KvMessage,
  KvStreamSummary,
  RankReport,
  StartReply,
  StartRequest,
} from '../../core/gen/runahead/v1/rank.ts';
import { RankClient } from '../../core/gen/runahead/v1/rank.ts';
import { RankServiceDefinition } from '../../worker/chain/transport.ts';
import { PROTOCOL_VERSION, grpcOptions, DEFAULT_LIMITS } from '../../core/protocol.ts';
import { freePorts } from '../../cli/launcher/ports.ts';

export class FakeCoordinator {
  readonly aborts: AbortRequest[] = [];
  readonly reports: RankReport[] = [];
  readonly firstTokens: FirstTokenReport[] = [];
  private readonly server = new Server();
  readonly address: string;
  private waiters: (() => void)[] = [];

  private constructor(address: string) {
    this.address = address;
    const ack = (cb: (e: null, r: object) => void) => {
      cb(null, {});
      for (const w of this.waiters.splice(0)) w();
    };
    const unimplemented = (_: unknown, cb: (e: Partial<ServiceError>) => void) => {
      cb({ code: status.UNIMPLEMENTED, details: 'not in this fake' });
    };
    this.server.addService(RankServiceDefinition, {
      run: unimplemented,
      start: unimplemented,
      streamKv: unimplemented,
      firstToken: (call: { request: FirstTokenReport }, cb: (e: null, r: object) => void) => {
        this.firstTokens.push(call.request);
        ack(cb);
      },
      report: (call: { request: RankReport }, cb: (e: null, r: object) => void) => {
        this.reports.push(call.request);
        ack(cb);
      },
      abort: (call: { request: AbortRequest }, cb: (e: null, r: object) => void) => {
        this.aborts.push(call.request);
        ack(cb);
      },
      shutdown: (_: unknown, cb: (e: null, r: object) => void) => {
        ack(cb);
      },
    });
  }

  static async start(): Promise<FakeCoordinator> {
    const [port] = await freePorts(1);
    const fake = new FakeCoordinator(`127.0.0.1:${port}`);
    await new Promise<void>((resolve, reject) => {
      fake.server.bindAsync(fake.address, ServerCredentials.createInsecure(), (err) => {
        if (err) reject(err);
        else resolve();
      });
    });
    return fake;
  }

  /** Resolve when `predicate` holds, or reject after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.tryShutdown(() => {
        resolve();
      });
    });
  }
}

export function identity(runId: string, fingerprint: string, overrides: Partial<Identity> = {}): Identity {
  return {
    protocolVersion: PROTOCOL_VERSION,
    modelFingerprint: fingerprint,
    runId,
    rank: 0,
    worldSize: 2,
    ...overrides,
  };
}

export function rankClient(address: string, options: object = grpcOptions(DEFAULT_LIMITS)): RankClient {
  return new RankClient(address, credentials.createInsecure(), options);
}

export function start(client: RankClient, request: StartRequest): Promise<StartReply> {
  return new Promise((resolve, reject) => {
    client.start(request, new Metadata(), { deadline: Date.now() + 5000 }, (err, reply) => {
      if (err) reject(err);
      else resolve(reply);
    });
  });
}

/** Open a KV stream to a rank; `done` settles with the rank's answer when the stream ends. */
export function openStream(client: RankClient): {
  call: ClientWritableStream<KvMessage>;
  done: Promise<KvStreamSummary>;
} {
  let call!: ClientWritableStream<KvMessage>;
  const done = new Promise<KvStreamSummary>((resolve, reject) => {
    call = client.streamKv((err, summary) => {
      if (err) reject(err);
      else resolve(summary);
    });
  });
  done.catch(() => undefined);
  return { call, done };
}
