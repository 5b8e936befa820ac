// The receiving end of a K/V link: its states driven message by message, then the same receiver
// behind a real gRPC server on a real socket, fed by a real client. The run it feeds is a small fake
// of KvSink (what RankRun does with a frame is kv-inbox's and rank-run's business).
import { afterEach, describe, expect, it } from '@jest/globals';
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  DType,
  type Identity,
  type KvFrame,
  type KvHello,
  type KvMessage,
  type KvStreamSummary,
} from '../../core/gen/runahead/v1/rank.ts';
import { DEFAULT_LIMITS, PROTOCOL_VERSION, grpcOptions } from '../../core/protocol.ts';
import { FrameError, framesOf, type KvGeometry } from './frames.ts';
import { grpcError } from './grpc-error.ts';
import { KvReceiver, serveKvStream, type KvReceiverContext, type KvSink } from './kv-receiver.ts';
import { RunRegistry } from './run-registry.ts';
import { Peers, RankServiceDefinition } from './transport.ts';

const g: KvGeometry = { dtype: DType.DTYPE_FLOAT32, kvHeads: 2, headDim: 4, bytesPerElement: 4 };

class FakeRun implements KvSink {
  readonly frames: [number, KvFrame][] = [];
  readonly closed: [number, string | null][] = [];
  private readonly sources: readonly number[];
  /** What onFrame throws for the next frame, if anything. */
  failNext: Error | null = null;

  constructor(sources: readonly number[]) {
    this.sources = sources;
  }

  expectsFrom(rank: number): boolean {
    return this.sources.includes(rank);
  }

  onFrame(fromRank: number, frame: KvFrame): Promise<void> {
    const err = this.failNext;
    if (err) return Promise.reject(err);
    this.frames.push([fromRank, frame]);
    return Promise.resolve();
  }

  onStreamClosed(fromRank: number, cause: string | null): void {
    this.closed.push([fromRank, cause]);
  }
}

const identity = (runId: string, rank = 0, fingerprint = 'model-a'): Identity => ({
  protocolVersion: PROTOCOL_VERSION,
  modelFingerprint: fingerprint,
  runId,
  rank,
  worldSize: 3,
});

const hello = (runId: string, over: Partial<KvHello> = {}): KvMessage => ({
  body: {
    $case: 'hello',
    value: {
      from: identity(runId),
      toRank: 1,
      dtype: g.dtype,
      numLayers: 2,
      kvHeads: 2,
      headDim: 4,
      ...over,
    },
  },
});

const frame = (layer: number, tokens = 2): KvMessage => {
  const data = new Float32Array(tokens * 8).fill(layer + 1);
  return { body: { $case: 'frame', value: framesOf(layer, 0, data, data, g, 1 << 20)[0]! } };
};

/** Rank 1 of 3; runs are found in `registry`, failures recorded in `failed`. */
function context(registry: RunRegistry<FakeRun>, failed: [FakeRun, string][]): KvReceiverContext<FakeRun> {
  return {
    rank: 1,
    geometry: g,
    numLayers: 2,
    checkIdentity: (from) => {
      if (!from) throw grpcError(status.INVALID_ARGUMENT, 'the request carries no identity');
      if (from.modelFingerprint !== 'model-a')
        throw grpcError(
          status.FAILED_PRECONDITION,
          `model mismatch: rank ${from.rank} has ${from.modelFingerprint}`,
        );
      return from;
    },
    runFor: (runId) => registry.waitFor(runId, 200, () => new Error(`rank 1 has no run ${runId}`)),
    failRun: (run, err) => {
      failed.push([run, err.message]);
    },
  };
}

interface Answer {
  readonly err: ServiceError | null;
  readonly summary: KvStreamSummary;
}

function setup(sources: readonly number[] = [0]) {
  const registry = new RunRegistry<FakeRun>();
  const run = new FakeRun(sources);
  registry.add('run-1', run);
  const failed: [FakeRun, string][] = [];
  const answers: Answer[] = [];
  let hangUps = 0;
  const receiver = new KvReceiver(context(registry, failed), {
    answer: (err, summary) => answers.push({ err, summary }),
    hangUp: () => {
      hangUps++;
    },
  });
  return { registry, run, failed, answers, receiver, hangUps: () => hangUps };
}

