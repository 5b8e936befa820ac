// A small typed builder for ONNX graphs. The model code (llama-graphs.ts) reads like the forward
// pass; this file knows the protobuf shapes. Values are named strings, as in ONNX itself.
import {
  type AttributeProto,
  AttributeProto_AttributeType,
  ModelProto,
  TensorProto_DataType,
  TensorProto_DataLocation,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './gen/onnx/onnx_subset.ts';

export type TensorDType = 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int8' | 'bool';

const ONNX_DTYPE: Record<TensorDType, number> = {
  float32: TensorProto_DataType.FLOAT,
  float16: TensorProto_DataType.FLOAT16,
  bfloat16: TensorProto_DataType.BFLOAT16,
  int64: TensorProto_DataType.INT64,
  int32: TensorProto_DataType.INT32,
  int8: TensorProto_DataType.INT8,
  bool: TensorProto_DataType.BOOL,
};

export function onnxDType(dtype: TensorDType): number {
  return ONNX_DTYPE[dtype];
}

/** A dimension: a fixed size, or a symbolic name shared by inputs that must agree. */
export type Dim = number | string;

/** Attribute values, tagged so that 1 (int) and 1.0 (float) cannot be confused. */
export type Attr =
  | { readonly int: number }
  | { readonly float: number }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly string: string };

export const int = (value: number): Attr => ({ int: value });
export const float = (value: number): Attr => ({ float: value });
export const ints = (values: readonly number[]): Attr => ({ ints: values });

function toAttribute(name: string, value: Attr): AttributeProto {
  const proto: AttributeProto = {
    name,
    type: AttributeProto_AttributeType.UNDEFINED,
    f: 0,
    i: 0,
    s: new Uint8Array(),
    floats: [],
    ints: [],
  };
  if ('int' in value) {
    proto.type = AttributeProto_AttributeType.INT;
    proto.i = value.int;
  } else if ('float' in value) {
    proto.type = AttributeProto_AttributeType.FLOAT;
    proto.f = value.float;
  } else if ('ints' in value) {
    proto.type = AttributeProto_AttributeType.INTS;
    proto.ints = [...value.ints];
  } else if ('floats' in value) {
    proto.type = AttributeProto_AttributeType.FLOATS;
    proto.floats = [...value.floats];
  } else {
    proto.type = AttributeProto_AttributeType.STRING;
    proto.s = new TextEncoder().encode(value.string);
  }
  return proto;
}

function valueInfo(name: string, dtype: TensorDType, dims: readonly Dim[]): ValueInfoProto {
  return {
    name,
    type: {
      value: {
        $case: 'tensorType',
        value: {
          elemType: onnxDType(dtype),
          shape: {
            dim: dims.map((d) =>
              typeof d === 'number'
                ? { value: { $case: 'dimValue', value: d } }
                : { value: { $case: 'dimParam', value: d } },
            ),
          },
        },
      },
    },
  };
}

