// recordEvent without an API server: the Event it sends, and what counts as recorded.
import { describe, expect, test } from '@jest/globals';
import {
  ApiException,
  type CoreV1Api,
  type CoreV1ApiCreateNamespacedEventRequest,
} from '@kubernetes/client-node';
import type { Logger } from '../../core/log.ts';
import { recordEvent } from './events.ts';

const NOW = new Date('2026-12-02T10:00:00Z');
const SUBJECT = {
  apiVersion: 'runahead.dev/v1alpha1',
  kind: 'RunaheadServer',
  namespace: 'ml',
  name: 'chat',
};

/** A core client whose createNamespacedEvent records the request, or fails with `fail`. */
function fakeCore(fail?: Error) {
  const sent: CoreV1ApiCreateNamespacedEventRequest[] = [];
  const core = {
    createNamespacedEvent: (req: CoreV1ApiCreateNamespacedEventRequest) => {
      sent.push(req);
      return fail === undefined ? Promise.resolve({}) : Promise.reject(fail);
    },
  } as unknown as CoreV1Api;
  return { core, sent };
}

function fakeLog() {
  const warned: unknown[] = [];
  const log = { warn: (fields: unknown) => warned.push(fields) } as unknown as Logger;
  return { log, warned };
}

describe('recordEvent', () => {
  test('an Event on the object, its message clipped to 1 KiB, reported by the operator', async () => {
    const { core, sent } = fakeCore();
    const { log } = fakeLog();
    const ok = await recordEvent(
      { ...SUBJECT, uid: 'u-1' },
      { type: 'Warning', reason: 'RankFailed', message: 'x'.repeat(2000) },
      { core, log, logContext: {}, now: NOW },
    );
    expect(ok).toBe(true);
    expect(sent).toHaveLength(1);
    const body = sent[0]!.body;
    expect(sent[0]!.namespace).toBe('ml');
    expect(body).toMatchObject({
      metadata: { generateName: 'chat.', namespace: 'ml' },
      involvedObject: { ...SUBJECT, uid: 'u-1' },
      reason: 'RankFailed',
      type: 'Warning',
      source: { component: 'runahead-operator' },
      reportingComponent: 'runahead-operator',
      firstTimestamp: NOW,
      lastTimestamp: NOW,
      count: 1,
    });
    expect(body.message).toHaveLength(1024);
  });

  test('no uid: the event names the object without one', async () => {
    const { core, sent } = fakeCore();
    await recordEvent(
      SUBJECT,
      { type: 'Normal', reason: 'GroupStarted', message: 'm' },
      {
        core,
        log: fakeLog().log,
        logContext: {},
        now: NOW,
      },
    );
    expect(sent[0]!.body.involvedObject).not.toHaveProperty('uid');
  });

  test('a fixed name recorded before (409) counts as recorded; any other failure is logged, not thrown', async () => {
    const conflict = new ApiException(409, 'exists', {}, {});
    const named = await recordEvent(
      SUBJECT,
      { type: 'Warning', reason: 'R', message: 'm' },
      {
        core: fakeCore(conflict).core,
        log: fakeLog().log,
        logContext: {},
        now: NOW,
        eventName: 'chat.once',
      },
    );
    expect(named).toBe(true);
    const { log, warned } = fakeLog();
    const lost = await recordEvent(
      SUBJECT,
      { type: 'Warning', reason: 'R', message: 'm' },
      {
        core: fakeCore(conflict).core,
        log,
        logContext: { namespace: 'ml', server: 'chat' },
        now: NOW,
      },
    );
    expect(lost).toBe(false);
    expect(warned).toEqual([expect.objectContaining({ namespace: 'ml', server: 'chat', reason: 'R' })]);
  });
});
