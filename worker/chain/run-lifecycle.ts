// Which run holds a rank node's engine. A node runs one run at a time: rank 0 coordinates one (a Run
// call, or runOnce in job mode) and computes its own chunk inside it; every other rank executes the
// chunk a Start gave it. The engine is free again once a rank's part has ended — before its report
// reaches rank 0, so that the next Start need not wait for that round trip.
//
//   idle ─coordinate─▶ coordinating(null) ◀─track─▶ coordinating(run) ─coordinated─▶ idle
//   idle ─execute(id)─▶ executing(id) ─executed(id)─▶ idle
//
// Every change goes through `transition`; an event the current state does not allow is refused with
// the reason, and the state stays as it was.
import type { CoordinatedRun } from './coordinator.ts';

export type NodeState =
  | { readonly phase: 'idle' }
  /** Rank 0 coordinates a run; `run` is null until the coordinator has made it (prompt read, peers connected). */
  | { readonly phase: 'coordinating'; readonly run: CoordinatedRun | null }
  /** This rank computes its chunk of run `runId`. */
  | { readonly phase: 'executing'; readonly runId: string };

export type NodeEvent =
  /** A Run call (or runOnce) asks rank 0 to coordinate a run. */
  | { readonly type: 'coordinate' }
  /** The coordinator made its run (or let go of it): peers' FirstToken, Report and Abort go to it. */
  | { readonly type: 'track'; readonly run: CoordinatedRun | null }
  /** The coordinated run is over, with a result or an error. */
  | { readonly type: 'coordinated' }
  /** A Start asks this rank to compute its chunk of run `runId`. */
  | { readonly type: 'execute'; readonly runId: string }
  /** This rank's part of run `runId` ended (or never began): the engine is free. */
  | { readonly type: 'executed'; readonly runId: string };

export type Transition =
  { readonly ok: true; readonly state: NodeState } | { readonly ok: false; readonly reason: string };

export const IDLE: NodeState = { phase: 'idle' };

const to = (state: NodeState): Transition => ({ ok: true, state });
const refused = (reason: string): Transition => ({ ok: false, reason });

/** The state after `event` on rank `rank`, or why `state` does not allow it. Pure. */
export function transition(state: NodeState, event: NodeEvent, rank: number): Transition {
  switch (event.type) {
    case 'coordinate':
      return state.phase === 'idle'
        ? to({ phase: 'coordinating', run: null })
        : refused('a run is already in progress');
    case 'track':
    case 'coordinated':
      if (state.phase !== 'coordinating')
        return refused(`rank ${rank} coordinates no run (it is ${describeState(state)})`);
      return event.type === 'track' ? to({ phase: 'coordinating', run: event.run }) : to(IDLE);
    case 'execute':
      return state.phase === 'idle'
        ? to({ phase: 'executing', runId: event.runId })
        : refused(`rank ${rank} is busy with another run`);
    case 'executed':
      if (state.phase !== 'executing' || state.runId !== event.runId)
        return refused(`rank ${rank} is not executing run ${event.runId} (it is ${describeState(state)})`);
      return to(IDLE);
  }
}

export function describeState(state: NodeState): string {
  switch (state.phase) {
    case 'idle':
      return 'idle';
    case 'coordinating':
      return state.run ? `coordinating run ${state.run.runId}` : 'coordinating a run';
    case 'executing':
      return `executing run ${state.runId}`;
  }
}

/** A node's current state; the only place it changes. */
export class RunLifecycle {
  private readonly rank: number;
  private current: NodeState = IDLE;

  constructor(rank: number) {
    this.rank = rank;
  }

  get state(): NodeState {
    return this.current;
  }

  /** Apply `event`: null when done, else why the current state refuses it (nothing changes then). */
  apply(event: NodeEvent): string | null {
    const next = transition(this.current, event, this.rank);
    if (!next.ok) return next.reason;
    this.current = next.state;
    return null;
  }

  /** The run rank 0 coordinates now, if any. */
  get coordinated(): CoordinatedRun | null {
    return this.current.phase === 'coordinating' ? this.current.run : null;
  }

  /** The coordinated run if it is run `runId` (a message about another run finds none). */
  coordinatedRun(runId: string | undefined): CoordinatedRun | null {
    const run = this.coordinated;
    return run && run.runId === runId ? run : null;
  }
}
