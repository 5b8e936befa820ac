// The ort_io addon on the CPU provider (CI has no GPU): real onnxruntime sessions through IO binding,
// outputs checked against arithmetic done here in JavaScript, and every misuse refused by name.
import { beforeAll, describe, expect, it } from '@jest/globals';
import { GraphBuilder } from '../onnx/graph-builder.ts';
import {
  NativeSession,
  allocHost,
  copyBytes,
  nativeAvailable,
  addonPath,
  NATIVE_HELP,
  type DeviceValue,
} from './native-session.ts';

/** y = x·a + w: one dynamic input, one constant big enough to live in external data. */
function affine(n: number, a: number, w: Float32Array) {
  const g = new GraphBuilder('affine');
  const x = g.input('x', 'float32', [n]);
  const scale = g.initializer('a', 'float32', [1], Float32Array.of(a));
  const bias = g.initializer('w', 'float32', [n], w);
  g.output(g.node('Add', [g.node('Mul', [x, scale]), bias]), 'y', 'float32', [n]);
  return g.build();
}

const N = 64 * 1024;
const bias = Float32Array.from({ length: N }, (_, i) => (i % 7) - 3);
const input = (seed: number) => Float32Array.from({ length: N }, (_, i) => ((i * seed) % 11) / 4);
const expected = (x: Float32Array) =>
  Float32Array.from(x, (v, i) => Math.fround(Math.fround(v * 1.5) + bias[i]!));

let session: NativeSession;

beforeAll(() => {
  if (!nativeAvailable()) throw new Error(`no addon at ${addonPath()}: ${NATIVE_HELP}`);
  const model = affine(N, 1.5, bias);
  expect(model.externalData.length).toBeGreaterThan(0);
  session = NativeSession.create(model.bytes, { ep: 'cpu', threads: 1, externalData: model.externalData });
});

describe('NativeSession on the CPU provider', () => {
  it('names the graph inputs and outputs', () => {
    expect(session.inputNames).toEqual(['x']);
    expect(session.outputNames).toEqual(['y']);
  });

  it('returns what onnxruntime allocates, equal to the arithmetic done here', () => {
    const x = input(3);
    const out = session.run({ x: { type: 'float32', dims: [N], data: x } }, { y: undefined });
    expect(out.y).toMatchObject({ type: 'float32', dims: [N] });
    expect((out.y as { data: Float32Array }).data).toEqual(expected(x));
  });

  it('writes outputs into a host buffer the caller keeps, run after run', () => {
    const host = allocHost(N * 4);
    expect(host.pinned).toBe(false); // no CUDA here
    const y = new Float32Array(host.buffer);
    for (const seed of [5, 9]) {
      const x = input(seed);
      const out = session.run(
        { x: { type: 'float32', dims: [N], data: x } },
        { y: { into: { type: 'float32', dims: [N], data: y } } },
      );
      expect((out.y as { data: Float32Array }).data).toBe(y);
      expect(y).toEqual(expected(x));
    }
  });

  it('refuses feeds and buffers whose size does not match, naming them', () => {
    const x = input(1);
    expect(() => session.run({ x: { type: 'float32', dims: [N + 1], data: x } }, { y: undefined })).toThrow(
      /x: shape \[65537\] needs 65537 elements, got 65536/,
    );
    const small = new Float32Array(8);
    expect(() =>
      session.run(
        { x: { type: 'float32', dims: [N], data: x } },
        { y: { into: { type: 'float32', dims: [8], data: small } } },
      ),
    ).toThrow(/output: y.*Got: 8 Expected: 65536/s);
    expect(() => session.run({ nope: { type: 'float32', dims: [N], data: x } }, { y: undefined })).toThrow(
      /nope/,
    );
  });

  it("keeps a value in onnxruntime's memory and takes it back as an input", () => {
    const x = input(7);
    const first = session.run({ x: { type: 'float32', dims: [N], data: x } }, { y: { device: true } });
    const y = first.y as DeviceValue;
    expect(y).toMatchObject({ type: 'float32', dims: [N] });
    expect('data' in y).toBe(false);
    const second = session.run({ x: y }, { y: undefined });
    expect((second.y as { data: Float32Array }).data).toEqual(expected(expected(x)));
    y.release();
    expect(() => session.run({ x: y }, { y: undefined })).toThrow(/not a live device value/);
  });

  it('refuses a released session', () => {
    const model = affine(4, 1, new Float32Array(4));
    const s = NativeSession.create(model.bytes, { ep: 'cpu', threads: 1, externalData: model.externalData });
    s.release();
    expect(() =>
      s.run({ x: { type: 'float32', dims: [4], data: new Float32Array(4) } }, { y: undefined }),
    ).toThrow(/released/);
  });

  it('refuses a provider it does not drive and a model that does not parse', () => {
    expect(() => NativeSession.create(new Uint8Array(4), { ep: 'webgpu' as 'cpu' })).toThrow(/options.ep/);
    expect(() => NativeSession.create(Uint8Array.of(1, 2, 3, 4), { ep: 'cpu' })).toThrow(/create session/);
  });
});

describe('copyBytes', () => {
  it('copies into shared memory exactly, between views at any offset', () => {
    expect(nativeAvailable()).toBe(true);
    const shared = new SharedArrayBuffer(1 << 16);
    const src = Uint8Array.from({ length: 40_000 }, (_, i) => (i * 37) & 0xff);
    const dst = new Uint8Array(shared, 123, src.byteLength);
    copyBytes(dst, src.subarray(0));
    expect(Buffer.from(dst).equals(Buffer.from(src))).toBe(true);
    expect(new Uint8Array(shared, 0, 123).every((b) => b === 0)).toBe(true);
    expect(new Uint8Array(shared, 123 + src.byteLength).every((b) => b === 0)).toBe(true);
  });

  it('refuses views of different lengths', () => {
    expect(() => {
      copyBytes(new Uint8Array(4), new Uint8Array(5));
    }).toThrow(/5 bytes into 4/);
  });
});
