// Constants and limits of the rank protocol (proto/runahead/v1/rank.proto).
import type { ChannelOptions } from '@grpc/grpc-js';
import { DType, Mode } from './gen/runahead/v1/rank.ts';
import type { ModeName } from './api/v1alpha1/runahead-job.ts';

/** Bumped on any incompatible change to rank.proto or to what a field means. */
export const PROTOCOL_VERSION = 1;

export interface LinkLimits {
  /** Largest K+V payload of one frame; a layer is sent as several frames. */
  readonly maxFrameBytes: number;
  /** Frames queued per outgoing link before the producer waits (backpressure). */
  readonly maxQueuedFrames: number;
  /** Longest a rank waits for a peer (a frame, a Start, a report) before failing the run. */
  readonly peerTimeoutMs: number;
}

export const DEFAULT_LIMITS: LinkLimits = {
  maxFrameBytes: 1 << 20,
  maxQueuedFrames: 64,
  peerTimeoutMs: 30_000,
};

/**
 * HTTP/2 flow-control window (bytes) a rank's server grants each stream and its connection: how much
 * K/V may be in flight to it before the sender waits for the receiver to read. Chosen by measurement
 * (bench/results/link-h200-sweep.md, llama3-8b's K/V at 4096 tokens on the device host): links
 * speed up from 64 KiB (HTTP/2's default) through 1 and 4 MiB and level off from 16 MiB; 64 MiB
 * was no faster and lets a peer put four times as much into the receiver's memory.
 */
export const RECEIVE_WINDOW_BYTES = 16 << 20;

/**
 * How K/V travel between ranks: on a socket of their own beside gRPC (worker/chain/kv-socket.ts says
 * why), or on gRPC StreamKv calls. Every rank of a group takes both; the sender's setting decides.
 */
export const KV_TRANSPORTS = ['socket', 'grpc'] as const;
export type KvTransport = (typeof KV_TRANSPORTS)[number];

/** Room for a frame's header fields on top of its payload. */
const FRAME_OVERHEAD_BYTES = 4096;
/** Control messages (reports with timelines, a small model's debug state) are bounded apart from frames. */
export const MAX_CONTROL_MESSAGE_BYTES = 16 << 20;

/** The gRPC message limit: a whole frame, or the largest control message. Frame payloads are
 * checked against maxFrameBytes separately (frames.ts). */
export function maxMessageBytes(limits: LinkLimits): number {
  return Math.max(limits.maxFrameBytes + FRAME_OVERHEAD_BYTES, MAX_CONTROL_MESSAGE_BYTES);
}

/** gRPC channel and server options: message sizes bounded by the frame limit. */
export function grpcOptions(limits: LinkLimits): ChannelOptions {
  return {
    'grpc.max_receive_message_length': maxMessageBytes(limits),
    'grpc.max_send_message_length': maxMessageBytes(limits),
    'grpc.keepalive_time_ms': 10_000,
    'grpc.keepalive_timeout_ms': 5_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_time_between_pings_ms': 5_000,
    'grpc-node.max_session_memory': 64,
  };
}

export type { ModeName };

export const MODE_BY_NAME: Record<ModeName, Mode> = {
  single: Mode.MODE_SINGLE,
  runahead: Mode.MODE_RUNAHEAD,
  tsp: Mode.MODE_TSP,
};

export function modeName(mode: Mode): ModeName {
  switch (mode) {
    case Mode.MODE_SINGLE:
      return 'single';
    case Mode.MODE_RUNAHEAD:
      return 'runahead';
    case Mode.MODE_TSP:
      return 'tsp';
    default:
      throw new Error(`unknown mode ${mode}`);
  }
}

export function dtypeOf(name: 'float32' | 'float16'): DType {
  return name === 'float32' ? DType.DTYPE_FLOAT32 : DType.DTYPE_FLOAT16;
}

export function dtypeName(d: DType): string {
  return d === DType.DTYPE_FLOAT32 ? 'float32' : d === DType.DTYPE_FLOAT16 ? 'float16' : `unknown(${d})`;
}

export interface PeerIdentity {
  readonly protocolVersion: number;
  readonly modelFingerprint: string;
  readonly rank: number;
  readonly worldSize: number;
}

/** Why a peer must be refused, or null. */
export function identityProblem(mine: PeerIdentity, theirs: PeerIdentity): string | null {
  if (theirs.protocolVersion !== mine.protocolVersion) {
    return `protocol version mismatch: rank ${theirs.rank} speaks v${theirs.protocolVersion}, rank ${mine.rank} speaks v${mine.protocolVersion}`;
  }
  if (theirs.modelFingerprint !== mine.modelFingerprint) {
    return `model mismatch: rank ${theirs.rank} has model ${theirs.modelFingerprint}, rank ${mine.rank} has ${mine.modelFingerprint}`;
  }
  if (theirs.worldSize !== mine.worldSize) {
    return `world size mismatch: rank ${theirs.rank} is in a group of ${theirs.worldSize}, rank ${mine.rank} in one of ${mine.worldSize}`;
  }
  return null;
}
