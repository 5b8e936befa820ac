// One interface over the two ways the engine runs a graph: onnxruntime-node's `run()` (every output a
// new host array) and the ort_io addon's IO binding (outputs into buffers the engine reuses, or left
// on the device for the next graph). The engine says where each output should go; onnxruntime-node
// ignores it and returns host arrays, which the engine handles the same way.
import type { BuiltModel } from '../onnx/graph-builder.ts';
import type { HostArray } from '../model/tensor.ts';
import {
  configEntries,
  createSession,
  memPatternOf,
  type OrtTensor,
  type Session,
  type SessionSettings,
} from './ort.ts';
import { stageModel } from './weight-staging.ts';
import {
  NativeSession,
  nativeAvailable,
  type DeviceValue,
  type ElementType,
  type Feed,
  type OutputTarget,
} from './native-session.ts';

/** How the engine's graphs are run: onnxruntime-node, or the ort_io addon (IO binding). */
export type IoPath = 'onnxruntime-node' | 'native';

/** The default: the addon where it is built and the outputs cross from a GPU; else onnxruntime-node. */
export function defaultIoPath(ep: SessionSettings['ep']): IoPath {
  return ep === 'cuda' && nativeAvailable() ? 'native' : 'onnxruntime-node';
}

/** A tensor in host memory (an onnxruntime-node Tensor is one). */
export interface HostValue {
  readonly type: string;
  readonly dims: readonly number[];
  readonly data: unknown;
}

export type GraphValue = HostValue | DeviceValue;

/** Where an output goes: into a host array of its exact size, kept on the device, or a new host array. */
export type Placement = { readonly into: HostArray; readonly dims: readonly number[] } | 'device' | 'host';

export function isHostValue(v: GraphValue): v is HostValue {
  return 'data' in v;
}

export interface GraphSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly io: IoPath;
  run(
    feeds: Readonly<Record<string, GraphValue>>,
    fetches: readonly string[],
    placement: (name: string) => Placement,
  ): Promise<Record<string, GraphValue>>;
  release(): Promise<void>;
}

class OnnxruntimeNodeSession implements GraphSession {
  readonly io = 'onnxruntime-node';
  private readonly session: Session;

  constructor(session: Session) {
    this.session = session;
  }

  get inputNames() {
    return this.session.inputNames;
  }

  get outputNames() {
    return this.session.outputNames;
  }

  async run(feeds: Readonly<Record<string, GraphValue>>, fetches: readonly string[]) {
    return (await this.session.run(feeds as Record<string, OrtTensor>, [...fetches])) as Record<
      string,
      GraphValue
    >;
  }

  release() {
    return this.session.release();
  }
}

/** Element types the engine feeds and fetches, by their onnxruntime-node names. */
const ELEMENT_TYPE: Readonly<Record<string, ElementType>> = {
  float32: 'float32',
  float16: 'float16',
  int64: 'int64',
  int32: 'int32',
};

function elementType(name: string, t: string): ElementType {
  const type = ELEMENT_TYPE[t];
  if (!type) throw new Error(`${name}: element type ${t} cannot cross the ort_io addon`);
  return type;
}

class AddonSession implements GraphSession {
  readonly io = 'native';
  private readonly session: NativeSession;

  constructor(session: NativeSession) {
    this.session = session;
  }

  get inputNames() {
    return this.session.inputNames;
  }

  get outputNames() {
    return this.session.outputNames;
  }

  run(
    feeds: Readonly<Record<string, GraphValue>>,
    fetches: readonly string[],
    placement: (name: string) => Placement,
  ): Promise<Record<string, GraphValue>> {
    const nativeFeeds: Record<string, Feed> = {};
    for (const [name, v] of Object.entries(feeds)) {
      nativeFeeds[name] = isHostValue(v)
        ? { type: elementType(name, v.type), dims: v.dims, data: v.data as HostArray }
        : v;
    }
    const outputs: Record<string, OutputTarget> = {};
    for (const name of fetches) {
      const where = placement(name);
      outputs[name] =
        where === 'device'
          ? { device: true }
          : where === 'host'
            ? undefined
            : {
                into: {
                  type: where.into instanceof Float32Array ? 'float32' : 'float16',
                  dims: where.dims,
                  data: where.into,
                },
              };
    }
    return Promise.resolve(this.session.run(nativeFeeds, outputs) as Record<string, GraphValue>);
  }

  release() {
    this.session.release();
    return Promise.resolve();
  }
}

/** A session for one of the engine's graphs, on the IO path asked for. */
export async function createGraphSession(
  model: BuiltModel,
  settings: SessionSettings,
  io: IoPath,
): Promise<GraphSession> {
  if (io === 'onnxruntime-node') return new OnnxruntimeNodeSession(await createSession(model, settings));
  const staged = await stageModel(model);
  try {
    const session = NativeSession.create(staged ? staged.path : model.bytes, {
      ep: settings.ep === 'cuda' ? 'cuda' : 'cpu',
      deviceId: settings.deviceId,
      threads: settings.threads,
      graphOptimization: settings.graphOptimization ?? 'all',
      memPattern: memPatternOf(settings),
      cpuArena: settings.cpuArena ?? false,
      config: configEntries(settings),
      externalData: staged ? [] : model.externalData,
    });
    return new AddonSession(session);
  } finally {
    await staged?.remove();
  }
}
