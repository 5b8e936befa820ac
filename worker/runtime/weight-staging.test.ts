import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { GraphBuilder, int } from '../onnx/graph-builder.ts';
import { EngineClient } from './engine-client.ts';
import { stageModel } from './weight-staging.ts';

/** y = x + table[1], with a 16 KiB table that goes to external data. */
function model() {
  const g = new GraphBuilder('staged');
  const x = g.input('x', 'float32', [1, 64]);
  const table = Float32Array.from({ length: 64 * 64 }, (_, i) => i);
  const row = g.node('Gather', [g.initializer('table', 'float32', [64, 64], table), g.int64s('row', [1])], {
    axis: int(0),
  });
  g.output(g.node('Add', [x, row]), 'y', 'float32', [1, 64]);
  return g.build();
}

describe('weight staging', () => {
  let dir: string;
  const saved = process.env.RUNAHEAD_WEIGHTS_DIR;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weights-'));
    process.env.RUNAHEAD_WEIGHTS_DIR = dir;
  });
  afterEach(async () => {
    if (saved === undefined) delete process.env.RUNAHEAD_WEIGHTS_DIR;
    else process.env.RUNAHEAD_WEIGHTS_DIR = saved;
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the model and its weights as files, and a session from them computes the same', async () => {
    const staged = await stageModel(model());
    expect(staged).not.toBeNull();
    expect((await readdir(join(staged!.path, '..'))).sort()).toEqual(['model.onnx', 'w0.bin']);
    await staged!.remove();
    expect(await readdir(dir)).toEqual([]);
  });

  it('an engine loaded from staged files computes what one loaded from memory does, and leaves no file', async () => {
    // Engines run onnxruntime in their own thread, which takes the environment at its start.
    const logits = async (weightsDir: string) => {
      process.env.RUNAHEAD_WEIGHTS_DIR = weightsDir;
      const engine = await EngineClient.start({
        model: 'synthetic:tiny',
        seed: 1,
        dtype: 'float32',
        ep: 'cpu',
        threads: 1,
        deviceId: 0,
      });
      try {
        await engine.forward([1, 5, 9, 200], 0, false);
        return await engine.logits();
      } finally {
        await engine.close();
      }
    };
    const fromFiles = await logits(dir);
    const fromMemory = await logits('');
    expect(Array.from(fromFiles)).toEqual(Array.from(fromMemory));
    expect(await readdir(dir)).toEqual([]); // removed once each session existed
  });

  it('removes what a dead process left behind, and keeps weights in memory where there is no directory', async () => {
    const dead = spawnSync(process.execPath, [
      '-e',
      'process.stdout.write(String(process.pid))',
    ]).stdout.toString();
    await mkdir(join(dir, `runahead-weights-${dead}-abc`));
    await mkdir(join(dir, `runahead-weights-${process.pid}-mine`));
    await (await stageModel(model()))!.remove();
    expect(await readdir(dir)).toContain(`runahead-weights-${process.pid}-mine`);
    expect(await readdir(dir)).not.toContain(`runahead-weights-${dead}-abc`);
    process.env.RUNAHEAD_WEIGHTS_DIR = join(dir, 'does-not-exist');
    expect(await stageModel(model())).toBeNull();
    process.env.RUNAHEAD_WEIGHTS_DIR = '';
    expect(await stageModel(model())).toBeNull();
  });
});
