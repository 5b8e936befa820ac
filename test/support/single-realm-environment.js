// Jest runs each test file in its own V8 context, so a Float32Array made by a native addon
// (onnxruntime-node's outputs) is not `instanceof Float32Array` inside the test. Sharing the
// binary-data constructors with the outer realm makes native results and test code agree.
import { TestEnvironment } from 'jest-environment-node';

const SHARED = [
  'ArrayBuffer',
  'SharedArrayBuffer',
  'DataView',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'Float16Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
];

export default class SingleRealmEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) {
      if (name in globalThis) this.global[name] = globalThis[name];
    }
  }
}