describe('KvReceiver', () => {
  it('takes a hello, then frames into the run; a clean end answers with the summary', async () => {
    const { run, failed, answers, receiver, hangUps } = setup();
    expect(receiver.state.phase).toBe('hello');
    await receiver.receive(hello('run-1'));
    expect(receiver.state).toEqual({ phase: 'frames', run, from: 0 });
    await receiver.receive(frame(0));
    await receiver.receive(frame(1, 3));
    receiver.closed(null, null);
    receiver.closed('cancelled', grpcError(status.CANCELLED, 'cancelled')); // gRPC's second word on it
    expect(run.frames.map(([from, f]) => [from, f.layer, f.tokenEnd])).toEqual([
      [0, 0, 2],
      [0, 1, 3],
    ]);
    expect(run.closed).toEqual([[0, null]]);
    expect(answers).toEqual([{ err: null, summary: { frames: 2, bytes: 2 * (2 + 3) * 32 } }]);
    expect(receiver.state.phase).toBe('closed');
    expect(failed).toEqual([]);
    expect(hangUps()).toBe(0);
  });

  it('waits for a run whose Start has not come yet', async () => {
    const { registry, answers, receiver } = setup();
    const late = new FakeRun([0]);
    const opening = receiver.receive(hello('run-late'));
    await new Promise((r) => setTimeout(r, 20));
    expect(receiver.state.phase).toBe('hello');
    registry.add('run-late', late);
    await opening;
    await receiver.receive(frame(0));
    expect(late.frames).toHaveLength(1);
    expect(answers).toEqual([]);
  });

  it.each<[string, KvMessage, status, RegExp]>([
    ['a frame before any hello', frame(0), status.INVALID_ARGUMENT, /^a KV stream must start with a hello$/],
    ['an empty message', { body: undefined }, status.INVALID_ARGUMENT, /must start with a hello/],
    [
      'a hello for another rank',
      hello('run-1', { toRank: 2 }),
      status.FAILED_PRECONDITION,
      /rank 0 opened a KV stream for rank 2 with 2 layers × \[2, 4\] dtype 1; rank 1 has 2 × \[2, 4\] dtype 1/,
    ],
    [
      'a hello with another number of layers',
      hello('run-1', { numLayers: 3 }),
      status.FAILED_PRECONDITION,
      /with 3 layers .* rank 1 has 2 ×/,
    ],
    [
      'a hello with another geometry',
      hello('run-1', { kvHeads: 4, dtype: DType.DTYPE_FLOAT16 }),
      status.FAILED_PRECONDITION,
      /× \[4, 4\] dtype 2; rank 1 has 2 × \[2, 4\] dtype 1/,
    ],
    [
      'a hello from another model',
      hello('run-1', { from: identity('run-1', 0, 'model-b') }),
      status.FAILED_PRECONDITION,
      /^model mismatch: rank 0 has model-b$/,
    ],
    [
      'a hello without identity',
      hello('run-1', { from: undefined }),
      status.FAILED_PRECONDITION,
      /no identity/,
    ],
    [
      'a hello for a run that never starts',
      hello('run-unknown'),
      status.ABORTED,
      /rank 1 has no run run-unknown/,
    ],
  ])(
    'refuses %s before it belongs to a run: answers, hangs up, fails no run',
    async (_, message, code, details) => {
      const { run, failed, answers, receiver, hangUps } = setup();
      await receiver.receive(message);
      expect(answers).toHaveLength(1);
      expect(answers[0]!.err?.code).toBe(code);
      expect(answers[0]!.err?.details).toMatch(details);
      expect(hangUps()).toBe(1);
      expect(failed).toEqual([]);
      // Whatever comes after is dropped, and the end of the call is not a second answer.
      await receiver.receive(frame(0));
      receiver.closed(null, null);
      expect(run.frames).toEqual([]);
      expect(run.closed).toEqual([]);
      expect(answers).toHaveLength(1);
    },
  );

  it('refuses a sender that is not a source of this rank in the run, and fails the run', async () => {
    const { run, failed, answers, receiver } = setup([2]);
    await receiver.receive(hello('run-1'));
    expect(answers[0]!.err?.code).toBe(status.FAILED_PRECONDITION);
    expect(answers[0]!.err?.details).toBe('rank 0 is not a K/V source of rank 1 in this run');
    expect(failed).toEqual([[run, 'rank 0 is not a K/V source of rank 1 in this run']]);
  });

  it.each<[string, Error, status]>([
    [
      'an unusable frame (FrameError): DATA_LOSS',
      new FrameError('bad KV frame: checksum mismatch'),
      status.DATA_LOSS,
    ],
    ['any other failure to take it: ABORTED', new Error('link to rank 2 failed'), status.ABORTED],
  ])('ends the stream on %s, failing the run', async (_, error, code) => {
    const { run, failed, answers, receiver, hangUps } = setup();
    await receiver.receive(hello('run-1'));
    await receiver.receive(frame(0));
    run.failNext = error;
    await receiver.receive(frame(1));
    expect(answers).toEqual([
      { err: expect.objectContaining({ code, details: error.message }), summary: { frames: 1, bytes: 128 } },
    ]);
    expect(failed).toEqual([[run, error.message]]);
    expect(hangUps()).toBe(1);
    run.failNext = null;
    await receiver.receive(frame(1));
    expect(run.frames).toHaveLength(1);
    // The run still hears that the stream closed (it decides whether that truncated a layer).
    receiver.closed('cancelled', grpcError(status.CANCELLED, 'cancelled'));
    expect(run.closed).toEqual([[0, 'cancelled']]);
    expect(answers).toHaveLength(1);
  });

  it('refuses a second hello on an open stream', async () => {
    const { run, failed, answers, receiver } = setup();
    await receiver.receive(hello('run-1'));
    await receiver.receive(hello('run-1', { from: identity('run-1', 2) }));
    expect(answers[0]!.err?.code).toBe(status.INVALID_ARGUMENT);
    expect(answers[0]!.err?.details).toMatch(/rank 0 sent a second hello/);
    expect(failed.map(([r]) => r)).toEqual([run]);
  });

  it('passes the cause of a broken stream to the run', () => {
    const { run, answers, receiver } = setup();
    return receiver.receive(hello('run-1')).then(() => {
      receiver.closed('connection reset', grpcError(status.CANCELLED, '1 CANCELLED: connection reset'));
      expect(run.closed).toEqual([[0, 'connection reset']]);
      expect(answers[0]!.err?.code).toBe(status.CANCELLED);
    });
  });
});

