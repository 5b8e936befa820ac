// What a K/V link writes its frames with (kv-link.ts drives it): a K/V socket (kv-socket.ts) or a
// StreamKv call (grpc-frame-writer.ts).
import type { KvFrame, KvStreamSummary } from '../../core/gen/runahead/v1/rank.ts';

export class LinkError extends Error {
  override readonly name = 'LinkError';
}

export interface LinkStats {
  framesSent: number;
  bytesSent: number;
  /** Per layer: first frame handed to the writer → last frame flushed, epoch ms. */
  readonly sendSpans: Map<number, { start: number; end: number }>;
}

/** One direction of a link's connection, as KvLink drives it. */
export interface KvFrameWriter {
  /**
   * Settles once frames may be written (connected, hello sent); rejects when that cannot happen.
   * null: frames may be written now.
   */
  readonly ready: Promise<void> | null;
  /**
   * Write one frame. `released`: nothing reads the frame's arrays any more (copied, or handed to the
   * kernel); `sent`: flushed. Returns false when the caller should wait for onceDrain.
   */
  write(frame: KvFrame, released: () => void, sent: () => void): boolean;
  onceDrain(cb: () => void): void;
  /** No more frames. */
  end(): void;
  /** The receiver's summary once it has every frame; rejects (LinkError) when the link fails. */
  readonly summary: Promise<KvStreamSummary>;
  /** Drop the connection. */
  cancel(): void;
}
