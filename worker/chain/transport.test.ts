// rankServer against a plain HTTP/2 client: the window a rank grants is visible on the wire (the
// SETTINGS it sends and the connection window the peer may fill), so a grpc-js upgrade that stops
// rankServer from setting it fails here rather than silently slowing every K/V link.
import { afterEach, describe, expect, it } from '@jest/globals';
import { connect, type ClientHttp2Session, type Settings } from 'node:http2';
import { ServerCredentials, type Server } from '@grpc/grpc-js';
import { DEFAULT_LIMITS, RECEIVE_WINDOW_BYTES } from '../../core/protocol.ts';
import { eventually } from '../../test/support/eventually.ts';
import { rankServer } from './transport.ts';

const open: { server: Server; client: ClientHttp2Session }[] = [];
afterEach(() => {
  for (const { server, client } of open.splice(0)) {
    client.destroy();
    server.forceShutdown();
  }
});

async function windowSeenBy(window?: number): Promise<{ settings: Settings; connectionWindow: number }> {
  const server = window === undefined ? rankServer(DEFAULT_LIMITS) : rankServer(DEFAULT_LIMITS, window);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => {
      if (err) reject(err);
      else resolve(p);
    });
  });
  const client = connect(`http://127.0.0.1:${port}`);
  open.push({ server, client });
  const want = window ?? RECEIVE_WINDOW_BYTES;
  // The server's window arrives as a second SETTINGS frame and a WINDOW_UPDATE after the first.
  const settings = await eventually('the server’s stream window in its SETTINGS', () =>
    client.remoteSettings.initialWindowSize === want ? client.remoteSettings : null,
  );
  const connectionWindow = await eventually('the server’s connection window', () =>
    client.state.remoteWindowSize === want ? client.state.remoteWindowSize : null,
  );
  return { settings, connectionWindow };
}

describe('rankServer', () => {
  it('grants each stream and the connection the default receive window', async () => {
    const seen = await windowSeenBy();
    expect(seen.settings.initialWindowSize).toBe(RECEIVE_WINDOW_BYTES);
    expect(seen.connectionWindow).toBe(RECEIVE_WINDOW_BYTES);
  });

  it('grants the window it is given', async () => {
    const seen = await windowSeenBy(1 << 20);
    expect(seen.settings.initialWindowSize).toBe(1 << 20);
    expect(seen.connectionWindow).toBe(1 << 20);
  });
});
