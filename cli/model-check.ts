// A model that is not there is named before anything loads it: the same message from `prefill`,
// `run` (before it starts ranks) and each `worker` (before it waits for its peers).
import { stat } from 'node:fs/promises';
import { isSynthetic, SYNTHETIC_PREFIX } from '../worker/model/load.ts';
import { presetConfig } from '../worker/model/presets.ts';
import { WorkerConfigError } from './worker-exit.ts';

/** `origin` names what set the model (a flag, or the job's field) in the message. */
export async function checkModel(model: string, origin: string): Promise<void> {
  if (isSynthetic(model)) {
    try {
      presetConfig(model.slice(SYNTHETIC_PREFIX.length));
    } catch (err) {
      throw new WorkerConfigError(`model: ${(err as Error).message} (${origin})`);
    }
    return;
  }
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(model)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new WorkerConfigError(
      code === 'ENOENT'
        ? `model: checkpoint directory ${model} does not exist (${origin})`
        : `model: cannot read checkpoint directory ${model} (${origin}): ${(err as Error).message}`,
    );
  }
  if (!isDirectory) throw new WorkerConfigError(`model: ${model} is not a directory (${origin})`);
}
