// onnxruntime sessions through the ort_io addon (worker/native/ort_io.c): IO binding that
// onnxruntime-node 1.29 lacks. Outputs can be written into host buffers the caller keeps — pinned and
// reused, so K/V leave the GPU at PCIe speed instead of paying fresh host pages on every run
// (bench/results/h200-egress.md) — or stay on the device as values that later runs take as inputs.
// It drives the same libonnxruntime.so.1 as onnxruntime-node (and the CUDA provider beside it).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Element types the addon moves (onnxruntime's ONNXTensorElementDataType codes). */
export const ELEMENT_TYPES = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float16: 10 } as const;
export type ElementType = keyof typeof ELEMENT_TYPES;
const TYPE_NAMES = new Map<number, ElementType>(
  Object.entries(ELEMENT_TYPES).map(([name, code]) => [code, name as ElementType]),
);
const ELEMENT_BYTES: Record<ElementType, number> = {
  float32: 4,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  float16: 2,
};

/** Host data of a tensor: float16 as its bit pattern (Uint16Array). */
export type NativeData = Float32Array | Uint16Array | Uint8Array | Int8Array | Int32Array | BigInt64Array;

export interface HostTensorSpec {
  readonly type: ElementType;
  readonly dims: readonly number[];
  readonly data: NativeData;
}

/** A value onnxruntime holds on the device; feed it to a later run of any session on that device. */
export interface DeviceValue {
  readonly type: ElementType;
  readonly dims: readonly number[];
  /** Frees the device memory now instead of when the value is garbage-collected. */
  release(): void;
}

export type Feed = HostTensorSpec | DeviceValue;

/** Where an output goes: into a host tensor the caller keeps, to the device, or (absent) a new host array. */
export type OutputTarget = { readonly into: HostTensorSpec } | { readonly device: true } | undefined;

export type NativeOutput =
  { readonly type: ElementType; readonly dims: readonly number[]; readonly data: NativeData } | DeviceValue;

export interface NativeSessionOptions {
  readonly ep: 'cpu' | 'cuda';
  readonly deviceId?: number;
  /** Intra-op threads; 0 lets onnxruntime choose. */
  readonly threads?: number;
  readonly graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  readonly memPattern?: boolean;
  readonly cpuArena?: boolean;
  readonly config?: Readonly<Record<string, string>>;
  /** External data files by the name the model refers to them with (kept for the call only). */
  readonly externalData?: readonly { readonly path: string; readonly data: Uint8Array }[];
}

const OPTIMIZATION = { disabled: 0, basic: 1, extended: 2, all: 99 } as const;

interface Addon {
  init(libPath: string): { apiVersion: number };
  createSession(model: Uint8Array | string, options: object): unknown;
  sessionNames(session: unknown): { inputs: string[]; outputs: string[] };
  run(
    session: unknown,
    feeds: object[],
    outputs: object[],
  ): { name: string; type: number; dims: number[]; data?: ArrayBuffer; value?: unknown }[];
  allocHost(bytes: number): { buffer: ArrayBuffer; pinned: boolean };
  pinHost(view: Uint8Array, pin: boolean): boolean;
  copyBytes(dst: Uint8Array, src: Uint8Array): void;
  releaseSession(session: unknown): void;
  releaseValue(value: unknown): void;
}

/** How to get the addon where it is missing. */
export const NATIVE_HELP = 'build it with `make native` (scripts/build-native.sh: gcc and node-api-headers)';

export class NativeAddonError extends Error {
  override readonly name = 'NativeAddonError';
}

/** build/native/ort_io.node at the project root, or RUNAHEAD_ORT_IO. */
export function addonPath(): string {
  const fromEnv = process.env.RUNAHEAD_ORT_IO;
  if (fromEnv) return resolve(fromEnv);
  // worker/runtime/ (source) or dist/worker/runtime/ (build): the root is where package.json is.
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return join(dir, 'build', 'native', 'ort_io.node');
}

