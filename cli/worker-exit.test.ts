// How a worker ends: configuration errors (by class) exit 2 and are not retried; run failures exit
// 1, retriable, attributed to the rank where they began — by the error's field, never its text.
import { describe, expect, test } from '@jest/globals';
import { WorkerExit } from '../core/api/termination-message.ts';
import { PartitionError } from '../core/partition.ts';
import { FlagsError } from '../core/worker-config.ts';
import { CheckpointError } from '../worker/model/checkpoint.ts';
import { ModelConfigError } from '../worker/model/config.ts';
import { SafetensorsError } from '../worker/model/safetensors.ts';
import { ExecutionProviderError } from '../core/execution-providers.ts';
import { TokenizerError } from '../worker/tokenizer.ts';
import { RunFailure, attributeFailure } from '../worker/chain/rank-run.ts';
import { CONFIG_ERROR_NAMES } from './config-errors.ts';
import { UsageError } from './options.ts';
import { failed, WorkerConfigError } from './worker-exit.ts';

const CONFIG_CLASSES = [
  UsageError,
  FlagsError,
  WorkerConfigError,
  PartitionError,
  CheckpointError,
  ModelConfigError,
  SafetensorsError,
  TokenizerError,
  ExecutionProviderError,
];

describe('how a worker ends', () => {
  test('the configuration errors by name are exactly these classes', () => {
    expect(new Set(CONFIG_CLASSES.map((C) => new C('x').name))).toEqual(CONFIG_ERROR_NAMES);
  });

  test.each(CONFIG_CLASSES.map((C) => [C.name, C] as const))(
    '%s: exit 2, not retriable, named against this rank',
    (_, C) => {
      const end = failed(3, new C('bad value'));
      expect(end.code).toBe(WorkerExit.ConfigError);
      expect(end.message).toMatchObject({ ok: false, rank: 3, retriable: false, error: 'rank 3: bad value' });
    },
  );

  test('a run failure that began on another rank keeps that rank; one without a rank gets this one', () => {
    const relayed = failed(1, RunFailure.at(2, 'peer silent for 30000 ms'));
    expect(relayed.code).toBe(WorkerExit.Failed);
    expect(relayed.message).toMatchObject({ retriable: true, error: 'rank 2: peer silent for 30000 ms' });
    expect(failed(1, new RunFailure('deadline')).message).toMatchObject({ error: 'rank 1: deadline' });
  });

  test('text that looks like a rank is not taken for one', () => {
    // A plain error (or a failure without a rank) whose text starts like an attribution.
    expect(failed(4, new Error('rank 0 refused it')).message).toMatchObject({
      error: 'rank 4: rank 0 refused it',
    });
    expect(failed(4, new RunFailure('rank 0 is busy')).message).toMatchObject({
      error: 'rank 4: rank 0 is busy',
    });
  });

  test('attributeFailure keeps a failure’s own rank and gives others the rank they happened on', () => {
    const own = RunFailure.at(5, 'x');
    expect(attributeFailure(own, 1)).toBe(own);
    const plain = attributeFailure(new Error('socket closed'), 1);
    expect([plain.rank, plain.message, plain.retriable]).toEqual([1, 'rank 1: socket closed', true]);
  });
});
