// What `runahead bench link` measures, as data: the K/V geometry, the paths, the link settings and
// the list of trials the benchmark runs in order. Pure; the processes and sockets are in
// link-bench.ts (orchestrator), link-sender.ts and link-receiver.ts (the two rank processes).
import { z } from 'zod';
import { dtypeOf } from '../../core/protocol.ts';
import { tokensPerFrame, type KvGeometry } from '../../worker/chain/frames.ts';

/**
 * socket / socket-tls: the chain's K/V link as ranks use it by default (worker/chain/kv-socket.ts),
 * plain and with mutual TLS. grpc / grpc-tls: the same over StreamKv calls (`--kv-transport grpc`).
 * tcp: a raw socket between the
 * same two processes. memcpy: the same bytes copied inside one process into fresh memory (as every
 * receiver writes into buffers made for the run); memcpy-warm: into memory already written; crc32:
 * one pass of the frames' checksum over them (each end of the gRPC link makes one).
 */
export const LINK_PATHS = [
  'socket',
  'socket-tls',
  'grpc',
  'grpc-tls',
  'tcp',
  'memcpy',
  'memcpy-warm',
  'crc32',
] as const;
export type LinkPath = (typeof LINK_PATHS)[number];
/** Paths that cross between the two processes. */
export const CROSSING: ReadonlySet<LinkPath> = new Set<LinkPath>([
  'socket',
  'socket-tls',
  'grpc',
  'grpc-tls',
  'tcp',
]);
/** Paths that run the chain's code on both ends (frame checks, CRC-32, the inbox). */
export const CHAIN_PATHS: ReadonlySet<LinkPath> = new Set<LinkPath>([
  'socket',
  'socket-tls',
  'grpc',
  'grpc-tls',
]);
/** Paths with mutual TLS. */
export const TLS_PATHS: ReadonlySet<LinkPath> = new Set<LinkPath>(['socket-tls', 'grpc-tls']);

export interface KvShape {
  readonly kvHeads: number;
  readonly headDim: number;
  readonly tokens: number;
  readonly layers: number;
  readonly dtype: 'float16' | 'float32';
}

/** Link settings of one trial: the frame limit and the receiver's HTTP/2 window. */
export interface LinkSettings {
  readonly frameBytes: number;
  readonly windowBytes: number;
}

export interface Trial extends LinkSettings {
  readonly path: LinkPath;
  /** Whether the trial belongs to the frame-size × window sweep rather than the main table. */
  readonly sweep: boolean;
  readonly repeat: number;
  readonly warmup: boolean;
}

export interface LinkPlanSpec {
  readonly shape: KvShape;
  readonly paths: readonly LinkPath[];
  readonly main: LinkSettings;
  readonly sweepFrameBytes: readonly number[];
  readonly sweepWindows: readonly number[];
  readonly repeats: number;
  readonly warmup: number;
}

export const bytesPerElement = (s: KvShape): number => (s.dtype === 'float32' ? 4 : 2);

/** The chain's view of the shape: what frames and hellos carry. */
export function geometryOf(s: KvShape): KvGeometry {
  return {
    dtype: dtypeOf(s.dtype),
    kvHeads: s.kvHeads,
    headDim: s.headDim,
    bytesPerElement: bytesPerElement(s),
  };
}

/** Bytes of K (or of V) of one token of one layer. */
export const rowBytes = (s: KvShape): number => s.kvHeads * s.headDim * bytesPerElement(s);
/** Bytes one transfer moves: every layer's K and V of every token. */
export const transferBytes = (s: KvShape): number => s.layers * 2 * s.tokens * rowBytes(s);

/** Frames of one transfer, cut as the chain cuts them (frames.ts). */
export function framesPerTransfer(s: KvShape, frameBytes: number): number {
  return s.layers * Math.ceil(s.tokens / tokensPerFrame(geometryOf(s), frameBytes));
}

/**
 * Every trial in the order it runs: per path (and per sweep point) warm-up runs, then the measured
 * ones, so that a path's repeats are measured on one warm connection.
 */
