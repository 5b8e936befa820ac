// Rank 0's second job: coordinating a run. TTFT is measured on this process's clock alone, from the
// moment the prompt is released to the other ranks (just before the Start calls go out) to the
// moment the last rank's FirstToken call arrives — every byte of communication in between counts.
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';
import {
  Mode,
  type LayerSend,
  type RankReport,
  type RunRequest,
  type FirstTokenEvent,
  type TokenEvent,
  type RunResult,
  type Span,
  type StartReply,
} from '../../core/gen/runahead/v1/rank.ts';
import { criticalPath } from '../../core/critical-path.ts';
import type { PartitionTable } from '../../core/partition-table.ts';
import { partitionFromRequest, resolvePartition } from '../../core/partition-choice.ts';
import { syntheticPromptIds } from '../prompt.ts';
import type { TextTokenizer } from '../tokenizer.ts';
import { attributeFailure, RankRun, RunFailure, type RankEnv, type RunPlan } from './rank-run.ts';

const now = () => performance.timeOrigin + performance.now();

export interface CoordinatorEnv extends RankEnv {
  readonly tokenizer: TextTokenizer;
  readonly runTimeoutMs: number;
  readonly startupTimeoutMs: number;
  /** Balanced splits by context length (runahead tune), when rank 0 was given one. */
  readonly partitionTable: PartitionTable | null;
  /** Register rank 0's own part so that incoming streams find it. */
  register(run: RankRun): void;
  unregister(run: RankRun): void;
}

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** What the coordinator is waiting for during one run. */
export class CoordinatedRun {
  readonly runId: string;
  private readonly ranks: number;
  private readonly firstToken = deferred<{ token: number; at: number }>();
  private readonly reports = new Map<number, RankReport>();
  private readonly allReports = deferred<RankReport[]>();
  private failure: Error | null = null;
  /** Waiters for reports from a set of ranks, whatever the run's outcome (see settled()). */
  private readonly settleWaiters: { ranks: readonly number[]; resolve: () => void }[] = [];

  constructor(runId: string, ranks: number) {
    this.runId = runId;
    this.ranks = ranks;
  }

  onFirstToken(token: number): void {
    const at = now();
    this.firstToken.resolve({ token, at });
    this.deliver(0, token, at);
  }

  /** Token `index` (1: the one after the first) decoded by the last rank. */
  onGeneratedToken(token: number, index: number): void {
    if (index >= 1) this.deliver(index, token, now());
  }

  /** Tokens not yet handed on, by index: reports may overtake each other. */
  private readonly pending = new Map<number, { token: number; at: number }>();
  private nextIndex = 0;
  private tokenListener: ((token: number, index: number, at: number) => void) | null = null;

  /** Who hears every token, the first included, in order (a streaming caller). */
  listenTokens(listener: (token: number, index: number, at: number) => void): void {
    this.tokenListener = listener;
  }

  private deliver(index: number, token: number, at: number): void {
    if (index < this.nextIndex) return;
    this.pending.set(index, { token, at });
    for (let t = this.pending.get(this.nextIndex); t; t = this.pending.get(this.nextIndex)) {
      this.pending.delete(this.nextIndex);
      this.tokenListener?.(t.token, this.nextIndex++, t.at);
    }
  }

  onReport(report: RankReport): void {
    const rank = report.from?.rank ?? -1;
    this.reports.set(rank, report);
    for (const w of this.settleWaiters.filter((w) => w.ranks.every((r) => this.reports.has(r)))) {
      this.settleWaiters.splice(this.settleWaiters.indexOf(w), 1);
      w.resolve();
    }
    if (report.error)
      this.fail(
        report.errorRank !== undefined
          ? new RunFailure(report.error, report.errorRank)
          : RunFailure.at(rank, report.error),
      );
    if (this.reports.size === this.ranks)
      this.allReports.resolve([...this.reports.values()].sort((a, b) => a.from!.rank - b.from!.rank));
  }

  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.firstToken.reject(err);
    this.allReports.reject(err);
  }

  get failed(): Error | null {
    return this.failure;
  }

  waitFirstToken(): Promise<{ token: number; at: number }> {
    return this.firstToken.promise;
  }

  waitReports(): Promise<RankReport[]> {
    return this.allReports.promise;
  }

  /**
   * Resolves once each of `ranks` has reported, failed run or not. A rank reports after its part has
   * ended and its engine is free (rank-node.ts), so after a failure this says the next run's Start
   * will not find that rank still busy with this one.
   */
  settled(ranks: readonly number[]): Promise<void> {
    if (ranks.every((r) => this.reports.has(r))) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push({ ranks, resolve }));
  }
}

