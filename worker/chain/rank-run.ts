// One rank's part of one run: the rank loop (PAPER.md) and its TSP baseline.
//
// KV-Runahead, rank i of N, chunk [s, e), per layer l:
//   1. project(l): Q, K, V of the own chunk                     (compute thread)
//   2. wait until rank i−1's KV(l) of [0, s) is complete         (frames arrive on StreamKv and are
//      forwarded to rank i+1 the moment they are checked: cut-through)
//   3. put the own K/V(l) of [s, e) behind them → rank i+1       (kv-outbox.ts: never waits)
//   4. attend(l) over [0, e), then the MLP                       (compute thread, while 3 sends)
// The graph of step 4 is started before any of step 3's send work (framing, CRC, queueing) runs on
// this thread, and the loop waits for its links only when they are a whole outbox behind — after
// the graph has been started, and recorded as send-blocked when it outlasts the graph.
// Bytes per hop: rank i sends [0, e_i) per layer — the paper's cumulative cache. Nothing is sent
// twice and nothing goes backwards: over a run the chain moves Σ_{i<N−1} e_i tokens of K and V per
// layer, (N−1)·C/2 for an even split, against TSP's (N−1)·C (every chunk to every other rank).
//
// TSP, rank i: project(l), send own K/V(l) to every other rank, wait for every other rank's
// K/V(l) (the all-gather), attend(l) over [0, C) with the causal mask.
import { performance } from 'node:perf_hooks';
import type { Identity, KvFrame, LayerSend, RankReport, Span } from '../../core/gen/runahead/v1/rank.ts';
import { Mode } from '../../core/gen/runahead/v1/rank.ts';
import type { LinkLimits } from '../../core/protocol.ts';
import type { Logger } from '../../core/log.ts';
import { COMPUTE_KINDS, SEND_BLOCKED_KIND, SEND_KIND, WAIT_KIND } from '../../core/span-kinds.ts';
import type { EngineClient } from '../runtime/engine-client.ts';
import type { KvBlock } from '../runtime/layer-engine.ts';
import { argmax } from '../sampling.ts';
import { isProject, layerOf, type StageRange } from '../model/llama-graphs.ts';
import { stageLayers } from '../runtime/stage-plan.ts';
import { decodeGreedy } from '../prefill.ts';
import { framesOf, type KvGeometry } from './frames.ts';
import { encodeSafetensors } from '../model/safetensors.ts';
import type { InboxBuffers } from './inbox-buffers.ts';
import { KvInbox, type InboxSource } from './kv-inbox.ts';
import { KvLink } from './kv-link.ts';
import { KvOutbox } from './kv-outbox.ts';
import type { Peers } from './transport.ts';

export interface RankEnv {
  readonly rank: number;
  readonly worldSize: number;
  readonly engine: EngineClient;
  readonly peers: Peers;
  readonly limits: LinkLimits;
  readonly geometry: KvGeometry;
  readonly eosTokenIds: readonly number[];
  identity(runId: string): Identity;
  readonly log: Logger;
  /** Where received K/V are kept, reused run after run (absent: fresh buffers per run). */
  readonly inboxBuffers?: InboxBuffers;
}

export interface RunPlan {
  readonly runId: string;
  readonly mode: Mode;
  readonly boundaries: readonly number[];
  readonly chunkIds: readonly number[];
  readonly maxNewTokens: number;
  /** The last rank returns its logits and KV-cache in its report (tests, debugging). */
  readonly debugState: boolean;
}

const now = () => performance.timeOrigin + performance.now();

/**
 * TSP all-gathers every layer's K/V before any rank attends it, from later ranks too: a graph that
 * projects a layer and attends it would wait for peers that wait for it.
 */
export function tspProblem(graphs: readonly StageRange[]): string | null {
  const mixed = graphs.find((r) => {
    const { projects, attends } = stageLayers(r);
    return projects.some((l) => attends.includes(l));
  });
  return mixed
    ? `TSP all-gathers K/V at every layer and needs one graph per stage (--layers-per-graph 1); this engine's graph of stages [${mixed.from}, ${mixed.to}) projects and attends a layer`
    : null;
}

function spanKind(range: StageRange): string {
  if (range.to - range.from > 1) return 'layers';
  return isProject(range.from) ? 'project' : 'attend';
}

/**
 * A run that failed: retriable (a new attempt of the group may succeed), unlike a configuration
 * error. `rank` is where the failure began once that is known; its message then names that rank
 * ("rank 2: …"), and nothing reads the rank back out of the text.
 */
export class RunFailure extends Error {
  override readonly name = 'RunFailure';
  readonly retriable = true;
  readonly rank: number | null;

