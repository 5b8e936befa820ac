import { describe, expect, it } from '@jest/globals';
import { GraphBuilder, int } from './graph-builder.ts';
import { Tensor, createSession } from '../runtime/ort.ts';

describe('GraphBuilder', () => {
  it('builds a model onnxruntime runs: y = x·Wᵀ with a symbolic batch', async () => {
    const g = new GraphBuilder('gemm');
    const x = g.input('x', 'float32', ['T', 3]);
    const w = g.initializer('w', 'float32', [2, 3], Float32Array.of(1, 0, 0, 0, 1, 1));
    g.output(g.node('Gemm', [x, w], { transB: int(1) }), 'y', 'float32', ['T', 2]);
    const session = await createSession(g.build(), { ep: 'cpu', threads: 1, deviceId: 0 });
    const out = await session.run({ x: new Tensor('float32', Float32Array.of(1, 2, 3, 4, 5, 6), [2, 3]) });
    expect(out.y!.dims).toEqual([2, 2]);
    expect(Array.from(out.y!.data as Float32Array)).toEqual([1, 5, 4, 11]);
  });

  it('hands large initializers to onnxruntime as external data, views of the arrays that hold them', async () => {
    const g = new GraphBuilder('external');
    const x = g.input('x', 'float32', ['T', 64]);
    const table = Float32Array.from({ length: 64 * 64 }, (_, i) => i); // row r holds 64r … 64r+63
    const w = g.initializer('table', 'float32', [64, 64], table);
    const row = g.node('Gather', [w, g.int64s('row', [1])], { axis: int(0) }); // [1, 64]
    g.output(g.node('Add', [x, row]), 'y', 'float32', ['T', 64]);
    const model = g.build();
    expect(model.externalData).toHaveLength(1);
    expect(model.externalData[0]!.data.buffer).toBe(table.buffer);
    expect(model.bytes.byteLength).toBeLessThan(1024);
    const session = await createSession(model, { ep: 'cpu', threads: 1, deviceId: 0 });
    // onnxruntime copies them while it creates the session: the engine lets the arrays go after.
    table.fill(-1);
    const out = await session.run({ x: new Tensor('float32', new Float32Array(64), [1, 64]) });
    expect(Array.from(out.y!.data as Float32Array)).toEqual(Array.from({ length: 64 }, (_, i) => 64 + i));
  });

  it('refuses an initializer whose data does not match its shape', () => {
    const g = new GraphBuilder('bad');
    expect(() => g.initializer('w', 'float32', [2, 3], new Float32Array(5))).toThrow(
      /initializer w has 20 bytes, shape \[2, 3\] float32 needs 24/,
    );
  });

  it('refuses duplicate value names', () => {
    const g = new GraphBuilder('dup');
    g.input('x', 'float32', [1]);
    expect(() => g.input('x', 'float32', [1])).toThrow(/duplicate value name x/);
  });
});
