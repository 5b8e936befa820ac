import { describe, expect, it } from '@jest/globals';
import { CoordinatedRun } from './coordinator.ts';
import {
  IDLE,
  RunLifecycle,
  describeState,
  transition,
  type NodeEvent,
  type NodeState,
} from './run-lifecycle.ts';

const coordinated = new CoordinatedRun('run-c', 2);
const coordinating: NodeState = { phase: 'coordinating', run: null };
const tracking: NodeState = { phase: 'coordinating', run: coordinated };
const executing: NodeState = { phase: 'executing', runId: 'run-x' };

describe('transition', () => {
  it.each<[string, NodeState, NodeEvent, NodeState]>([
    ['idle → coordinating on a Run', IDLE, { type: 'coordinate' }, coordinating],
    [
      'coordinating: the coordinator made its run',
      coordinating,
      { type: 'track', run: coordinated },
      tracking,
    ],
    ['coordinating: the coordinator let go of its run', tracking, { type: 'track', run: null }, coordinating],
    ['coordinating → idle once the run is over', tracking, { type: 'coordinated' }, IDLE],
    ['idle → executing on a Start', IDLE, { type: 'execute', runId: 'run-x' }, executing],
    ['executing → idle when that run ends', executing, { type: 'executed', runId: 'run-x' }, IDLE],
  ])('%s', (_, from, event, to) => {
    expect(transition(from, event, 1)).toEqual({ ok: true, state: to });
  });

  it.each<[string, NodeState, NodeEvent, RegExp]>([
    ['a second Run while coordinating', tracking, { type: 'coordinate' }, /^a run is already in progress$/],
    ['a Run while executing a Start', executing, { type: 'coordinate' }, /^a run is already in progress$/],
    [
      'a Start while executing',
      executing,
      { type: 'execute', runId: 'run-y' },
      /^rank 3 is busy with another run$/,
    ],
    [
      'a Start while coordinating',
      tracking,
      { type: 'execute', runId: 'run-y' },
      /^rank 3 is busy with another run$/,
    ],
    [
      'the end of a run that is not the one executing',
      executing,
      { type: 'executed', runId: 'run-y' },
      /rank 3 is not executing run run-y \(it is executing run run-x\)/,
    ],
    [
      'the end of a run while idle',
      IDLE,
      { type: 'executed', runId: 'run-x' },
      /not executing run run-x \(it is idle\)/,
    ],
    [
      'tracking a coordinated run while executing',
      executing,
      { type: 'track', run: coordinated },
      /rank 3 coordinates no run \(it is executing run run-x\)/,
    ],
    [
      'ending coordination while idle',
      IDLE,
      { type: 'coordinated' },
      /rank 3 coordinates no run \(it is idle\)/,
    ],
    [
      'ending coordination while executing',
      executing,
      { type: 'coordinated' },
      /coordinates no run \(it is executing run run-x\)/,
    ],
  ])('refuses %s', (_, from, event, reason) => {
    const t = transition(from, event, 3);
    expect(t.ok).toBe(false);
    if (!t.ok) expect(t.reason).toMatch(reason);
  });
});

describe('describeState', () => {
  it('names the run when there is one', () => {
    expect(describeState(IDLE)).toBe('idle');
    expect(describeState(coordinating)).toBe('coordinating a run');
    expect(describeState(tracking)).toBe('coordinating run run-c');
    expect(describeState(executing)).toBe('executing run run-x');
  });
});

describe('RunLifecycle', () => {
  it('changes state only on an allowed event, and leaves it as it was on a refused one', () => {
    const life = new RunLifecycle(0);
    expect(life.apply({ type: 'coordinate' })).toBeNull();
    expect(life.state).toEqual(coordinating);
    expect(life.apply({ type: 'coordinate' })).toBe('a run is already in progress');
    expect(life.apply({ type: 'execute', runId: 'run-x' })).toBe('rank 0 is busy with another run');
    expect(life.state).toEqual(coordinating);
    expect(life.apply({ type: 'coordinated' })).toBeNull();
    expect(life.state).toBe(IDLE);
  });

  it('routes messages only to the run being coordinated, and only while it is', () => {
    const life = new RunLifecycle(0);
    expect(life.coordinated).toBeNull();
    life.apply({ type: 'coordinate' });
    expect(life.coordinated).toBeNull(); // not made yet
    life.apply({ type: 'track', run: coordinated });
    expect(life.coordinated).toBe(coordinated);
    expect(life.coordinatedRun('run-c')).toBe(coordinated);
    expect(life.coordinatedRun('another run')).toBeNull();
    expect(life.coordinatedRun(undefined)).toBeNull();
    life.apply({ type: 'track', run: null });
    expect(life.coordinatedRun('run-c')).toBeNull();
    life.apply({ type: 'coordinated' });
    expect(life.coordinated).toBeNull();
  });

  it('lets one Start at a time hold the engine, and the next one in once it has ended', () => {
    const life = new RunLifecycle(1);
    expect(life.apply({ type: 'execute', runId: 'a' })).toBeNull();
    expect(life.apply({ type: 'execute', runId: 'b' })).toMatch(/busy/);
    expect(life.apply({ type: 'executed', runId: 'b' })).toMatch(/not executing run b/);
    expect(life.state).toEqual({ phase: 'executing', runId: 'a' });
    expect(life.apply({ type: 'executed', runId: 'a' })).toBeNull();
    expect(life.apply({ type: 'execute', runId: 'b' })).toBeNull();
    expect(life.coordinated).toBeNull();
  });
});