  /** `message` as given; with `rank`, the caller says the message already names it. */
  constructor(message: string, rank: number | null = null) {
    super(message);
    this.rank = rank;
  }

  /** A failure that began on `rank`: "rank <rank>: <reason>". */
  static at(rank: number, reason: string): RunFailure {
    return new RunFailure(`rank ${rank}: ${reason}`, rank);
  }
}

/** `err` as a failure attributed to a rank: its own rank if it has one, else `rank`. */
export function attributeFailure(err: unknown, rank: number): RunFailure & { rank: number } {
  if (err instanceof RunFailure && err.rank !== null) return err as RunFailure & { rank: number };
  const reason = err instanceof Error ? err.message : String(err);
  return RunFailure.at(rank, reason) as RunFailure & { rank: number };
}

/** Ranks taking part: all of them, except in single mode. */
export function participants(plan: Pick<RunPlan, 'mode' | 'boundaries'>): number {
  return plan.boundaries.length - 1;
}

export class RankRun {
  readonly plan: RunPlan;
  private readonly env: RankEnv;
  private readonly inbox: KvInbox | null;
  private readonly links = new Map<number, KvLink>();
  private readonly outbox: KvOutbox;
  /** Own K/V already given back to the engine (each exactly once: the pool counts its holders). */
  private readonly recycled = new Set<KvBlock>();
  private readonly spans: Span[] = [];
  private failure: Error | null = null;
  private rejectFailed: (err: Error) => void = () => undefined;
  /** Rejects when the run fails: every await of the loop races against it. */
  private readonly failed$ = new Promise<never>((_, reject) => {
    this.rejectFailed = reject;
  });
  readonly startReceivedAt = now();
  private readonly chunkStart: number;
  private readonly chunkEnd: number;
  private readonly last: boolean;

  constructor(env: RankEnv, plan: RunPlan) {
    this.env = env;
    this.plan = plan;
    this.failed$.catch(() => undefined);
    const b = plan.boundaries;
    const me = env.rank;
    const n = participants(plan);
    if (me >= n) throw new RunFailure(`rank ${me} has no chunk in a run of ${n} rank(s)`, me);
    this.chunkStart = b[me]!;
    this.chunkEnd = b[me + 1]!;
    this.last = me === n - 1;
    if (plan.chunkIds.length !== this.chunkEnd - this.chunkStart) {
      throw RunFailure.at(
        me,
        `got ${plan.chunkIds.length} token ids for chunk [${this.chunkStart}, ${this.chunkEnd})`,
      );
    }
    if (plan.mode === Mode.MODE_TSP && n > 1) {
      const problem = tspProblem(env.engine.info.graphs);
      if (problem) throw RunFailure.at(me, problem);
    }
    const sources: InboxSource[] =
      plan.mode === Mode.MODE_TSP
        ? Array.from({ length: n }, (_, j) => ({ rank: j, start: b[j]!, end: b[j + 1]! })).filter(
            (s) => s.rank !== me,
          )
        : me > 0
          ? [{ rank: me - 1, start: 0, end: this.chunkStart }]
          : [];
    this.inbox =
      sources.length === 0
        ? null
        : new KvInbox(
            {
              numLayers: env.engine.info.config.numLayers,
              geometry: env.geometry,
              computeDType: env.engine.info.dtype,
              chunkStart: this.chunkStart,
              chunkEnd: this.chunkEnd,
              contextLength: b[n]!,
              sources,
              maxFrameBytes: env.limits.maxFrameBytes,
            },
            env.inboxBuffers,
          );
    const targets =
      plan.mode === Mode.MODE_TSP ? [...Array(n).keys()].filter((j) => j !== me) : this.last ? [] : [me + 1];
    for (const to of targets) {
      const hello = {
        from: env.identity(plan.runId),
        toRank: to,
        dtype: env.geometry.dtype,
        numLayers: env.engine.info.config.numLayers,
        kvHeads: env.geometry.kvHeads,
        headDim: env.geometry.headDim,
      };
      this.links.set(
        to,
        new KvLink(
          env.peers.kvWriter(to, hello, env.limits.peerTimeoutMs),
          to,
          env.limits.maxQueuedFrames,
          env.limits.peerTimeoutMs,
          (err) => {
            this.fail(err);
          },
        ),
      );
    }
    const { geometry, limits } = env;
    this.outbox = new KvOutbox(
      this.links,
      (layer, block) =>
        framesOf(layer, this.chunkStart, block.key, block.value, geometry, limits.maxFrameBytes),
      limits.maxQueuedFrames * limits.maxFrameBytes,
      (err) => {
        this.fail(err);
      },
    );
    // Own K/V go back to the engine as soon as every link has copied them out (on a GPU they are
    // pooled, pinned host buffers the next layers' K/V are written into).
    this.outbox.onBlockSent((block) => {
      if (this.recycled.has(block)) return;
      this.recycled.add(block);
      env.engine.recycle([block]);
    });
  }

