// Rank 0's coordination: what it waits for (CoordinatedRun), where the prompt and the split come
// from, and one whole coordinated run against a second rank served over real gRPC on a real socket.
// Rank 0's engine is a small fake (the engine is not what is under test here; test/chain runs real
// ones): it "computes" K/V of zeros, which go to rank 1 through real K/V links.
import { afterEach, describe, expect, it } from '@jest/globals';
import { Server, ServerCredentials, status, type ServiceError } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import {
  Mode,
  RankReport,
  type AbortRequest,
  type KvMessage,
  type RunRequest,
  type StartRequest,
} from '../../core/gen/runahead/v1/rank.ts';
import { DEFAULT_LIMITS, PROTOCOL_VERSION, dtypeOf, grpcOptions } from '../../core/protocol.ts';
import { logger } from '../../core/log.ts';
import { presetConfig } from '../model/presets.ts';
import type { EngineClient } from '../runtime/engine-client.ts';
import type { EngineInfo, GraphRunOptions } from '../runtime/layer-engine.ts';
import { stagePlan } from '../runtime/stage-plan.ts';
import {
  CoordinatedRun,
  coordinate,
  promptTokenIds,
  resolveBoundaries,
  type CoordinatorEnv,
} from './coordinator.ts';
import { RunFailure, type RankRun } from './rank-run.ts';
import { Peers, RankServiceDefinition } from './transport.ts';

/** A report with every field at its default (what decoding an empty message gives), then `over`. */
const report = (rank: number, over: Partial<RankReport> = {}): RankReport => ({
  ...RankReport.decode(new Uint8Array(0)),
  from: { protocolVersion: PROTOCOL_VERSION, modelFingerprint: 'fake', runId: 'r', rank, worldSize: 3 },
  ...over,
});

describe('CoordinatedRun', () => {
  it('hands out the first token, then every rank’s report in rank order once all are in', async () => {
    const run = new CoordinatedRun('r', 3);
    run.onFirstToken(42);
    const first = await run.waitFirstToken();
    expect(first.token).toBe(42);
    expect(first.at).toBeGreaterThan(0);
    let all: RankReport[] | null = null;
    void run.waitReports().then((r) => (all = r));
    run.onReport(report(2));
    run.onReport(report(0));
    await new Promise((r) => setTimeout(r, 10));
    expect(all).toBeNull(); // rank 1 has not reported
    run.onReport(report(1));
    expect((await run.waitReports()).map((r) => r.from?.rank)).toEqual([0, 1, 2]);
    expect(run.failed).toBeNull();
  });

  it('hands every token on in order, the first included, whatever order their reports came in', () => {
    const run = new CoordinatedRun('run-1', 2);
    const heard: [number, number][] = [];
    run.listenTokens((token, index) => heard.push([index, token]));
    run.onGeneratedToken(12, 2);
    run.onFirstToken(10);
    run.onGeneratedToken(11, 1);
    run.onGeneratedToken(11, 1); // a repeat changes nothing
    run.onGeneratedToken(13, 3);
    expect(heard).toEqual([
      [0, 10],
      [1, 11],
      [2, 12],
      [3, 13],
    ]);
  });

  it('fails the run on a report with an error, naming the rank it came from', async () => {
    const run = new CoordinatedRun('r', 3);
    run.onReport(report(2, { error: 'no K/V for layer 3' }));
    await expect(run.waitFirstToken()).rejects.toThrow(/^rank 2: no K\/V for layer 3$/);
    await expect(run.waitReports()).rejects.toThrow(/^rank 2: no K\/V for layer 3$/);
    expect(run.failed?.message).toBe('rank 2: no K/V for layer 3');
  });

  it('keeps the first failure: later ones change nothing', async () => {
    const run = new CoordinatedRun('r', 2);
    run.fail(new Error('rank 1: killed'));
    run.fail(new Error('rank 0: deadline'));
    run.onReport(report(0, { error: 'stopped' }));
    expect(run.failed?.message).toBe('rank 1: killed');
    await expect(run.waitReports()).rejects.toThrow('rank 1: killed');
  });
});

