// Weights handed to onnxruntime as files rather than as in-memory external data. onnxruntime maps
// external data files, but copies in-memory external data slowly: 1 GB of float32 initializers took
// 8.9 s to become a CPU session from memory and 6 ms from files in /dev/shm (3.9 s to write them;
// this 2-core VM, busy); a 7B model's CUDA session took 28–37 s from memory on the device
// (bench/results/h200-cuda.md). Files go to a memory-backed directory only — /dev/shm, or
// RUNAHEAD_WEIGHTS_DIR — with room to spare, never to a pod's /tmp (an emptyDir past its sizeLimit
// gets the pod evicted); elsewhere the weights stay in memory. The files are removed as soon as the
// session exists: a mapping outlives its file's name, and a copy does not need it.
import { mkdtemp, readdir, rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuiltModel } from '../onnx/graph-builder.ts';

const PREFIX = 'runahead-weights-';
/** Room left in the directory after the weights are written. */
const MARGIN_BYTES = 2 ** 30;

export interface StagedModel {
  /** model.onnx, with its external data files beside it. */
  readonly path: string;
  remove(): Promise<void>;
}

/** The directory to stage `bytes` of weights in, or null to keep them in memory. */
async function stagingDir(bytes: number): Promise<string | null> {
  const dir = process.env.RUNAHEAD_WEIGHTS_DIR ?? '/dev/shm';
  if (dir === '') return null;
  try {
    const fs = await statfs(dir);
    return fs.bavail * fs.bsize >= bytes + MARGIN_BYTES ? dir : null;
  } catch {
    return null;
  }
}

/** Remove what processes that died before their cleanup left behind (their pid is in the name). */
async function removeStale(dir: string): Promise<void> {
  for (const name of await readdir(dir).catch(() => [])) {
    if (!name.startsWith(PREFIX)) continue;
    const pid = Number(name.slice(PREFIX.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH')
        await rm(join(dir, name), { recursive: true, force: true });
    }
  }
}

/** Write the model and its weights as files, or return null where they should stay in memory. */
export async function stageModel(model: BuiltModel): Promise<StagedModel | null> {
  if (model.externalData.length === 0) return null;
  const bytes = model.externalData.reduce((n, e) => n + e.data.byteLength, 0);
  const dir = await stagingDir(bytes);
  if (!dir) return null;
  await removeStale(dir);
  let staged: string | null = null;
  try {
    staged = await mkdtemp(join(dir, `${PREFIX}${process.pid}-`));
    const into = staged;
    await Promise.all(model.externalData.map((e) => writeFile(join(into, e.path), e.data)));
    await writeFile(join(into, 'model.onnx'), model.bytes);
    return { path: join(into, 'model.onnx'), remove: () => rm(into, { recursive: true, force: true }) };
  } catch {
    // Not writable, or full after all: the weights stay in memory.
    if (staged) await rm(staged, { recursive: true, force: true });
    return null;
  }
}