function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A serialized model and the bytes of its external initializers, keyed by the location the model
 * names (onnxruntime-node's `externalData` session option takes exactly this).
 */
export interface BuiltModel {
  readonly bytes: Uint8Array;
  readonly externalData: readonly { readonly path: string; readonly data: Uint8Array }[];
}

/**
 * Initializers at least this large stay outside the protobuf: they are handed to onnxruntime as
 * views of the arrays that hold them, never copied into the model bytes (whose 2 GB limit a 7B
 * model's layers would pass).
 */
const EXTERNAL_MIN_BYTES = 4096;

/** Opset of the default ONNX domain: 17 is supported by every execution provider we target. */
export const DEFAULT_OPSET = 17;
const IR_VERSION = 8;

export class GraphBuilder {
  private readonly nodes: NodeProto[] = [];
  private readonly initializers: TensorProto[] = [];
  private readonly inputs: ValueInfoProto[] = [];
  private readonly outputs: ValueInfoProto[] = [];
  private readonly usedNames = new Set<string>();
  private readonly external: { path: string; data: Uint8Array }[] = [];
  private counter = 0;
  private readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  private fresh(hint: string): string {
    let candidate = hint;
    while (this.usedNames.has(candidate)) candidate = `${hint}_${++this.counter}`;
    this.usedNames.add(candidate);
    return candidate;
  }

  input(name: string, dtype: TensorDType, dims: readonly Dim[]): string {
    if (this.usedNames.has(name)) throw new Error(`graph ${this.name}: duplicate value name ${name}`);
    this.usedNames.add(name);
    this.inputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  output(value: string, name: string, dtype: TensorDType, dims: readonly Dim[]): void {
    const outName = value === name ? name : this.node('Identity', [value], {}, name);
    this.outputs.push(valueInfo(outName, dtype, dims));
  }

  /** A constant tensor stored in the graph (weights, small shape vectors). */
  initializer(name: string, dtype: TensorDType, dims: readonly number[], data: ArrayBufferView): string {
    const expected = dims.reduce((a, b) => a * b, 1) * bytesPerElement(dtype);
    if (data.byteLength !== expected) {
      throw new Error(
        `graph ${this.name}: initializer ${name} has ${data.byteLength} bytes, shape [${dims.join(', ')}] ${dtype} needs ${expected}`,
      );
    }
    const unique = this.fresh(name);
    const bytes = bytesOf(data);
    const tensor: TensorProto = {
      name: unique,
      dims: [...dims],
      dataType: onnxDType(dtype),
      rawData: new Uint8Array(),
      externalData: [],
      dataLocation: TensorProto_DataLocation.DEFAULT,
    };
    if (bytes.byteLength >= EXTERNAL_MIN_BYTES) {
      const path = `w${this.external.length}.bin`;
      this.external.push({ path, data: bytes });
      tensor.dataLocation = TensorProto_DataLocation.EXTERNAL;
      tensor.externalData = [
        { key: 'location', value: path },
        { key: 'offset', value: '0' },
        { key: 'length', value: String(bytes.byteLength) },
      ];
    } else {
      tensor.rawData = bytes;
    }
    this.initializers.push(tensor);
    return unique;
  }

  int64s(name: string, values: readonly number[]): string {
    return this.initializer(name, 'int64', [values.length], BigInt64Array.from(values.map(BigInt)));
  }

  int64Scalar(name: string, value: number): string {
    return this.initializer(name, 'int64', [], BigInt64Array.of(BigInt(value)));
  }

  float32s(name: string, values: readonly number[] | Float32Array, dims?: readonly number[]): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    return this.initializer(name, 'float32', dims ?? [data.length], data);
  }

  /** One node with one output; returns the output's name. */
  node(
    opType: string,
    inputs: readonly string[],
    attrs: Readonly<Record<string, Attr>> = {},
    outputName?: string,
    domain = '',
  ): string {
    const [out] = this.nodeN(opType, inputs, 1, attrs, outputName ? [outputName] : undefined, domain);
    return out as string;
  }

  /** One node with several outputs. */
  nodeN(
    opType: string,
    inputs: readonly string[],
    outputCount: number,
    attrs: Readonly<Record<string, Attr>> = {},
    outputNames?: readonly string[],
    domain = '',
  ): string[] {
    const base = this.fresh(opType);
    const outputs = Array.from({ length: outputCount }, (_, i) => {
      const wanted = outputNames?.[i];
      if (wanted !== undefined) {
        if (this.usedNames.has(wanted)) throw new Error(`graph ${this.name}: duplicate value name ${wanted}`);
        this.usedNames.add(wanted);
        return wanted;
      }
      return this.fresh(`${base}_out${i}`);
    });
    this.nodes.push({
      name: base,
      opType,
      domain,
      input: [...inputs],
      output: outputs,
      attribute: Object.entries(attrs).map(([k, v]) => toAttribute(k, v)),
    });
    return outputs;
  }

  /** The serialized ModelProto and its external initializers, ready for createSession(). */
  build(metadata: Readonly<Record<string, string>> = {}): BuiltModel {
    return { bytes: this.serialize(metadata), externalData: [...this.external] };
  }

  private serialize(metadata: Readonly<Record<string, string>>): Uint8Array {
    const model: ModelProto = {
      irVersion: IR_VERSION,
      // com.microsoft: onnxruntime's contrib operators (GroupQueryAttention).
      opsetImport: [
        { domain: '', version: DEFAULT_OPSET },
        { domain: 'com.microsoft', version: 1 },
      ],
      producerName: 'runahead',
      producerVersion: '1',
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
      },
      metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    };
    return ModelProto.encode(model).finish();
  }
}

export function bytesPerElement(dtype: TensorDType): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'int64':
      return 8;
    case 'int8':
    case 'bool':
      return 1;
  }
}
