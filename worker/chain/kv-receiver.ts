// The receiving end of one K/V link: a StreamKv call from a peer. The first message is a hello that
// names the sender, its run and the geometry of what it sends; every later message is a frame, which
// the run checks, keeps and (KV-Runahead) forwards before the next one is read — the call is paused
// meanwhile, so HTTP/2 flow control holds the sender back instead of frames piling up here.
//
//   hello ──(hello accepted, run found)──▶ frames ──────(end / error / cancel)──────▶ closed
//     │                                      │                                          ▲
//     └──(refused: bad hello, no run)──▶ answered ◀──(refused: bad frame, 2nd hello)     │
//                                            └──────────(end / error / cancel)───────────┘
//
// A refusal fails the run (when the stream already belongs to one), answers the call with a status
// that says why and drops it; what the sender writes after that is ignored. However the call ends,
// the run hears that this sender's stream closed, so that a stream that ends early is an error.
import { status, type ServerReadableStream, type ServiceError, type sendUnaryData } from '@grpc/grpc-js';
import type {
  Identity,
  KvFrame,
  KvHello,
  KvMessage,
  KvStreamSummary,
} from '../../core/gen/runahead/v1/rank.ts';
import { FrameError, type KvGeometry } from './frames.ts';
import { grpcError } from './grpc-error.ts';

/** What a K/V stream delivers into: one rank's part of one run (RankRun). */
export interface KvSink {
  /** Whether `rank` sends K/V to this rank in this run. */
  expectsFrom(rank: number): boolean;
  /** Check and keep one frame; rejects (a FrameError for an unusable frame) to end the stream. */
  onFrame(fromRank: number, frame: KvFrame): Promise<void>;
  /** The sender's stream ended: cleanly (`cause` null) or not. */
  onStreamClosed(fromRank: number, cause: string | null): void;
}

/** What the receiver needs from the rank that serves the stream. */
export interface KvReceiverContext<S extends KvSink> {
  readonly rank: number;
  /** What every K/V stream to this rank must agree with. */
  readonly geometry: KvGeometry;
  readonly numLayers: number;
  /** The sender's identity if it matches this rank's group, model and protocol; throws otherwise. */
  checkIdentity(from: Identity | undefined): Identity;
  /** The run a stream belongs to; a stream may come before its Start, so this may wait (and reject). */
  runFor(runId: string): Promise<S>;
  /** The stream broke `run`: stop it and tell the coordinator. */
  failRun(run: S, err: Error): void;
}

/** How the receiver answers the call. */
export interface KvReply {
  /** The call's one answer: the summary, or the error that ended the stream. */
  answer(err: ServiceError | null, summary: KvStreamSummary): void;
  /** Drop the call after a refusal, so that the sender stops writing. */
  hangUp(): void;
}

export type ReceiverState<S> =
  /** Nothing read yet: the first message must be a hello. */
  | { readonly phase: 'hello' }
  /** Frames from rank `from` go into `run`. */
  | { readonly phase: 'frames'; readonly run: S; readonly from: number }
  /** The call has its answer; `run` (null if the stream never got one) still hears when it closes. */
  | { readonly phase: 'answered'; readonly run: S | null; readonly from: number }
  /** The call is over (gRPC reports the end of a call more than once: end, then cancelled). */
  | { readonly phase: 'closed' };

export class KvReceiver<S extends KvSink> {
  private readonly ctx: KvReceiverContext<S>;
  private readonly reply: KvReply;
  private current: ReceiverState<S> = { phase: 'hello' };
  private frames = 0;
  private bytes = 0;

  constructor(ctx: KvReceiverContext<S>, reply: KvReply) {
    this.ctx = ctx;
    this.reply = reply;
  }

  get state(): ReceiverState<S> {
    return this.current;
  }

  /** What was received so far. */
  get summary(): KvStreamSummary {
    return { frames: this.frames, bytes: this.bytes };
  }

  /** Handle one message; call again only once the previous call has settled. Never rejects. */
  async receive(message: KvMessage): Promise<void> {
    if (this.current.phase === 'answered' || this.current.phase === 'closed') return;
    try {
      await this.handle(message);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.refuse(e instanceof FrameError ? status.DATA_LOSS : status.ABORTED, e);
    }
  }

