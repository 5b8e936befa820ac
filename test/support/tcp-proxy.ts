// A TCP proxy on loopback for fault tests: clients talk to the API server through it, and the test
// cuts every open connection (as a network blip or an API server restart does) or refuses new ones
// for a while (an outage). TLS passes through untouched, so the API server's certificate still matches.
import { connect, createServer, type Socket } from 'node:net';

export class TcpProxy {
  /** While true, new connections are reset at once. */
  refusing = false;
  readonly #sockets = new Set<Socket>();
  readonly #server = createServer((client) => {
    this.#accept(client);
  });
  readonly #targetPort: number;
  readonly #targetHost: string;
  #accepted = 0;

  private constructor(targetPort: number, targetHost: string) {
    this.#targetPort = targetPort;
    this.#targetHost = targetHost;
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort, targetHost);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(0, '127.0.0.1', resolve);
    });
    return proxy;
  }

  get port(): number {
    const addr = this.#server.address();
    if (addr === null || typeof addr === 'string') throw new Error('the proxy is not listening');
    return addr.port;
  }

  /** `https://127.0.0.1:<port>` */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Connections accepted so far. */
  get accepted(): number {
    return this.#accepted;
  }

  /** Resets every open connection (both sides). Returns how many sockets were cut. */
  cut(): number {
    const n = this.#sockets.size;
    for (const s of this.#sockets) s.resetAndDestroy();
    this.#sockets.clear();
    return n;
  }

  async close(): Promise<void> {
    this.refusing = true;
    this.cut();
    await new Promise<void>((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  #accept(client: Socket): void {
    if (this.refusing) {
      client.resetAndDestroy();
      return;
    }
    this.#accepted++;
    const upstream = connect(this.#targetPort, this.#targetHost);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
