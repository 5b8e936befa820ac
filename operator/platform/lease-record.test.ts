import { describe, expect, it } from '@jest/globals';
import { V1MicroTime } from '@kubernetes/client-node';
import {
  acquiredSpec,
  leaseValid,
  mayAcquire,
  observe,
  recordOf,
  releasedSpec,
  sameRecord,
  type LeaseRecord,
} from './lease-record.ts';

const held: LeaseRecord = {
  holderIdentity: 'a',
  leaseDurationSeconds: 15,
  leaseTransitions: 3,
  acquireTime: '2026-01-01T00:00:00.000000Z',
  renewTime: '2026-01-01T00:00:10.000000Z',
};

describe('lease records', () => {
  it('reads a spec as the API server returns it (times as strings) or as written (MicroTime)', () => {
    expect(recordOf(undefined)).toEqual({
      holderIdentity: '',
      leaseDurationSeconds: 0,
      leaseTransitions: 0,
      acquireTime: '',
      renewTime: '',
    });
    const fromServer = recordOf({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      leaseTransitions: 3,
      acquireTime: held.acquireTime as unknown as V1MicroTime,
      renewTime: held.renewTime as unknown as V1MicroTime,
    });
    expect(fromServer).toEqual(held);
    expect(recordOf({ renewTime: new V1MicroTime('2026-01-01T00:00:10Z') }).renewTime).toBe(
      '2026-01-01T00:00:10.000000Z',
    );
  });

  it('restarts the expiry clock only when the record changes', () => {
    const first = observe(null, held, 1000);
    expect(first.observedAtMs).toBe(1000);
    expect(observe(first, { ...held }, 5000)).toBe(first);
    const renewed = observe(first, { ...held, renewTime: '2026-01-01T00:00:12.000000Z' }, 5000);
    expect(renewed.observedAtMs).toBe(5000);
    expect(sameRecord(held, { ...held, leaseTransitions: 4 })).toBe(false);
  });

  it('judges expiry on the local clock from the last change, with the record’s duration', () => {
    const obs = observe(null, held, 1000);
    expect(leaseValid(obs, 1000 + 14_999)).toBe(true);
    expect(leaseValid(obs, 1000 + 15_000)).toBe(false);
    expect(leaseValid(observe(null, { ...held, leaseDurationSeconds: 0 }, 1000), 1000)).toBe(false);
  });

  it('lets a candidate take an unheld, expired or own lease, not one held and valid', () => {
    const obs = observe(null, held, 0);
    expect(mayAcquire(obs, 'b', 1000)).toBe(false);
    expect(mayAcquire(obs, 'b', 15_000)).toBe(true);
    expect(mayAcquire(obs, 'a', 1000)).toBe(true); // a restarted process with the same identity
    expect(mayAcquire(observe(null, { ...held, holderIdentity: '' }, 0), 'b', 1)).toBe(true);
  });

  it('counts a transition when the holder changes, not on renewal', () => {
    const now = new Date('2026-01-01T00:01:00Z');
    const created = acquiredSpec(null, 'a', 15, now);
    expect(created.leaseTransitions).toBe(0);
    expect(created.holderIdentity).toBe('a');
    expect(created.leaseDurationSeconds).toBe(15);
    expect(JSON.parse(JSON.stringify(created)) as unknown).toMatchObject({
      acquireTime: '2026-01-01T00:01:00.000000Z',
      renewTime: '2026-01-01T00:01:00.000000Z',
    });

    const renewed = acquiredSpec(held, 'a', 15, now);
    expect(renewed.leaseTransitions).toBe(3);
    expect(renewed.acquireTime?.toISOString()).toBe('2026-01-01T00:00:00.000000Z');
    expect(renewed.renewTime?.toISOString()).toBe('2026-01-01T00:01:00.000000Z');

    const taken = acquiredSpec(held, 'b', 15, now);
    expect(taken.leaseTransitions).toBe(4);
    expect(taken.acquireTime?.toISOString()).toBe('2026-01-01T00:01:00.000000Z');
    expect(acquiredSpec({ ...held, holderIdentity: '' }, 'b', 15, now).leaseTransitions).toBe(4);
  });

  it('a released lease has no holder and a 1 s duration, keeping the transition count', () => {
    const spec = releasedSpec(held, new Date('2026-01-01T00:02:00Z'));
    expect(spec.holderIdentity).toBe('');
    expect(spec.leaseDurationSeconds).toBe(1);
    expect(spec.leaseTransitions).toBe(3);
  });
});
