// One run of a container's probe, as the kubelet runs it: from the node, against the pod's IP,
// within timeoutSeconds. gRPC probes call the standard health service in plaintext (the kubelet's
// probe has no TLS), TCP probes connect, HTTP probes want a 2xx or 3xx.
import { connect } from 'node:net';
import { credentials } from '@grpc/grpc-js';
import type { V1Container, V1Probe } from '@kubernetes/client-node';
import { healthClient } from '../../worker/chain/transport.ts';

/** Whether the probe succeeds once against `ip`. */
export async function probeOnce(ip: string, probe: V1Probe, container: V1Container): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  const port = (p: number | string | undefined): number =>
    typeof p === 'number' ? p : (container.ports?.find((x) => x.name === p)?.containerPort ?? Number(p));
  if (probe.grpc) return grpcHealth(`${ip}:${probe.grpc.port}`, probe.grpc.service ?? '', timeoutMs);
  if (probe.tcpSocket) return tcpConnect(ip, port(probe.tcpSocket.port), timeoutMs);
  if (probe.httpGet) {
    try {
      const res = await fetch(`http://${ip}:${port(probe.httpGet.port)}${probe.httpGet.path ?? '/'}`, {
        signal: AbortSignal.timeout(timeoutMs),
      });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  }
  return false;
}

async function grpcHealth(address: string, service: string, timeoutMs: number): Promise<boolean> {
  const client = healthClient(address, credentials.createInsecure());
  try {
    return await new Promise<boolean>((resolve) => {
      client.check({ service }, { deadline: Date.now() + timeoutMs }, (err, reply) => {
        resolve(!err && reply?.status === 'SERVING');
      });
    });
  } finally {
    client.close();
  }
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
