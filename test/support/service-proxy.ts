// A Service's address on the test node, as kube-proxy gives it: a listening address (the
// ClusterIP:port a pod would dial) whose every new connection goes to one ready endpoint of the
// Service, chosen afresh from the API server's Service and pods (service-endpoints.ts), round
// robin. With no ready endpoint the connection is reset, as kube-proxy's reject rule refuses it.
import { connect, createServer, type Socket } from 'node:net';
import type { CoreV1Api } from '@kubernetes/client-node';
import { serviceEndpoints } from './service-endpoints.ts';

export class ServiceProxy {
  readonly host: string;
  readonly #sockets = new Set<Socket>();
  readonly #server = createServer((client) => {
    this.#accept(client);
  });
  readonly #core: CoreV1Api;
  readonly #namespace: string;
  readonly #name: string;
  readonly #servicePort: number;
  /** Why the last connection found no endpoint (for a test's failure message). */
  lastError = '';
  #next = 0;

  private constructor(core: CoreV1Api, host: string, namespace: string, name: string, servicePort: number) {
    this.#core = core;
    this.host = host;
    this.#namespace = namespace;
    this.#name = name;
    this.#servicePort = servicePort;
  }

  /** Listens on `host` at the Service's own port, as a ClusterIP does. */
  static async start(
    core: CoreV1Api,
    host: string,
    namespace: string,
    name: string,
    servicePort: number,
  ): Promise<ServiceProxy> {
    const proxy = new ServiceProxy(core, host, namespace, name, servicePort);
    await new Promise<void>((resolve, reject) => {
      proxy.#server.once('error', reject);
      proxy.#server.listen(servicePort, host, resolve);
    });
    return proxy;
  }

  get port(): number {
    return this.#servicePort;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) =>
      this.#server.close(() => {
        resolve();
      }),
    );
  }

  #accept(client: Socket): void {
    this.#track(client);
    client.pause();
    void this.#pick().then(
      (endpoint) => {
        if (!endpoint || client.destroyed) {
          client.resetAndDestroy();
          return;
        }
        const upstream = connect(endpoint.port, endpoint.ip);
        this.#track(upstream);
        upstream.on('error', () => client.resetAndDestroy());
        client.on('error', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
        client.resume();
      },
      (err: unknown) => {
        this.lastError = err instanceof Error ? err.message : String(err);
        client.resetAndDestroy();
      },
    );
  }

  #track(s: Socket): void {
    this.#sockets.add(s);
    s.on('close', () => this.#sockets.delete(s));
  }

  async #pick() {
    const service = await this.#core.readNamespacedService({ namespace: this.#namespace, name: this.#name });
    const selector = Object.entries(service.spec?.selector ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const pods = selector
      ? (await this.#core.listNamespacedPod({ namespace: this.#namespace, labelSelector: selector })).items
      : [];
    const endpoints = serviceEndpoints(service, pods, this.#servicePort);
    if (endpoints.length === 0) {
      this.lastError = `Service ${this.#namespace}/${this.#name} has no ready endpoint (${pods.length} pods selected)`;
      return undefined;
    }
    return endpoints[this.#next++ % endpoints.length];
  }
}
