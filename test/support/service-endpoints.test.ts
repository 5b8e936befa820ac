// The Service proxy's choice of endpoints, checked without an API server: the cases where the
// EndpointSlice controller and kube-proxy leave a pod out, and targetPort by number and by name.
import { describe, expect, test } from '@jest/globals';
import type { V1Pod, V1Service } from '@kubernetes/client-node';
import { serviceEndpoints } from './service-endpoints.ts';

const service = (targetPort: number | string | undefined, selector: Record<string, string> | undefined) =>
  ({
    metadata: { name: 'front', namespace: 'ml' },
    spec: {
      ...(selector ? { selector } : {}),
      ports: [
        { name: 'http', port: 8000, protocol: 'TCP', ...(targetPort !== undefined ? { targetPort } : {}) },
      ],
    },
  }) as V1Service;

function pod(
  name: string,
  over: {
    ready?: boolean;
    ip?: string;
    phase?: string;
    deleting?: boolean;
    namespace?: string;
    labels?: Record<string, string>;
  } = {},
): V1Pod {
  return {
    metadata: {
      name,
      namespace: over.namespace ?? 'ml',
      labels: over.labels ?? { role: 'front', app: 'x' },
      ...(over.deleting ? { deletionTimestamp: new Date() } : {}),
    },
    spec: { containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] }] },
    status: {
      phase: over.phase ?? 'Running',
      ...(over.ip === '' ? {} : { podIP: over.ip ?? `127.1.0.${name.length}` }),
      conditions: [{ type: 'Ready', status: (over.ready ?? true) ? 'True' : 'False' }],
    },
  };
}

describe('serviceEndpoints', () => {
  test('ready, selected pods of the namespace, at the named container port', () => {
    const pods = [
      pod('a', { ip: '127.1.0.2' }),
      pod('b', { ready: false }),
      pod('c', { ip: '' }),
      pod('d', { phase: 'Succeeded' }),
      pod('e', { deleting: true }),
      pod('f', { namespace: 'other' }),
      pod('g', { labels: { role: 'rank', app: 'x' } }),
      pod('h', { ip: '127.1.0.9' }),
    ];
    expect(serviceEndpoints(service('http', { role: 'front' }), pods, 8000)).toEqual([
      { pod: 'a', ip: '127.1.0.2', port: 8080 },
      { pod: 'h', ip: '127.1.0.9', port: 8080 },
    ]);
  });

  test('targetPort as a number, as digits, or absent (the Service port)', () => {
    const pods = [pod('a', { ip: '127.1.0.2' })];
    expect(serviceEndpoints(service(9000, { role: 'front' }), pods, 8000)[0]?.port).toBe(9000);
    expect(serviceEndpoints(service('9001', { role: 'front' }), pods, 8000)[0]?.port).toBe(9001);
    expect(serviceEndpoints(service(undefined, { role: 'front' }), pods, 8000)[0]?.port).toBe(8000);
  });

  test('a name no container port has leaves the pod out; no selector, no endpoints', () => {
    const pods = [pod('a')];
    expect(serviceEndpoints(service('metrics', { role: 'front' }), pods, 8000)).toEqual([]);
    expect(serviceEndpoints(service('http', undefined), pods, 8000)).toEqual([]);
  });

  test('a port the Service does not have is an error naming its ports', () => {
    expect(() => serviceEndpoints(service('http', { role: 'front' }), [], 80)).toThrow(
      /no TCP port 80 \(its ports: 8000\)/,
    );
  });
});
