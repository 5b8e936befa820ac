// Reading a rank pod's status the way the kubelet and the scheduler write it.
import { describe, expect, test } from '@jest/globals';
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { encodeTerminationMessage } from '../core/api/termination-message.ts';
import { describeFailure, observePod } from './observed-pods.ts';

const pod = (
  status: V1PodStatus,
  labels = { 'runahead.dev/rank': '2', 'runahead.dev/attempt': '1' },
): V1Pod => ({
  metadata: { name: 'j-2', uid: 'u', labels },
  status,
});

describe('observePod', () => {
  test('a pod without rank labels is not ours', () => {
    expect(observePod(pod({}, { 'runahead.dev/rank': 'x', 'runahead.dev/attempt': '0' }))).toBeNull();
  });

  test('a container stuck pulling its image says so; plain ContainerCreating does not', () => {
    const stuck = observePod(
      pod({
        phase: 'Pending',
        containerStatuses: [
          {
            name: 'worker',
            image: 'w',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "w"' } },
          },
        ],
      }),
    );
    expect(stuck).toMatchObject({
      rank: 2,
      attempt: 1,
      phase: 'Pending',
      waiting: 'ImagePullBackOff: Back-off pulling image "w"',
    });
    const creating = observePod(
      pod({
        phase: 'Pending',
        containerStatuses: [
          {
            name: 'worker',
            image: 'w',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: { waiting: { reason: 'ContainerCreating' } },
          },
        ],
      }),
    );
    expect(creating?.waiting).toBe('');
  });

  test('SchedulingGated is a reason while a gate holds the pod, and stale (no reason) once it is gone', () => {
    const gatedCondition: V1PodStatus = {
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'SchedulingGated',
          message: 'Scheduling is blocked due to non-empty scheduling gates',
        },
      ],
    };
    const withGate: V1Pod = {
      metadata: { name: 'j-2', uid: 'u', labels: { 'runahead.dev/rank': '2', 'runahead.dev/attempt': '1' } },
      status: gatedCondition,
      spec: { containers: [], schedulingGates: [{ name: 'runahead.dev/gang' }] },
    };
    expect(observePod(withGate)).toMatchObject({
      schedulingGates: ['runahead.dev/gang'],
      waiting: 'SchedulingGated: Scheduling is blocked due to non-empty scheduling gates',
    });
    expect(observePod(pod(gatedCondition))).toMatchObject({ schedulingGates: [], waiting: '' });
  });

  test('an unschedulable pod carries the scheduler’s reason', () => {
    const p = observePod(
      pod({
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu.',
          },
        ],
      }),
    );
    expect(p?.waiting).toBe('Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.');
  });

  test('a terminated worker: its termination message is read, and a failure is described from it', () => {
    const message = encodeTerminationMessage({
      v: 1,
      ok: false,
      rank: 2,
      retriable: false,
      error: 'rank 2: bad table',
    });
    const p = observePod(
      pod({
        phase: 'Failed',
        containerStatuses: [
          {
            name: 'worker',
            image: 'w',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: { terminated: { exitCode: 2, message, finishedAt: new Date('2026-11-25T10:00:00Z') } },
          },
        ],
      }),
    )!;
    expect(p.report).toEqual({ v: 1, ok: false, rank: 2, retriable: false, error: 'rank 2: bad table' });
    expect(describeFailure(p)).toMatchObject({
      rank: 2,
      retriable: false,
      message: 'rank 2: bad table',
      crashed: false,
      at: Date.parse('2026-11-25T10:00:00Z'),
    });
  });

  test('a worker killed without a message is a crash, described by its exit code and log tail', () => {
    const p = observePod(
      pod({
        phase: 'Failed',
        containerStatuses: [
          {
            name: 'worker',
            image: 'w',
            imageID: '',
            ready: false,
            restartCount: 0,
            state: {
              terminated: { exitCode: 137, reason: 'OOMKilled', message: 'line 1\nallocating 40 GiB' },
            },
          },
        ],
      }),
    )!;
    expect(describeFailure(p)).toMatchObject({
      retriable: true,
      crashed: true,
      message: 'rank 2 (pod j-2) exited with code 137 (OOMKilled): line 1 | allocating 40 GiB',
    });
  });
});