const config = presetConfig('tiny');
const tokenizer = {
  encode: (text: string) =>
    Array.from({ length: text.length }, (_, i) => text.charCodeAt(i) % config.vocabSize),
  decode: (ids: readonly number[]) => ids.map((i) => `<${i}>`).join(''),
};
const request = (over: Partial<RunRequest> = {}): RunRequest => ({
  prompt: { source: { $case: 'tokenIds', value: { ids: Array.from({ length: 20 }, (_, i) => 3 + i) } } },
  mode: Mode.MODE_RUNAHEAD,
  boundaries: [],
  maxNewTokens: 0,
  partition: '',
  debugState: false,
  ...over,
});

/**
 * An engine with the tiny preset's shapes, one graph for the whole model: it emits zero K/V for
 * every layer of its chunk. `startChunk` can be held to keep rank 0 busy.
 */
function fakeEngine(startChunk: () => Promise<void> = () => Promise.resolve()): EngineClient {
  const info: EngineInfo = {
    config,
    dtype: 'float32',
    fingerprint: 'fake-tiny',
    description: 'fake',
    loadMs: 0,
    loadBreakdownMs: { weights: 0, graphs: 0, sessions: 0 },
    attention: 'reference',
    graphs: stagePlan(config.numLayers, 0),
    kvOnHostIsFree: true,
    io: 'onnxruntime-node',
  };
  let tokens = 0;
  const row = config.numKvHeads * config.headDim;
  const fake = {
    info,
    startChunk: (ids: readonly number[]) => {
      tokens = ids.length;
      return startChunk();
    },
    runGraph: (_index: number, _pasts: unknown, options: GraphRunOptions) =>
      Promise.resolve({
        value: options.emit
          ? Array.from({ length: config.numLayers }, (_, layer) => ({
              layer,
              block: { tokens, key: new Float32Array(tokens * row), value: new Float32Array(tokens * row) },
            }))
          : [],
        span: { start: 0, end: 1 },
      }),
    resetCache: () => Promise.resolve(),
    recycle: () => undefined,
  };
  return fake as unknown as EngineClient;
}

describe('promptTokenIds', () => {
  const env = { engine: fakeEngine(), tokenizer } as unknown as CoordinatorEnv;

  it('takes token ids as given, text through the tokenizer, and a synthetic prompt of the asked length', () => {
    expect(promptTokenIds(env, request())).toHaveLength(20);
    expect(promptTokenIds(env, request({ prompt: { source: { $case: 'text', value: 'abc' } } }))).toEqual([
      97, 98, 99,
    ]);
    const synthetic = promptTokenIds(
      env,
      request({ prompt: { source: { $case: 'syntheticTokens', value: 33 } } }),
    );
    expect(synthetic).toHaveLength(33);
    expect(synthetic.every((id) => Number.isInteger(id) && id >= 0 && id < config.vocabSize)).toBe(true);
  });

  it('refuses a request without a prompt', () => {
    expect(() => promptTokenIds(env, request({ prompt: undefined }))).toThrow(
      'the run request has no prompt',
    );
  });
});

describe('resolveBoundaries', () => {
  it('uses explicit boundaries as given, after checking them', () => {
    expect(resolveBoundaries(request({ boundaries: [0, 5, 20] }), 20, 2, null)).toEqual({
      boundaries: [0, 5, 20],
      partition: 'explicit',
    });
    expect(() => resolveBoundaries(request({ boundaries: [0, 25, 20] }), 20, 2, null)).toThrow();
    expect(() => resolveBoundaries(request({ boundaries: [0, 10, 20] }), 20, 3, null)).toThrow();
  });

  it('splits evenly when nothing else is asked', () => {
    const { boundaries, partition } = resolveBoundaries(request(), 20, 4, null);
    expect(partition).toBe('even');
    expect(boundaries).toEqual([0, 5, 10, 15, 20]);
  });

  it('refuses "balanced" without a partition table, and a partition it does not know', () => {
    expect(() => resolveBoundaries(request({ partition: 'balanced' }), 20, 2, null)).toThrow(/balanced/);
    expect(() => resolveBoundaries(request({ partition: 'fastest' }), 20, 2, null)).toThrow(/fastest/);
  });
});