/** What a caller of coordinate() may hook into, beyond the run's result. */
export interface CoordinateHooks {
  /** Called once, as soon as the first token reaches the coordinator (a streamed answer sends it). */
  readonly onFirstToken?: (event: FirstTokenEvent) => void;
  /** Each token after the first, in order, as soon as it reaches the coordinator. */
  readonly onToken?: (event: TokenEvent) => void;
  /** Aborting it stops the run on every rank: the client that asked for it went away. */
  readonly signal?: AbortSignal;
}

export function promptTokenIds(env: CoordinatorEnv, request: RunRequest): number[] {
  const { config } = env.engine.info;
  const source = request.prompt?.source;
  switch (source?.$case) {
    case 'text':
      return env.tokenizer.encode(source.value);
    case 'syntheticTokens':
      return syntheticPromptIds(source.value, config.vocabSize, 0, config.bosTokenId);
    case 'tokenIds':
      return source.value.ids;
    default:
      throw new RunFailure('the run request has no prompt');
  }
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new RunFailure(`${what} did not happen within ${ms} ms (run deadline)`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => {
    clearTimeout(timer);
  });
}

/** The split of a run, from what its request asks (core/partition-choice.ts decides). */
export function resolveBoundaries(
  request: RunRequest,
  contextLength: number,
  ranks: number,
  table: PartitionTable | null,
): { boundaries: number[]; partition: string } {
  return resolvePartition(partitionFromRequest(request), contextLength, ranks, table);
}

/** Shift a rank's spans onto the coordinator's clock. */
function shift(spans: readonly Span[], offset: number): Span[] {
  return spans.map((s) => ({ ...s, startMs: s.startMs - offset, endMs: s.endMs - offset }));
}

function shiftSends(sends: readonly LayerSend[], offset: number): LayerSend[] {
  return sends.map((s) => ({
    ...s,
    readyMs: s.readyMs - offset,
    startMs: s.startMs - offset,
    endMs: s.endMs - offset,
  }));
}

/** Every rank's report on the coordinator's clock, each with its send time on the critical path. */
export function alignReports(
  reports: readonly RankReport[],
  offsets: ReadonlyMap<number, number>,
  releasedMs: number,
  firstTokenMs: number,
): RankReport[] {
  const aligned = reports.map((r) => {
    const offset = offsets.get(r.from!.rank) ?? 0;
    return {
      ...r,
      spans: shift(r.spans, offset),
      sends: shiftSends(r.sends, offset),
      startReceivedMs: r.startReceivedMs - offset,
      finishedMs: r.finishedMs - offset,
    };
  });
  const path = criticalPath(
    aligned.map((r) => ({ rank: r.from!.rank, spans: r.spans, sends: r.sends })),
    releasedMs,
    firstTokenMs,
    aligned.length - 1,
  );
  return aligned.map((r) => ({ ...r, criticalSendMs: path.sendMs[r.from!.rank] ?? 0 }));
}

/** The run was cancelled by whoever asked for it; `reason` says why. */
export function cancelledFailure(reason: unknown): RunFailure {
  return RunFailure.at(
    0,
    `the run was cancelled: ${reason instanceof Error ? reason.message : String(reason)}`,
  );
}

