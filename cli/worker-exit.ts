// How a `runahead worker` process ends: its exit code (WorkerExit) and the termination message the
// operator reads from the pod's status. A configuration error — something a restart cannot fix —
// is told apart from a run failure by the error's class, never by its text.
import { writeFile } from 'node:fs/promises';
import {
  TERMINATION_MESSAGE_VERSION,
  WorkerExit,
  encodeTerminationMessage,
  type TerminationMessage,
} from '../core/api/termination-message.ts';
import { logger } from '../core/log.ts';
import { CONFIG_ERROR_NAMES } from './config-errors.ts';
import { RunFailure } from '../worker/chain/rank-run.ts';

/** The worker's own configuration checks (model path, prompt file) before it loads anything. */
export class WorkerConfigError extends Error {
  override readonly name = 'WorkerConfigError';
}

export type WorkerExitCode = (typeof WorkerExit)[keyof typeof WorkerExit];

export interface WorkerEnd {
  readonly code: WorkerExitCode;
  readonly message: TerminationMessage;
}

export function succeeded(
  rank: number,
  result?: Extract<TerminationMessage, { ok: true }>['result'],
): WorkerEnd {
  return {
    code: WorkerExit.Ok,
    message: { v: TERMINATION_MESSAGE_VERSION, ok: true, rank, ...(result ? { result } : {}) },
  };
}

/** A failure's exit code and message; the message names the rank unless the cause already does. */
export function failed(rank: number, err: unknown): WorkerEnd {
  const e = err instanceof Error ? err : new Error(String(err));
  const config = CONFIG_ERROR_NAMES.has(e.name);
  // A run failure knows the rank where it began (maybe another one, whose failure ended this run).
  const error = e instanceof RunFailure && e.rank !== null ? e.message : `rank ${rank}: ${e.message}`;
  return {
    code: config ? WorkerExit.ConfigError : WorkerExit.Failed,
    message: { v: TERMINATION_MESSAGE_VERSION, ok: false, rank, retriable: !config, error },
  };
}

/**
 * Write the termination message. A failure to write is logged, not thrown: the exit code still
 * tells the operator whether to retry.
 */
export async function writeTerminationLog(
  path: string | undefined,
  message: TerminationMessage,
): Promise<void> {
  if (!path) return;
  try {
    await writeFile(path, encodeTerminationMessage(message));
  } catch (err) {
    logger('worker').error({ path, err: (err as Error).message }, 'cannot write the termination log');
  }
}