export function planTrials(spec: LinkPlanSpec): Trial[] {
  const trials: Trial[] = [];
  const add = (path: LinkPath, settings: LinkSettings, sweep: boolean) => {
    for (let i = 0; i < spec.warmup + spec.repeats; i++) {
      trials.push({ path, ...settings, sweep, repeat: i - spec.warmup, warmup: i < spec.warmup });
    }
  };
  for (const path of spec.paths) add(path, spec.main, false);
  for (const frameBytes of spec.sweepFrameBytes) {
    for (const windowBytes of spec.sweepWindows) add('grpc', { frameBytes, windowBytes }, true);
  }
  return trials;
}

const positiveList = (flag: string) =>
  z
    .string()
    .transform((s) => (s.trim() === '' ? [] : s.split(',').map((x) => Number(x.trim()))))
    .refine(
      (xs) => xs.every((x) => Number.isInteger(x) && x > 0),
      `${flag} must be a comma-separated list of positive integers`,
    );

const positive = (flag: string) =>
  z.coerce.number().int(`${flag} must be an integer`).positive(`${flag} must be positive`);

/** HTTP/2 allows windows up to 2^31 − 1 bytes. */
const MAX_WINDOW = 2 ** 31 - 1;

export const LinkFlags = z
  .object({
    kvHeads: positive('--kv-heads'),
    headDim: positive('--head-dim'),
    tokens: positive('--tokens'),
    layers: positive('--layers'),
    dtype: z.enum(['float16', 'float32'], { error: '--dtype must be float16 or float32' }),
    paths: z
      .string()
      .transform((s) => s.split(',').map((x) => x.trim()))
      .refine(
        (xs) => xs.length > 0 && xs.every((x) => (LINK_PATHS as readonly string[]).includes(x)),
        `--paths must be a comma-separated subset of ${LINK_PATHS.join(',')}`,
      )
      .transform((xs) => LINK_PATHS.filter((p) => xs.includes(p))),
    frameBytes: positive('--frame-bytes'),
    window: positive('--window').max(MAX_WINDOW, `--window must be at most ${MAX_WINDOW}`),
    sweepFrameBytes: positiveList('--sweep-frame-bytes'),
    sweepWindows: positiveList('--sweep-windows').refine(
      (xs) => xs.every((x) => x <= MAX_WINDOW),
      `--sweep-windows must be at most ${MAX_WINDOW}`,
    ),
    repeats: positive('--repeats'),
    warmup: z.coerce.number().int().min(0, '--warmup must be ≥ 0'),
    timeoutMs: positive('--timeout-ms'),
    tlsCert: z.string().optional(),
    tlsKey: z.string().optional(),
    tlsCa: z.string().optional(),
    out: z.string().optional(),
    jsonOut: z.string().optional(),
    json: z.boolean().default(false),
  })
  .refine(
    (f) => [f.tlsCert, f.tlsKey, f.tlsCa].every((x) => x === undefined) || (f.tlsCert && f.tlsKey && f.tlsCa),
    '--tls-cert, --tls-key and --tls-ca go together',
  )
  .refine(
    (f) => (f.sweepFrameBytes.length === 0) === (f.sweepWindows.length === 0),
    '--sweep-frame-bytes and --sweep-windows go together (the sweep is their grid)',
  )
  .refine((f) => {
    const token = 2 * rowBytes(f);
    return [f.frameBytes, ...f.sweepFrameBytes].every((b) => b >= token);
  }, '--frame-bytes and --sweep-frame-bytes must hold at least one token’s K and V (2 × kv-heads × head-dim × dtype bytes)');
export type LinkFlags = z.infer<typeof LinkFlags>;

export function planSpec(f: LinkFlags): LinkPlanSpec {
  return {
    shape: { kvHeads: f.kvHeads, headDim: f.headDim, tokens: f.tokens, layers: f.layers, dtype: f.dtype },
    paths: f.paths,
    main: { frameBytes: f.frameBytes, windowBytes: f.window },
    sweepFrameBytes: f.sweepFrameBytes,
    sweepWindows: f.sweepWindows,
    repeats: f.repeats,
    warmup: f.warmup,
  };
}
