// What the serving front needs of a rank group, whoever runs it: the local launcher's processes
// (local-group.ts) today, the rank pods of a RunaheadServer behind their Service later. The front
// (queue, routing, HTTP, metrics) knows nothing of processes or pods.
import type { RunRequest, RunResult } from '../../core/gen/runahead/v1/rank.ts';
import type { StreamOptions } from '../launcher/rank-group.ts';

export interface RankBackend {
  /** Ranks in the group. */
  readonly ranks: number;
  /** Every rank answered its last health check with SERVING (cheap: /readyz asks it). */
  ready(): boolean;
  /**
   * Run `request` on the group through rank 0, streamed. Waits for the group while it is being
   * (re)started, until `signal` aborts. A rank that exits fails the run with a RankGroupError whose
   * failure is `rank-exited`; aborting `signal` stops the run on every rank.
   */
  run(request: RunRequest, options: StreamOptions & { readonly signal: AbortSignal }): Promise<RunResult>;
  /** Stop the group; runs in flight fail. */
  close(): Promise<void>;
}
