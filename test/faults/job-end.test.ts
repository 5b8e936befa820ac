// How a job-mode rank ends after a successful run. Rank 0 sends Shutdown to every rank once it has
// the result; the answer to a rank's last report to rank 0 travels on another connection and can
// arrive after that Shutdown. Found end to end (test/e2e): rank 1 then exited 1 ("stopped by rank 0
// before its run ended") after a run that succeeded, and an operator that saw rank 1's failure
// before rank 0's result would restart a group whose run had succeeded.
import { describe, expect, it, jest } from '@jest/globals';
import { mkdtemp, readFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTerminationMessage } from '../../core/api/termination-message.ts';
import { freePorts } from '../../cli/launcher/ports.ts';
import { startWorker } from '../support/worker-process.ts';

jest.setTimeout(120_000);

/** A TCP proxy to `port` that holds what the server sends back for `delayMs` (a slow return path). */
async function slowReturnProxy(port: number, delayMs: number): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(port, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk);
      }, delayMs);
    });
    upstream.on('end', () => setTimeout(() => client.end(), delayMs));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no address');
  return {
    port: address.port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('a job-mode rank after a successful run', () => {
  it('exits 0 with an ok termination message even when rank 0’s Shutdown overtakes the answer to its report', async () => {
    const ports = await freePorts(2);
    const proxy = await slowReturnProxy(ports[0]!, 500);
    const dir = await mkdtemp(join(tmpdir(), 'job-end-'));
    const direct = ports.map((p) => `127.0.0.1:${p}`);
    const rank = (r: number, peers: readonly string[], more: readonly string[] = []) => [
      ...['--rank', String(r), '--world-size', '2', '--listen', direct[r]!, '--peers', peers.join(',')],
      ...['--model', 'synthetic:tiny', '--threads', '1', '--termination-log', join(dir, `rank${r}.log`)],
      ...more,
    ];
    try {
      // Rank 1 reaches rank 0 through the proxy, so every answer from rank 0 comes late; rank 0
      // reaches rank 1 directly, so its Shutdown does not.
      const rank1 = startWorker(rank(1, [`127.0.0.1:${proxy.port}`, direct[1]!]));
      const rank0 = startWorker(rank(0, direct, ['--prompt-tokens', '64']));
      expect(await rank0.exited).toEqual({ code: 0, signal: null });
      const end1 = await rank1.exited;
      const message1 = parseTerminationMessage(await readFile(join(dir, 'rank1.log'), 'utf8'));
      expect({ end1, message1 }).toEqual({
        end1: { code: 0, signal: null },
        message1: { v: 1, ok: true, rank: 1 },
      });
    } finally {
      proxy.close();
    }
  });
});
