// Which pods a Service sends a connection to, decided as the cluster decides it: the EndpointSlice
// controller's choice of pods (pkg/controller/endpointslice: the Service's namespace and selector, a
// pod IP, not terminal, not being deleted) and kube-proxy's use of it (ready endpoints only), with
// targetPort resolved as that controller does (a number as written; a name through the pod's
// container ports; none: the Service port). The test node agent's Service proxy routes by it
// (service-proxy.ts): its pod IPs are loopback addresses, which EndpointSlice validation refuses,
// so the real controller cannot publish them. Pure: unit-tested in service-endpoints.test.ts.
import type { V1Pod, V1Service, V1ServicePort } from '@kubernetes/client-node';

export interface Endpoint {
  readonly pod: string;
  readonly ip: string;
  readonly port: number;
}

const TERMINAL = new Set(['Succeeded', 'Failed']);

/** The Service's port whose `port` is `servicePort`, or an error naming the ports it has. */
export function servicePortOf(service: V1Service, servicePort: number): V1ServicePort {
  const ports = service.spec?.ports ?? [];
  const port = ports.find((p) => p.port === servicePort && (p.protocol ?? 'TCP') === 'TCP');
  if (!port)
    throw new Error(
      `Service ${service.metadata?.name ?? ''} has no TCP port ${servicePort} (its ports: ${ports.map((p) => p.port).join(', ') || 'none'})`,
    );
  return port;
}

/** The pod's port for the Service port, or undefined when a named targetPort is not among its ports. */
function targetPortOf(pod: V1Pod, port: V1ServicePort): number | undefined {
  const target = port.targetPort ?? port.port;
  if (typeof target === 'number') return target;
  if (/^\d+$/.test(target)) return Number(target);
  for (const c of pod.spec?.containers ?? [])
    for (const p of c.ports ?? [])
      if (p.name === target && (p.protocol ?? 'TCP') === (port.protocol ?? 'TCP')) return p.containerPort;
  return undefined;
}

function selects(selector: Record<string, string>, pod: V1Pod): boolean {
  const labels = pod.metadata?.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

const isReady = (pod: V1Pod) =>
  pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

/** The ready endpoints of the Service's port `servicePort` among `pods`, in the pods' order. */
export function serviceEndpoints(
  service: V1Service,
  pods: readonly V1Pod[],
  servicePort: number,
): Endpoint[] {
  const port = servicePortOf(service, servicePort);
  const selector = service.spec?.selector;
  // A Service without a selector has the endpoints someone else writes: none here.
  if (!selector || Object.keys(selector).length === 0) return [];
  const out: Endpoint[] = [];
  for (const pod of pods) {
    if (pod.metadata?.namespace !== service.metadata?.namespace || !selects(selector, pod)) continue;
    if (pod.metadata?.deletionTimestamp || TERMINAL.has(pod.status?.phase ?? '')) continue;
    const ip = pod.status?.podIP;
    if (!ip || !isReady(pod)) continue;
    const target = targetPortOf(pod, port);
    if (target !== undefined) out.push({ pod: pod.metadata?.name ?? '', ip, port: target });
  }
  return out;
}
