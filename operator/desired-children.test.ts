// What a rank pod looks like for each way of giving the model, the prompt and the split.
import { describe, expect, test } from '@jest/globals';
import { RunaheadJobSpecSchema, type RunaheadJobSpecInput } from '../core/api/v1alpha1/runahead-job.ts';
import { workerArgv } from '../core/worker-config.ts';
import {
  DEFAULT_OPERATOR_DEFAULTS,
  desiredConfigMap,
  desiredPod,
  plannedBoundaries,
  rankResources,
  runTimeoutSeconds,
  workerConfig,
  type JobRef,
} from './desired-children.ts';

function job(spec: Partial<RunaheadJobSpecInput>): JobRef {
  return {
    name: 'j',
    namespace: 'team',
    uid: 'u',
    spec: RunaheadJobSpecSchema.parse({
      ranks: 2,
      model: { synthetic: { preset: 'tiny' } },
      prompt: { text: 'hi' },
      ...spec,
    }),
  };
}
const flag = (args: readonly string[], name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};

describe('desired rank pods', () => {
  test('a checkpoint on a hostPath is mounted read-only and named to the worker by its path', () => {
    const pod = desiredPod(
      job({
        model: {
          checkpoint: { volume: { hostPath: { path: '/data/models' } }, mountPath: '/m', path: 'llama3/' },
        },
      }),
      1,
      0,
      DEFAULT_OPERATOR_DEFAULTS,
    );
    const c = pod.spec!.containers[0]!;
    expect(flag(c.args!, '--model')).toBe('/m/llama3');
    expect(pod.spec!.volumes).toContainEqual({
      name: 'model',
      hostPath: { path: '/data/models', type: 'Directory' },
    });
    expect(c.volumeMounts).toContainEqual({ name: 'model', mountPath: '/m', readOnly: true });
    expect(flag(c.args!, '--model-origin')).toBe('spec.model.checkpoint.path');
  });

  test('a PVC checkpoint is claimed read-only', () => {
    const pod = desiredPod(
      job({ model: { checkpoint: { volume: { persistentVolumeClaim: { claimName: 'models' } } } } }),
      0,
      0,
      DEFAULT_OPERATOR_DEFAULTS,
    );
    expect(pod.spec!.volumes).toContainEqual({
      name: 'model',
      persistentVolumeClaim: { claimName: 'models', readOnly: true },
    });
    expect(flag(pod.spec!.containers[0]!.args!, '--model')).toBe('/models');
  });

  test('an inline prompt travels in the shared ConfigMap; a ConfigMap prompt is mounted from its key', () => {
    const inline = job({ prompt: { text: 'The quick brown fox' } });
    expect(desiredConfigMap(inline, DEFAULT_OPERATOR_DEFAULTS).data?.['prompt.txt']).toBe(
      'The quick brown fox',
    );
    const fromCm = desiredPod(
      job({ prompt: { configMapKeyRef: { name: 'long', key: 'p.txt' } } }),
      0,
      0,
      DEFAULT_OPERATOR_DEFAULTS,
    );
    expect(fromCm.spec!.volumes).toContainEqual({
      name: 'prompt',
      configMap: { name: 'long', items: [{ key: 'p.txt', path: 'prompt.txt' }] },
    });
    expect(flag(fromCm.spec!.containers[0]!.args!, '--prompt-file')).toBe('/etc/runahead/prompt/prompt.txt');
  });

  test('the split: explicit boundaries, a balanced table, or even', () => {
    const explicit = job({
      prompt: { syntheticTokens: 10 },
      partition: { strategy: 'explicit', boundaries: [0, 7, 10] },
    });
    expect(flag(workerArgv(workerConfig(explicit, 0, DEFAULT_OPERATOR_DEFAULTS)), '--split')).toBe('0,7,10');
    expect(plannedBoundaries(explicit.spec)).toEqual([0, 7, 10]);
    const balanced = job({
      partition: { strategy: 'balanced', tableConfigMapRef: { name: 't', key: 'table-2.json' } },
    });
    expect(flag(workerArgv(workerConfig(balanced, 0, DEFAULT_OPERATOR_DEFAULTS)), '--partition-table')).toBe(
      '/etc/runahead/partition/table.json',
    );
    expect(plannedBoundaries(balanced.spec)).toBeNull();
    expect(plannedBoundaries(job({ prompt: { syntheticTokens: 11 } }).spec)).toEqual([0, 6, 11]);
    expect(plannedBoundaries(job({}).spec)).toBeNull(); // a text prompt: known after tokenizing
  });

  test('the run timeout follows the job: runTimeoutSeconds, else activeDeadlineSeconds, else the default', () => {
    const timeout = (spec: Partial<RunaheadJobSpecInput>) =>
      flag(
        desiredPod(job(spec), 1, 0, DEFAULT_OPERATOR_DEFAULTS).spec!.containers[0]!.args!,
        '--run-timeout-ms',
      );
    expect(timeout({ runTimeoutSeconds: 7200, activeDeadlineSeconds: 900 })).toBe('7200000');
    expect(timeout({ activeDeadlineSeconds: 5400 })).toBe('5400000');
    expect(timeout({})).toBe(String(runTimeoutSeconds(job({}).spec) * 1000));
    expect(runTimeoutSeconds(job({}).spec)).toBe(3600);
  });

  test('only rank 0 is given the prompt; every rank is told its rank and every peer', () => {
    const j = job({ ranks: 3 });
    const args = (rank: number) =>
      desiredPod(j, rank, 0, DEFAULT_OPERATOR_DEFAULTS).spec!.containers[0]!.args!;
    expect(flag(args(0), '--prompt-file')).toBe('/etc/runahead/prompt/prompt.txt');
    expect(flag(args(2), '--prompt-file')).toBeUndefined();
    expect(flag(args(2), '--rank')).toBe('2');
    expect(flag(args(2), '--peers')?.split(',')).toHaveLength(3);
  });

  test('mutual TLS mounts the Secret and passes its files', () => {
    const pod = desiredPod(job({ tls: { secretName: 'ranks-tls' } }), 0, 0, DEFAULT_OPERATOR_DEFAULTS);
    const args = pod.spec!.containers[0]!.args!;
    expect([flag(args, '--tls-cert'), flag(args, '--tls-key'), flag(args, '--tls-ca')]).toEqual([
      '/etc/runahead/tls/tls.crt',
      '/etc/runahead/tls/tls.key',
      '/etc/runahead/tls/ca.crt',
    ]);
    expect(pod.spec!.volumes).toContainEqual({
      name: 'tls',
      secret: { secretName: 'ranks-tls', defaultMode: 0o440 },
    });
  });

  test('one GPU per rank unless resources are given; none for the CPU provider', () => {
    expect(rankResources(job({ executionProvider: 'cuda' }).spec)).toEqual({
      limits: { 'nvidia.com/gpu': '1' },
    });
    expect(rankResources(job({ executionProvider: 'cpu' }).spec)).toEqual({});
    expect(
      rankResources(job({ resources: { limits: { 'nvidia.com/gpu': 2, memory: '40Gi' } } }).spec),
    ).toEqual({
      limits: { 'nvidia.com/gpu': '2', memory: '40Gi' },
    });
  });

  test('the operator’s default image, unless the job names one', () => {
    expect(desiredPod(job({}), 0, 0, DEFAULT_OPERATOR_DEFAULTS).spec!.containers[0]!.image).toBe(
      DEFAULT_OPERATOR_DEFAULTS.workerImage,
    );
    expect(
      desiredPod(job({ image: 'mine:1' }), 0, 0, DEFAULT_OPERATOR_DEFAULTS).spec!.containers[0]!.image,
    ).toBe('mine:1');
  });
});