/** The libonnxruntime.so.1 that onnxruntime-node ships (and loads). */
function onnxruntimeLibrary(): string {
  const require = createRequire(import.meta.url);
  const root = dirname(dirname(require.resolve('onnxruntime-node')));
  return join(root, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime.so.1');
}

let loaded: Addon | null = null;
let initialized = false;

/** The addon, loaded; onnxruntime not yet (copyBytes needs none). */
function bareAddon(): Addon {
  if (loaded) return loaded;
  const path = addonPath();
  if (!existsSync(path)) throw new NativeAddonError(`the ort_io addon is missing at ${path}: ${NATIVE_HELP}`);
  const module = { exports: {} as Addon };
  process.dlopen(module, path);
  loaded = module.exports;
  return loaded;
}

function addon(): Addon {
  const a = bareAddon();
  if (!initialized) {
    a.init(onnxruntimeLibrary());
    initialized = true;
  }
  return a;
}

let memmove: ((dst: Uint8Array, src: Uint8Array) => void) | null | undefined;

/**
 * `src` into `dst` (same length) with memmove where the addon is built, else with Buffer#copy —
 * which V8 does element by element with relaxed atomics when either side is a SharedArrayBuffer
 * (2.7 against 10+ GB/s on the development VM).
 */
export function copyBytes(dst: Uint8Array, src: Uint8Array): void {
  if (memmove === undefined) {
    try {
      const a = bareAddon();
      memmove = (d, s) => {
        a.copyBytes(d, s);
      };
    } catch {
      memmove = null;
    }
  }
  if (memmove) memmove(dst, src);
  else
    Buffer.from(src.buffer, src.byteOffset, src.byteLength).copy(
      Buffer.from(dst.buffer, dst.byteOffset, dst.byteLength),
    );
}

/** Whether the addon is built here (the engine falls back to onnxruntime-node without it). */
export function nativeAvailable(): boolean {
  return existsSync(addonPath());
}

/**
 * A host buffer for outputs and inputs that are reused run after run: page-locked (cudaHostAlloc) once
 * a CUDA session exists in the process, so copies to and from the GPU run at full speed; plain aligned
 * memory otherwise.
 */
export function allocHost(bytes: number): { readonly buffer: ArrayBuffer; readonly pinned: boolean } {
  if (!Number.isInteger(bytes) || bytes <= 0)
    throw new RangeError(`allocHost: ${bytes} is not a positive size`);
  return addon().allocHost(bytes);
}

/**
 * Page-locks (or unlocks) memory JavaScript owns — a SharedArrayBuffer both threads of a rank use —
 * with cudaHostRegister once a CUDA session exists; false where there is no CUDA (nothing to do). The
 * caller unpins before dropping the memory (kv-buffer-pool.ts does).
 */
export function pinHost(view: Uint8Array, pin: boolean): boolean {
  return addon().pinHost(view, pin);
}

export function elementBytes(type: ElementType): number {
  return ELEMENT_BYTES[type];
}

function viewOf(type: ElementType, buffer: ArrayBuffer): NativeData {
  switch (type) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float16':
      return new Uint16Array(buffer);
    case 'uint8':
      return new Uint8Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
  }
}

function hostSpec(name: string, t: HostTensorSpec): object {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== count)
    throw new RangeError(
      `${name}: shape [${t.dims.join(', ')}] needs ${count} elements, got ${t.data.length}`,
    );
  return { name, type: ELEMENT_TYPES[t.type], dims: t.dims, data: t.data };
}

class NativeDeviceValue implements DeviceValue {
  readonly type: ElementType;
  readonly dims: readonly number[];
  readonly handle: unknown;

  constructor(type: ElementType, dims: readonly number[], handle: unknown) {
    this.type = type;
    this.dims = dims;
    this.handle = handle;
  }

  release(): void {
    addon().releaseValue(this.handle);
  }
}

export class NativeSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  private readonly handle: unknown;

  private constructor(handle: unknown) {
    this.handle = handle;
    const names = addon().sessionNames(handle);
    this.inputNames = names.inputs;
    this.outputNames = names.outputs;
  }

  /** A session from a model file (external data beside it) or the model's bytes. */
  static create(model: string | Uint8Array, options: NativeSessionOptions): NativeSession {
    const handle = addon().createSession(model, {
      ep: options.ep,
      deviceId: options.deviceId ?? 0,
      threads: options.threads ?? 0,
      optimization: OPTIMIZATION[options.graphOptimization ?? 'all'],
      memPattern: options.memPattern ?? options.ep === 'cpu',
      cpuArena: options.cpuArena ?? false,
      config: Object.entries(options.config ?? {}),
      externalData: (options.externalData ?? []).map(({ path, data }) => [path, data]),
    });
    return new NativeSession(handle);
  }

  /** One synchronous run (call it from a worker thread): every output named in `outputs` comes back. */
  run(
    feeds: Readonly<Record<string, Feed>>,
    outputs: Readonly<Record<string, OutputTarget>>,
  ): Record<string, NativeOutput> {
    const feedSpecs = Object.entries(feeds).map(([name, f]) =>
      f instanceof NativeDeviceValue ? { name, value: f.handle } : hostSpec(name, f as HostTensorSpec),
    );
    const outputSpecs = Object.entries(outputs).map(([name, target]) =>
      target && 'into' in target
        ? { name, into: hostSpec(name, target.into) }
        : target && 'device' in target
          ? { name, device: true }
          : { name },
    );
    const results = addon().run(this.handle, feedSpecs, outputSpecs);
    const out: Record<string, NativeOutput> = {};
    for (const r of results) {
      const type = TYPE_NAMES.get(r.type);
      if (!type) throw new NativeAddonError(`${r.name}: element type ${r.type} is not supported`);
      const target = outputs[r.name];
      if (r.value !== undefined) out[r.name] = new NativeDeviceValue(type, r.dims, r.value);
      else if (target && 'into' in target) out[r.name] = { type, dims: r.dims, data: target.into.data };
      else out[r.name] = { type, dims: r.dims, data: viewOf(type, r.data!) };
    }
    return out;
  }

  release(): void {
    addon().releaseSession(this.handle);
  }
}