describe('serveKvStream over gRPC', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  async function rank1(registry: RunRegistry<FakeRun>, failed: [FakeRun, string][]): Promise<Peers> {
    const server = new Server(grpcOptions(DEFAULT_LIMITS));
    server.addService(RankServiceDefinition, {
      streamKv: (
        call: Parameters<typeof serveKvStream>[0],
        callback: Parameters<typeof serveKvStream>[1],
      ) => {
        serveKvStream(call, callback, context(registry, failed));
      },
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => {
        if (err) reject(err);
        else resolve(p);
      });
    });
    const peers = new Peers(['unused', `127.0.0.1:${port}`], null, DEFAULT_LIMITS);
    cleanup.push(() => {
      peers.close();
      server.forceShutdown();
    });
    return peers;
  }

  function send(peers: Peers, messages: readonly KvMessage[], end: boolean) {
    let call!: ReturnType<ReturnType<Peers['client']>['streamKv']>;
    const done = new Promise<KvStreamSummary>((resolve, reject) => {
      call = peers.client(1).streamKv((err, summary) => {
        if (err) reject(err);
        else resolve(summary);
      });
    });
    done.catch(() => undefined);
    for (const m of messages) call.write(m);
    if (end) call.end();
    return { call, done };
  }

  it('answers a sound stream with its summary once the sender ends it', async () => {
    const registry = new RunRegistry<FakeRun>();
    const run = new FakeRun([0]);
    registry.add('run-1', run);
    const peers = await rank1(registry, []);
    const { done } = send(peers, [hello('run-1'), frame(0), frame(1), frame(1, 4)], true);
    expect(await done).toEqual({ frames: 3, bytes: 2 * 8 * 32 });
    expect(run.frames.map(([, f]) => f.layer)).toEqual([0, 1, 1]);
    expect(run.closed).toEqual([[0, null]]);
  });

  it('refuses a stream without a hello with INVALID_ARGUMENT', async () => {
    const peers = await rank1(new RunRegistry<FakeRun>(), []);
    const { done } = send(peers, [frame(0)], false);
    await expect(done).rejects.toMatchObject({
      code: status.INVALID_ARGUMENT,
      details: 'a KV stream must start with a hello',
    });
  });

  it('refuses a frame the run rejects with DATA_LOSS, and fails the run', async () => {
    const registry = new RunRegistry<FakeRun>();
    const run = new FakeRun([0]);
    run.failNext = new FrameError('bad KV frame from rank 0: checksum mismatch');
    registry.add('run-1', run);
    const failed: [FakeRun, string][] = [];
    const peers = await rank1(registry, failed);
    const { done } = send(peers, [hello('run-1'), frame(0)], false);
    await expect(done).rejects.toMatchObject({ code: status.DATA_LOSS, details: /checksum mismatch/ });
    expect(failed).toEqual([[run, 'bad KV frame from rank 0: checksum mismatch']]);
  });

  it('tells the run when the sender cancels its stream mid-way', async () => {
    const registry = new RunRegistry<FakeRun>();
    const run = new FakeRun([0]);
    registry.add('run-1', run);
    const peers = await rank1(registry, []);
    const { call, done } = send(peers, [hello('run-1'), frame(0)], false);
    const deadline = Date.now() + 5000;
    while (run.frames.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    call.cancel();
    await expect(done).rejects.toMatchObject({ code: status.CANCELLED });
    while (run.closed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    // gRPC reports the cancelled call as its end and then as cancelled: the run hears of it once.
    await new Promise((r) => setTimeout(r, 50));
    expect(run.closed).toHaveLength(1);
    expect(run.closed[0]![0]).toBe(0);
  });
});
