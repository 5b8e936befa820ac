// The informer against a real API server, reached through a TCP proxy that the tests cut or close
// to make the watch fail the ways it does in a cluster (connection reset, API server unreachable).
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { CoreV1Api, KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import { Informer, type ChangeEvent, type InformerOptions } from '../../operator/platform/informer.ts';
import { ControlPlane } from '../support/control-plane.ts';
import { eventually } from '../support/eventually.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';

function kubeConfigFor(cp: ControlPlane, server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      { name: 'envtest', server, caData: Buffer.from(cp.caPem).toString('base64'), skipTLSVerify: false },
    ],
    users: [{ name: 'admin', token: cp.token }],
    contexts: [{ name: 'envtest', cluster: 'envtest', user: 'admin' }],
    currentContext: 'envtest',
  });
  return kc;
}

const CONFIGMAPS = { group: '', version: 'v1', plural: 'configmaps' } as const;

describe('informer', () => {
  let cp: ControlPlane | undefined;
  let proxy: TcpProxy;
  let core: CoreV1Api;
  let viaProxy: KubeConfig;
  const informers: Informer<V1ConfigMap>[] = [];

  beforeAll(async () => {
    cp = await ControlPlane.start();
    const kc = new KubeConfig();
    kc.loadFromFile(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    proxy = await TcpProxy.start(Number(new URL(cp.server).port));
    viaProxy = kubeConfigFor(cp, proxy.url);
    for (const name of ['inf-a', 'inf-b', 'inf-c', 'inf-d'])
      await core.createNamespace({ body: { metadata: { name } } });
  }, 120_000);

  afterEach(async () => {
    proxy.refusing = false;
    await Promise.all(informers.splice(0).map((i) => i.stop()));
  });

  afterAll(async () => {
    await proxy.close();
    await cp?.stop();
  });

  function informer(options: Partial<InformerOptions> = {}): Informer<V1ConfigMap> {
    const i = new Informer<V1ConfigMap>({
      kubeConfig: viaProxy,
      resource: CONFIGMAPS,
      restartBaseDelayMs: 100,
      restartMaxDelayMs: 400,
      ...options,
    });
    informers.push(i);
    return i;
  }

  function record(i: Informer<V1ConfigMap>): { event: ChangeEvent; name: string; ns: string }[] {
    const events: { event: ChangeEvent; name: string; ns: string }[] = [];
    i.onChange((obj, event) => {
      events.push({ event, name: obj.metadata?.name ?? '', ns: obj.metadata?.namespace ?? '' });
    });
    return events;
  }

  const cm = (namespace: string, name: string, labels: Record<string, string> = { app: 'x' }, data = {}) =>
    core.createNamespacedConfigMap({ namespace, body: { metadata: { name, labels }, data } });

  test('lists, then sees adds, updates and deletes in its namespace and selector only', async () => {
    await cm('inf-a', 'before');
    await cm('inf-a', 'unlabelled', {});
    const i = informer({ namespace: 'inf-a', labelSelector: 'app=x' });
    const events = record(i);
    expect(i.hasSynced).toBe(false);
    await i.start();
    await i.waitForSync(10_000);
    expect(i.hasSynced).toBe(true);
    expect(i.list().map((o) => o.metadata?.name)).toEqual(['before']);
    expect(events).toEqual([{ event: 'add', name: 'before', ns: 'inf-a' }]);

    await cm('inf-a', 'later', { app: 'x' }, { v: '1' });
    await cm('inf-a', 'other-label', { app: 'y' });
    await cm('inf-b', 'other-namespace');
    await eventually('the add of later', () => i.get('inf-a', 'later'));
    expect(i.get('inf-a', 'later')?.data).toEqual({ v: '1' });
    // Plain JSON as the API server sent it, the same shape from the list and from the watch.
    expect(typeof i.get('inf-a', 'before')?.metadata?.creationTimestamp).toBe('string');
    expect(typeof i.get('inf-a', 'later')?.metadata?.creationTimestamp).toBe('string');

    const later = await core.readNamespacedConfigMap({ namespace: 'inf-a', name: 'later' });
    later.data = { v: '2' };
    await core.replaceNamespacedConfigMap({ namespace: 'inf-a', name: 'later', body: later });
    await eventually('the update of later', () => i.get('inf-a', 'later')?.data?.['v'] === '2');
    await core.deleteNamespacedConfigMap({ namespace: 'inf-a', name: 'before' });
    await eventually('the delete of before', () => i.get('inf-a', 'before') === undefined);

    expect(events).toEqual([
      { event: 'add', name: 'before', ns: 'inf-a' },
      { event: 'add', name: 'later', ns: 'inf-a' },
      { event: 'update', name: 'later', ns: 'inf-a' },
      { event: 'delete', name: 'before', ns: 'inf-a' },
    ]);
    expect(i.restarts).toBe(0);
  });

  test('watches all namespaces', async () => {
    const i = informer({ labelSelector: 'scope=all' });
    await i.start();
    await i.waitForSync();
    await cm('inf-a', 'everywhere-a', { scope: 'all' });
    await cm('inf-b', 'everywhere-b', { scope: 'all' });
    await eventually('both objects', () => i.list().length === 2);
    expect(i.list('inf-b').map((o) => o.metadata?.name)).toEqual(['everywhere-b']);
    expect(i.get('inf-a', 'everywhere-a')).toBeDefined();
  });

  test('restarts after its connection is reset, and still sees new objects', async () => {
    const restarts: string[] = [];
    const i = informer({ namespace: 'inf-c', onRestart: (resource) => restarts.push(resource) });
    const events = record(i);
    await i.start();
    await i.waitForSync();
    await cm('inf-c', 'one');
    await eventually('one', () => i.get('inf-c', 'one'));

    expect(proxy.cut()).toBeGreaterThan(0);
    await eventually('a restart', () => i.restarts >= 1);
    expect(restarts).toEqual(['configmaps']);
    await cm('inf-c', 'two');
    await eventually('two, seen after the restart', () => i.get('inf-c', 'two'));
    expect(i.healthy).toBe(true);
    expect(events.map((e) => `${e.event} ${e.name}`)).toEqual(['add one', 'add two']);
  });

  test('keeps retrying through an outage, then catches up on what changed meanwhile', async () => {
    const i = informer({ namespace: 'inf-d', unhealthyAfterMs: 60_000 });
    const events = record(i);
    await i.start();
    await i.waitForSync();
    await cm('inf-d', 'stays');
    await cm('inf-d', 'goes');
    await eventually('both', () => i.list().length === 2);

    proxy.refusing = true;
    proxy.cut();
    // Changes while the operator cannot reach the API server.
    await core.deleteNamespacedConfigMap({ namespace: 'inf-d', name: 'goes' });
    await cm('inf-d', 'new');
    await eventually('several failed restarts', () => i.restarts >= 3, 15_000);
    expect(i.get('inf-d', 'goes')).toBeDefined(); // stale while unreachable
    expect(i.healthy).toBe(true); // not for long enough to give up

    proxy.refusing = false;
    await eventually('the delete made during the outage', () => i.get('inf-d', 'goes') === undefined, 15_000);
    await eventually('the add made during the outage', () => i.get('inf-d', 'new'), 15_000);
    expect(events.map((e) => `${e.event} ${e.name}`)).toEqual([
      'add stays',
      'add goes',
      'delete goes',
      'add new',
    ]);
    await cm('inf-d', 'after');
    await eventually('an object created after recovery', () => i.get('inf-d', 'after'));
  }, 40_000);

  test('reports unhealthy and fails waitForSync with the cause when the API server stays unreachable', async () => {
    proxy.refusing = true;
    const i = informer({ namespace: 'inf-a', unhealthyAfterMs: 300 });
    await i.start();
    await expect(i.waitForSync(1000)).rejects.toThrow(
      /cache of configmaps in namespace inf-a did not sync in 1000 ms; last error: .+ Check that the API server is reachable/s,
    );
    expect(i.hasSynced).toBe(false);
    expect(i.healthy).toBe(false);
    expect(i.restarts).toBeGreaterThan(0);

    proxy.refusing = false;
    await i.waitForSync(10_000);
    await eventually('healthy again', () => i.healthy);
  }, 20_000);

  test('stop ends watching: no restarts, no events, and waiters are released', async () => {
    const i = informer({ namespace: 'inf-b' });
    const events = record(i);
    await i.start();
    await i.waitForSync();
    await i.stop();
    const restartsAtStop = i.restarts;
    await cm('inf-b', 'after-stop');
    await new Promise((r) => setTimeout(r, 500));
    expect(events.filter((e) => e.name === 'after-stop')).toEqual([]);
    expect(i.restarts).toBe(restartsAtStop);
    expect(i.healthy).toBe(true);

    proxy.refusing = true;
    const never = informer({ namespace: 'inf-b' });
    await never.start();
    const waiting = never.waitForSync(30_000);
    await never.stop();
    await expect(waiting).rejects.toThrow(/stopped before its cache synced/);
  });

  test('a throwing change callback is logged and does not break the informer', async () => {
    const i = informer({ namespace: 'inf-b', labelSelector: 'cb=throws' });
    i.onChange(() => {
      throw new Error('callback bug');
    });
    const events = record(i);
    await i.start();
    await i.waitForSync();
    await cm('inf-b', 'cb-1', { cb: 'throws' });
    await cm('inf-b', 'cb-2', { cb: 'throws' });
    await eventually('both events', () => events.length === 2);
    expect(i.get('inf-b', 'cb-2')).toBeDefined();
  });
});