  private async handle(message: KvMessage): Promise<void> {
    const s = this.current;
    const body = message.body;
    if (s.phase === 'hello') {
      if (body?.$case !== 'hello') {
        this.refuse(status.INVALID_ARGUMENT, new FrameError('a KV stream must start with a hello'));
        return;
      }
      return this.open(body.value);
    }
    if (s.phase !== 'frames') return;
    if (body?.$case !== 'frame') {
      this.refuse(
        status.INVALID_ARGUMENT,
        new FrameError(
          `rank ${s.from} sent a second hello or an empty message: a KV stream is one hello, then frames`,
        ),
      );
      return;
    }
    await s.run.onFrame(s.from, body.value);
    this.frames++;
    this.bytes += body.value.key.byteLength + body.value.value.byteLength;
  }

  private async open(hello: KvHello): Promise<void> {
    let identity: Identity;
    try {
      identity = this.ctx.checkIdentity(hello.from);
    } catch (err) {
      this.refuse(status.FAILED_PRECONDITION, err as Error);
      return;
    }
    const { rank, geometry: g, numLayers } = this.ctx;
    if (
      hello.toRank !== rank ||
      hello.dtype !== g.dtype ||
      hello.kvHeads !== g.kvHeads ||
      hello.headDim !== g.headDim ||
      hello.numLayers !== numLayers
    ) {
      this.refuse(
        status.FAILED_PRECONDITION,
        new FrameError(
          `rank ${identity.rank} opened a KV stream for rank ${hello.toRank} with ${hello.numLayers} layers × [${hello.kvHeads}, ${hello.headDim}] dtype ${hello.dtype}; rank ${rank} has ${numLayers} × [${g.kvHeads}, ${g.headDim}] dtype ${g.dtype}`,
        ),
      );
      return;
    }
    const run = await this.ctx.runFor(identity.runId);
    this.current = { phase: 'frames', run, from: identity.rank };
    if (!run.expectsFrom(identity.rank))
      this.refuse(
        status.FAILED_PRECONDITION,
        new FrameError(`rank ${identity.rank} is not a K/V source of rank ${rank} in this run`),
      );
  }

  private refuse(code: status, err: Error): void {
    const s = this.current;
    if (s.phase === 'frames') this.ctx.failRun(s.run, err);
    this.answer(grpcError(code, err.message));
    this.reply.hangUp();
  }

  /**
   * The call ended: the sender closed it (`cause` null, `err` null), or it failed or was cancelled.
   * The first report counts; the run hears of it once.
   */
  closed(cause: string | null, err: ServiceError | null): void {
    const s = this.current;
    if (s.phase === 'closed') return;
    if (s.phase !== 'hello') s.run?.onStreamClosed(s.from, cause);
    this.answer(err);
    this.current = { phase: 'closed' };
  }

  private answer(err: ServiceError | null): void {
    const s = this.current;
    if (s.phase === 'answered' || s.phase === 'closed') return;
    this.current =
      s.phase === 'frames'
        ? { phase: 'answered', run: s.run, from: s.from }
        : { phase: 'answered', run: null, from: -1 };
    this.reply.answer(err, this.summary);
  }
}

/** Serve one StreamKv call: messages are handled one at a time, the call paused meanwhile. */
export function serveKvStream<S extends KvSink>(
  call: ServerReadableStream<KvMessage, KvStreamSummary>,
  callback: sendUnaryData<KvStreamSummary>,
  ctx: KvReceiverContext<S>,
): KvReceiver<S> {
  const receiver = new KvReceiver(ctx, {
    answer: (err, summary) => {
      if (err) callback(err);
      else callback(null, summary);
    },
    hangUp: () => call.destroy(),
  });
  let chain: Promise<void> = Promise.resolve();
  const afterMessages = (fn: () => void) => void chain.then(fn);
  call.on('data', (message: KvMessage) => {
    call.pause();
    chain = chain.then(() => receiver.receive(message)).finally(() => call.resume());
  });
  call.on('end', () => {
    afterMessages(() => {
      receiver.closed(null, null);
    });
  });
  call.on('error', (err: Error) => {
    afterMessages(() => {
      receiver.closed(err.message.replace(/^\d+ [A-Z_]+: /, ''), grpcError(status.CANCELLED, err.message));
    });
  });
  call.on('cancelled', () => {
    afterMessages(() => {
      receiver.closed(
        'cancelled by the sender, or by gRPC for a message over the size limit',
        grpcError(status.CANCELLED, 'cancelled'),
      );
    });
  });
  return receiver;
}