export async function coordinate(
  env: CoordinatorEnv,
  request: RunRequest,
  track: (run: CoordinatedRun | null) => void,
  hooks: CoordinateHooks = {},
): Promise<RunResult> {
  const { signal } = hooks;
  if (signal?.aborted) throw cancelledFailure(signal.reason);
  const ids = promptTokenIds(env, request);
  const mode = request.mode === Mode.MODE_UNSPECIFIED ? Mode.MODE_RUNAHEAD : request.mode;
  const ranks = mode === Mode.MODE_SINGLE ? 1 : env.worldSize;
  const { boundaries, partition } = resolveBoundaries(request, ids.length, ranks, env.partitionTable);
  const runId = randomUUID();
  const coordinated = new CoordinatedRun(runId, ranks);
  // A streaming caller hears every token as it comes, with the text it adds: the text of all
  // tokens so far less what was given before, held back while it ends inside a character (one
  // byte of a multi-byte character decodes to U+FFFD alone) — that text comes with a later token.
  // Called from CoordinatedRun.onFirstToken itself, so that no later token can overtake the first.
  let released = 0;
  const streamed = { ids: [] as number[], given: '' };
  if (hooks.onFirstToken || hooks.onToken)
    coordinated.listenTokens((token, index, at) => {
      streamed.ids.push(token);
      const text = env.tokenizer.decode(streamed.ids);
      const adds =
        text.endsWith('\uFFFD') || !text.startsWith(streamed.given) ? '' : text.slice(streamed.given.length);
      streamed.given += adds;
      if (index === 0) hooks.onFirstToken?.({ token, text: adds, ttftMs: at - released, boundaries });
      else hooks.onToken?.({ index, token, text: adds });
    });
  const chunk = (r: number) => ids.slice(boundaries[r], boundaries[r + 1]);
  const plan: RunPlan = {
    runId,
    mode,
    boundaries,
    chunkIds: chunk(0),
    maxNewTokens: request.maxNewTokens,
    debugState: request.debugState,
  };
  // Connections are made before the clock starts: TTFT measures the run, not channel set-up.
  // A rank that does not answer fails this run as a run failure (retriable: the next may find it),
  // found here on rank 0; the message names the rank that did not answer.
  await Promise.all(
    [...Array(ranks).keys()].slice(1).map((r) =>
      env.peers.connect(r, env.startupTimeoutMs).catch((err: unknown) => {
        throw RunFailure.at(0, (err as Error).message);
      }),
    ),
  );

  const own = new RankRun(env, plan);
  env.register(own);
  track(coordinated);
  const offsets = new Map<number, number>([[0, 0]]);
  const cancel = () => {
    coordinated.fail(cancelledFailure(signal?.reason));
  };
  if (signal?.aborted) cancel();
  signal?.addEventListener('abort', cancel, { once: true });
  let starts: Promise<void>[] = [];
  try {
    released = now();
    starts = [...Array(ranks).keys()].slice(1).map(
      (r) =>
        new Promise<void>((resolve) => {
          const sentAt = now();
          env.peers.client(r).start(
            {
              from: env.identity(runId),
              mode,
              boundaries,
              chunkTokenIds: chunk(r),
              maxNewTokens: request.maxNewTokens,
              releasedAtMs: released,
              debugState: request.debugState,
            },
            new Metadata(),
            { deadline: Date.now() + env.limits.peerTimeoutMs },
            (err, reply?: StartReply) => {
              if (err)
                coordinated.fail(
                  new RunFailure(`rank ${r} refused the run: ${err.details || err.message}`, r),
                );
              else offsets.set(r, (reply?.receivedAtMs ?? sentAt) - (sentAt + now()) / 2);
              resolve();
            },
          );
        }),
    );
    const ownReport = own.execute(
      (token) => {
        coordinated.onFirstToken(token);
        return Promise.resolve();
      },
      (token, index) => {
        coordinated.onGeneratedToken(token, index);
      },
    );
    void ownReport.then((report) => {
      coordinated.onReport(report);
    });
    const onFailure = new Promise<never>((_, reject) => {
      void coordinated.waitFirstToken().catch(reject);
    });
    const first = await withDeadline(
      Promise.race([coordinated.waitFirstToken(), onFailure]),
      env.runTimeoutMs,
      'the first token',
    );
    const reports = await withDeadline(coordinated.waitReports(), env.runTimeoutMs, 'every rank reporting');
    await Promise.all(starts);
    const last = reports.at(-1)!;
    return {
      runId,
      mode,
      boundaries,
      firstToken: first.token,
      firstTokenText: env.tokenizer.decode([first.token]),
      tokens: last.tokens,
      text: env.tokenizer.decode(last.tokens),
      ttftMs: first.at - released,
      contextLength: ids.length,
      ranks: alignReports(reports, offsets, released, first.at),
      releasedAtMs: released,
      partition,
    };
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    coordinated.fail(e);
    own.fail(e);
    // Told to the others as a run failure: one another rank reported keeps its rank; anything
    // else (a deadline, a bad request) began here.
    const failure = attributeFailure(e, 0);
    for (let r = 1; r < ranks; r++) {
      env.peers
        .client(r)
        .abort(
          { from: env.identity(runId), reason: failure.message, reasonRank: failure.rank },
          new Metadata(),
          { deadline: Date.now() + 2000 },
          () => undefined,
        );
    }
    // Leave only once every rank that took part has stopped (bounded: a dead rank never reports),
    // so that the next run, right behind this one, does not find a rank still busy with it.
    await Promise.all(starts);
    const started = [...offsets.keys()];
    const settleMs = Math.min(env.limits.peerTimeoutMs, env.runTimeoutMs);
    await withDeadline(coordinated.settled(started), settleMs, 'every rank stopping').catch(() => undefined);
    throw coordinated.failed ?? e;
  } finally {
    signal?.removeEventListener('abort', cancel);
    env.unregister(own);
    track(null);
  }
}