  get isLast(): boolean {
    return this.last;
  }

  expectsFrom(rank: number): boolean {
    return this.inbox?.expects(rank) ?? false;
  }

  /** A frame from `fromRank`: check and keep it, and in KV-Runahead pass it on to the successor at once. */
  async onFrame(fromRank: number, frame: KvFrame): Promise<void> {
    if (!this.inbox) throw new RunFailure(`rank ${this.env.rank} expects no K/V in this run`, this.env.rank);
    // What is forwarded is the inbox's copy: `frame` views a buffer its stream reuses (kv-socket.ts).
    const kept = this.inbox.accept(fromRank, frame);
    if (this.plan.mode === Mode.MODE_RUNAHEAD) await this.outbox.forward(this.env.rank + 1, kept);
  }

  onStreamClosed(fromRank: number, cause: string | null): void {
    this.inbox?.senderClosed(fromRank, cause);
  }

  /** Stop the run; everything waiting on it fails with `err`. */
  fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.inbox?.fail(err);
    for (const link of this.links.values()) link.abort(`rank ${this.env.rank} stopped: ${err.message}`);
    this.rejectFailed(err);
  }

  get failed(): Error | null {
    return this.failure;
  }

  /** Await `p`, unless the run fails first. */
  private guard<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed$]);
  }

  private span(kind: string, layer: number, start: number, end: number): void {
    this.spans.push({ kind, layer, startMs: start, endMs: end });
  }

  /**
   * Run this rank's part; resolves with its report. The last rank calls `onFirstToken`, then
   * `onToken` for each token it decodes after the first.
   */
  async execute(
    onFirstToken: (token: number) => Promise<void>,
    onToken: (token: number, index: number) => void = () => undefined,
  ): Promise<RankReport> {
    const { engine } = this.env;
    const tsp = this.plan.mode === Mode.MODE_TSP;
    const others = this.outbox.targets;
    const needCache = this.last && (this.plan.maxNewTokens > 0 || this.plan.debugState);
    // The last rank keeps past + own K/V for decoding while it prefills only where that is free
    // (EngineInfo.kvOnHostIsFree); elsewhere it rebuilds them after the first token.
    const keepNow = needCache && engine.info.kvOnHostIsFree;
    const received: (KvBlock | null)[] = [];
    /** Own K/V projected before their layer's past came through: sent once it has (KV-Runahead). */
    const held = new Map<number, KvBlock>();
    /** Every block the engine emitted: given back (recycle) once the links no longer read them. */
    const emitted: KvBlock[] = [];
    let tokens: number[] = [];
    let debugState: Uint8Array = new Uint8Array();
    try {
      await this.guard(engine.startChunk(this.plan.chunkIds, this.chunkStart));
      for (const [index, range] of engine.info.graphs.entries()) {
        const { attends } = stageLayers(range);
        const pasts: (KvBlock | null)[] = [];
        for (const l of attends) {
          let past: KvBlock | null = null;
          if (this.inbox) {
            const waitStart = now();
            past = (await this.guard(this.inbox.layer(l, this.env.limits.peerTimeoutMs))).past;
            this.span(WAIT_KIND, l, waitStart, now());
          }
          pasts.push(past);
          received[l] = past;
          // Own K/V go behind the predecessor's, which were forwarded as they arrived.
          const own = held.get(l);
          held.delete(l);
          if (own) this.outbox.put(l, own);
        }
        const running = this.guard(engine.runGraph(index, pasts, { emit: others.length > 0, keep: keepNow }));
        running.catch(() => undefined); // awaited below, after the outbox has room
        let blocked: { from: number; to: number } | null = null;
        if (!this.outbox.hasRoom()) {
          const from = now();
          await this.guard(this.outbox.room());
          blocked = { from, to: now() };
        }
        const ran = await running;
        const layer0 = layerOf(range.from);
        this.span(spanKind(range), layer0, ran.span.start, ran.span.end);
        // Held back by its links only for as long as the outbox stayed full after the graph was done.
        if (blocked && blocked.to > ran.span.end)
          this.span(SEND_BLOCKED_KIND, layer0, Math.max(blocked.from, ran.span.end), blocked.to);
        for (const { layer, block } of ran.value) {
          emitted.push(block);
          if (tsp || attends.includes(layer)) this.outbox.put(layer, block);
          else held.set(layer, block);
        }
        for (const layer of attends) this.env.log.debug({ runId: this.plan.runId, layer }, 'layer done');
      }
      if (this.last) {
        const logits = await this.guard(engine.logits());
        const first = argmax(logits);
        await this.guard(onFirstToken(first));
        if (needCache && !keepNow) {
          for (const [l, past] of received.entries()) if (past) await this.guard(engine.setCache(l, past));
          await this.guard(engine.forward(this.plan.chunkIds, this.chunkStart, true));
        }
        if (this.plan.debugState) debugState = debugStateOf(logits, await engine.cache(), engine.info.dtype);
        const decoded = await this.guard(
          decodeGreedy(engine, first, this.plan.boundaries.at(-1)!, {
            maxNewTokens: this.plan.maxNewTokens,
            eosTokenIds: this.env.eosTokenIds,
            // A failed (or cancelled) run stops decoding at the next token, not after the last.
            onToken: (token, index) => {
              if (this.failure) throw this.failure;
              onToken(token, index);
            },
          }),
        );
        tokens = decoded.tokens;
      }
      await this.guard(this.outbox.drained());
      await this.guard(Promise.all([...this.links.values()].map((link) => link.finish())));
      return { ...this.report(tokens, null), debugState };
    } catch (err) {
      const failure = attributeFailure(err, this.env.rank);
      this.fail(failure);
      return this.report(tokens, failure);
    } finally {
      // The links have sent every frame (drained) or were aborted: nothing reads the blocks any more.
      engine.recycle(emitted.filter((b) => !this.recycled.has(b)));
      await engine.resetCache().catch(() => undefined);
      // The engine has dropped the pasts with its cache: the inbox's buffers can serve the next run.
      this.inbox?.release();
    }
  }

  private report(tokens: number[], failure: RunFailure | null): RankReport {
    const sum = (kinds: readonly string[]) =>
      this.spans.filter((s) => kinds.includes(s.kind)).reduce((t, s) => t + (s.endMs - s.startMs), 0);
    let bytesSent = 0;
    let framesSent = 0;
    for (const link of this.links.values()) {
      bytesSent += link.stats.bytesSent;
      framesSent += link.stats.framesSent;
    }
    const sends: LayerSend[] = this.outbox.records();
    // A link's busy time: from its first frame of a layer to its last, less the stretches in
    // between where it had sent all it was given (waiting for the predecessor or for own K/V).
    const sendSpans: Span[] = this.outbox
      .busySpans()
      .map((b) => ({ kind: SEND_KIND, layer: b.layer, startMs: b.startMs, endMs: b.endMs }));
    return {
      from: this.env.identity(this.plan.runId),
      error: failure?.message ?? '',
      ...(failure?.rank != null ? { errorRank: failure.rank } : {}),
      computeMs: sum(COMPUTE_KINDS),
      waitMs: sum([WAIT_KIND]),
      sendMs: unionLength(sendSpans),
      bytesSent,
      bytesReceived: this.inbox?.bytesReceived ?? 0,
      framesSent,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      spans: [...this.spans, ...sendSpans],
      tokens,
      startReceivedMs: this.startReceivedAt,
      finishedMs: now(),
      debugState: new Uint8Array(),
      sends,
      criticalSendMs: 0,
    };
  }
}

/** Time covered by at least one span: layers' sends overlap, and a link is busy once, not twice. */
export function unionLength(spans: readonly Span[]): number {
  const sorted = [...spans].sort((a, b) => a.startMs - b.startMs);
  let total = 0;
  let end = -Infinity;
  for (const s of sorted) {
    if (s.endMs <= end) continue;
    total += s.endMs - Math.max(s.startMs, end);
    end = s.endMs;
  }
  return total;
}

function debugStateOf(
  logits: Float32Array,
  cache: (KvBlock | null)[],
  dtype: 'float32' | 'float16',
): Uint8Array {
  const st = dtype === 'float32' ? 'F32' : 'F16';
  const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const tensors: Parameters<typeof encodeSafetensors>[0] = {
    logits: { dtype: 'F32', shape: [logits.length], data: bytes(logits) },
  };
  cache.forEach((block, l) => {
    if (!block) return;
    const shape = [block.tokens, block.key.length / Math.max(1, block.tokens)];
    Object.assign(tensors, {
      [`layers.${l}.key`]: { dtype: st, shape, data: bytes(block.key) },
      [`layers.${l}.value`]: { dtype: st, shape, data: bytes(block.value) },
    });
  });
  return encodeSafetensors(tensors);
}
