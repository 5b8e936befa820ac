// Readiness of a rank group as its ranks' own gRPC health services say it: ready only when every
// rank answers SERVING within the poll's deadline. Shared by every backend that polls its ranks.
import type { HealthCheckClient } from '../../worker/chain/transport.ts';

/** How often readiness is asked of every rank. */
export const HEALTH_POLL_MS = 1000;

/** Whether every client's rank answers SERVING within `timeoutMs`. */
export async function allServing(
  clients: readonly HealthCheckClient[],
  timeoutMs: number = HEALTH_POLL_MS,
): Promise<boolean> {
  const answers = await Promise.all(clients.map((c) => isServing(c, timeoutMs)));
  return answers.length > 0 && answers.every(Boolean);
}

export function isServing(client: HealthCheckClient, timeoutMs: number = HEALTH_POLL_MS): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    client.check({ service: '' }, { deadline: Date.now() + timeoutMs }, (err, reply) => {
      resolve(!err && reply?.status === 'SERVING');
    });
  });
}