describe('coordinate (rank 0 of 2, rank 1 played over gRPC)', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  interface Rank1 {
    readonly starts: StartRequest[];
    readonly aborts: AbortRequest[];
    kvFrames: number;
    address: string;
  }

  /** Rank 1: serves health, Start, StreamKv and Abort; `onStart` decides what a Start does. */
  async function rank1(onStart: (req: StartRequest) => ServiceError | null): Promise<Rank1> {
    const state: Rank1 = { starts: [], aborts: [], kvFrames: 0, address: '' };
    const server = new Server(grpcOptions(DEFAULT_LIMITS));
    new HealthImplementation({ '': 'SERVING' }).addToServer(server);
    server.addService(RankServiceDefinition, {
      start: (call: { request: StartRequest }, cb: (e: ServiceError | null, r?: object) => void) => {
        state.starts.push(call.request);
        const err = onStart(call.request);
        if (err) cb(err);
        else cb(null, { receivedAtMs: Date.now() });
      },
      streamKv: (call: NodeJS.EventEmitter, cb: (e: null, r: { frames: number; bytes: number }) => void) => {
        call.on('data', (m: KvMessage) => {
          if (m.body?.$case === 'frame') state.kvFrames++;
        });
        call.on('end', () => {
          cb(null, { frames: state.kvFrames, bytes: 0 });
        });
      },
      abort: (call: { request: AbortRequest }, cb: (e: null, r: object) => void) => {
        state.aborts.push(call.request);
        cb(null, {});
      },
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => {
        if (err) reject(err);
        else resolve(p);
      });
    });
    state.address = `127.0.0.1:${port}`;
    cleanup.push(() => {
      server.forceShutdown();
    });
    return state;
  }

  function env(
    peer: Rank1,
    runTimeoutMs = 10_000,
  ): CoordinatorEnv & { registered: string[]; unregistered: string[] } {
    const peers = new Peers(['127.0.0.1:1', peer.address], null, DEFAULT_LIMITS, 'grpc');
    cleanup.push(() => {
      peers.close();
    });
    const registered: string[] = [];
    const unregistered: string[] = [];
    return {
      rank: 0,
      worldSize: 2,
      engine: fakeEngine(),
      peers,
      limits: DEFAULT_LIMITS,
      geometry: {
        dtype: dtypeOf('float32'),
        kvHeads: config.numKvHeads,
        headDim: config.headDim,
        bytesPerElement: 4,
      },
      eosTokenIds: config.eosTokenIds,
      identity: (runId) => ({
        protocolVersion: PROTOCOL_VERSION,
        modelFingerprint: 'fake-tiny',
        runId,
        rank: 0,
        worldSize: 2,
      }),
      log: logger('coordinator-test'),
      tokenizer,
      runTimeoutMs,
      startupTimeoutMs: 5000,
      partitionTable: null,
      register: (run: RankRun) => registered.push(run.plan.runId),
      unregister: (run: RankRun) => unregistered.push(run.plan.runId),
      registered,
      unregistered,
    };
  }

  it('releases the chunks, measures TTFT to rank 1’s first token, and returns every rank’s report', async () => {
    let tracked: CoordinatedRun | null = null;
    const tracks: (CoordinatedRun | null)[] = [];
    const peer = await rank1((start) => {
      // Rank 1 "computes" and answers as a real one would: first token, then its report.
      setTimeout(() => {
        tracked?.onFirstToken(7);
        tracked?.onReport(
          report(1, {
            from: { ...start.from!, rank: 1 },
            tokens: [7, 8],
            spans: [{ kind: 'attend', layer: 0, startMs: 100, endMs: 110 }],
            startReceivedMs: 100,
            finishedMs: 120,
          }),
        );
      }, 50);
      return null;
    });
    const e = env(peer);
    const result = await coordinate(e, request(), (c) => {
      tracked = c;
      tracks.push(c);
    });
    expect(peer.starts).toHaveLength(1);
    expect(peer.starts[0]!.chunkTokenIds).toEqual(Array.from({ length: 10 }, (_, i) => 13 + i));
    expect(peer.starts[0]!.boundaries).toEqual([0, 10, 20]);
    expect(result.boundaries).toEqual([0, 10, 20]);
    expect(result.partition).toBe('even');
    expect(result.firstToken).toBe(7);
    expect(result.firstTokenText).toBe('<7>');
    expect(result.tokens).toEqual([7, 8]);
    expect(result.contextLength).toBe(20);
    expect(result.ttftMs).toBeGreaterThanOrEqual(40);
    expect(result.ranks.map((r) => r.from?.rank)).toEqual([0, 1]);
    expect(result.ranks[0]!.error).toBe('');
    // Rank 0's own K/V of every layer went to rank 1: 10 tokens × 2 layers in frames.
    expect(peer.kvFrames).toBeGreaterThanOrEqual(config.numLayers);
    expect(result.ranks[0]!.framesSent).toBe(peer.kvFrames);
    expect(tracks.at(-1)).toBeNull();
    expect(tracks[0]?.runId).toBe(result.runId);
    expect(e.registered).toEqual([result.runId]);
    expect(e.unregistered).toEqual([result.runId]);
    expect(peer.aborts).toEqual([]);
  });

  it('fails the run when rank 1 refuses its Start, and tells the other ranks to abort', async () => {
    const peer = await rank1(
      () => ({ code: status.FAILED_PRECONDITION, details: 'model mismatch' }) as ServiceError,
    );
    const e = env(peer);
    await expect(coordinate(e, request(), () => undefined)).rejects.toThrow(
      /^rank 1 refused the run: model mismatch$/,
    );
    const deadline = Date.now() + 5000;
    while (peer.aborts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(peer.aborts.map((a) => a.reason)).toEqual(['rank 1 refused the run: model mismatch']);
    expect(e.unregistered).toEqual(e.registered);
  });

  it('fails the run at the run deadline when no first token comes', async () => {
    const peer = await rank1(() => null); // takes the Start, then never answers
    const e = env(peer, 300);
    await expect(coordinate(e, request(), () => undefined)).rejects.toThrow(
      /the first token did not happen within 300 ms \(run deadline\)/,
    );
    expect(e.unregistered).toEqual(e.registered);
  });

  it('stops the run on every rank when its signal aborts, and returns once they have stopped', async () => {
    let tracked: CoordinatedRun | null = null;
    const peer = await rank1(() => null); // takes the Start; reports only once told to abort
    const e = env(peer);
    const cancel = new AbortController();
    let firstTokens = 0;
    const run = coordinate(
      e,
      request(),
      (c) => {
        tracked = c;
      },
      {
        signal: cancel.signal,
        onFirstToken: () => {
          firstTokens++;
        },
      },
    );
    let settled = false;
    run.catch(() => undefined).finally(() => (settled = true));
    const deadline = Date.now() + 5000;
    while (peer.starts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const runId = peer.starts[0]!.from!.runId;
    cancel.abort('client went away');
    while (peer.aborts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(peer.aborts[0]!.reason).toBe('rank 0: the run was cancelled: client went away');
    // Rank 1 has not reported yet: the coordinator is still waiting for it to stop.
    await new Promise((r) => setTimeout(r, 100));
    expect(settled).toBe(false);
    tracked!.onReport(report(1, { from: { ...peer.starts[0]!.from!, rank: 1, runId }, error: 'aborted' }));
    await expect(run).rejects.toThrow(/the run was cancelled: client went away/);
    expect(firstTokens).toBe(0);
    expect(e.unregistered).toEqual(e.registered);
  });

  it('fails the run as retriable, naming the silent rank, when a rank does not answer its health check', async () => {
    const peer = await rank1(() => null);
    const e = { ...env({ ...peer, address: '127.0.0.1:1' }), startupTimeoutMs: 300 };
    const failure = await coordinate(e, request(), () => undefined).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(RunFailure);
    expect(failure).toMatchObject({ rank: 0, retriable: true });
    expect((failure as Error).message).toMatch(
      /^rank 0: rank 1 at 127\.0\.0\.1:1 was not ready within 300 ms/,
    );
    expect(peer.starts).toEqual([]);
  });

  it('refuses a request without a prompt before it contacts any rank', async () => {
    const peer = await rank1(() => null);
    await expect(coordinate(env(peer), request({ prompt: undefined }), () => undefined)).rejects.toThrow(
      'the run request has no prompt',
    );
    expect(peer.starts).toEqual([]);
  });
});
