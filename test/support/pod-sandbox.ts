// What a container would see, translated for a plain local process (test/support/node-agent.ts).
// A kubelet gives each container its own mount and network namespaces; the test node agent runs
// containers as ordinary processes on this machine instead, so it translates the few places where
// a container's view reaches the process — its args and environment — to this machine's view:
//  - a path under a volume's mountPath (or the terminationMessagePath) becomes the path of that
//    volume on this machine (the mount namespace);
//  - `<hostname>.<subdomain>.<namespace>.svc.<domain>` becomes the IP of that pod (cluster DNS);
//  - `0.0.0.0:<port>` becomes `<pod IP>:<port>` (each pod's network namespace has its own IP; here
//    every pod gets its own loopback address, all of 127/8 being loopback on Linux).
// Everything else — and every byte of the product's code — is left as the container would have it.
// Pure functions: unit-tested in test/e2e/pod-sandbox.test.ts.
import type { V1Container, V1Pod } from '@kubernetes/client-node';

/** A volume mounted in the container, and where its content lies on this machine. */
export interface Mount {
  readonly containerPath: string;
  readonly localPath: string;
}

/** How names and addresses inside the pod map to this machine. */
export interface PodNetwork {
  /** The pod's own IP (a loopback address). */
  readonly podIP: string;
  readonly clusterDomain: string;
  /** The IP of `<hostname>.<subdomain>.<namespace>`, or undefined when cluster DNS would not answer. */
  readonly resolvePod: (hostname: string, subdomain: string, namespace: string) => string | undefined;
}

/**
 * Kubernetes' `$(VAR)` expansion in env values, command and args: a defined name is replaced,
 * `$$` is a literal `$`, anything else is left as written (k8s.io/kubernetes third_party expansion).
 */
export function expandVars(s: string, vars: ReadonlyMap<string, string>): string {
  let out = '';
  for (let i = 0; i < s.length;) {
    if (s[i] === '$' && s[i + 1] === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (s[i] === '$' && s[i + 1] === '(') {
      const close = s.indexOf(')', i + 2);
      const name = close === -1 ? '' : s.slice(i + 2, close);
      const value = vars.get(name);
      if (value !== undefined) {
        out += value;
        i = close + 1;
        continue;
      }
    }
    out += s.charAt(i);
    i += 1;
  }
  return out;
}

/** The mount whose containerPath is the longest prefix of `path` (nested mounts win, as in a container). */
function mountOf(path: string, mounts: readonly Mount[]): Mount | undefined {
  let best: Mount | undefined;
  for (const m of mounts) {
    const base = m.containerPath.replace(/\/+$/, '') || '/';
    const inside = path === base || path.startsWith(base === '/' ? '/' : `${base}/`);
    if (inside && (!best || base.length > best.containerPath.replace(/\/+$/, '').length)) best = m;
  }
  return best;
}

/** A container path on this machine: under the longest mount that holds it, else unchanged. */
export function localPath(path: string, mounts: readonly Mount[]): string {
  if (!path.startsWith('/')) return path;
  const m = mountOf(path, mounts);
  if (!m) return path;
  const base = m.containerPath.replace(/\/+$/, '');
  return m.localPath + path.slice(base.length);
}

const LABEL = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One arg or env value as the process on this machine must get it. */
export function localize(value: string, mounts: readonly Mount[], net: PodNetwork): string {
  // A bare address to bind on every interface of the pod: the pod's own IP here.
  const any = /^(?:0\.0\.0\.0|\[::\]|):(\d+)$/.exec(value);
  if (any) return `${net.podIP}:${any[1]}`;
  // A path, alone or as a flag's `=value`.
  let out = value;
  if (out.startsWith('/')) out = localPath(out, mounts);
  else {
    const eq = /^(--?[A-Za-z0-9-]+=)(\/.*)$/.exec(out);
    if (eq) out = eq[1]! + localPath(eq[2]!, mounts);
  }
  // Pod DNS names, wherever they occur (a comma-separated peer list, a URL).
  const dns = new RegExp(
    `(?<![-a-z0-9.])(${LABEL})\\.(${LABEL})\\.(${LABEL})\\.svc\\.${escapeRegExp(net.clusterDomain)}(?![-a-z0-9])`,
    'g',
  );
  return out.replace(dns, (name, hostname: string, subdomain: string, namespace: string) => {
    return net.resolvePod(hostname, subdomain, namespace) ?? name;
  });
}

// ------------------------------------------------------------------------------------------ resources

const SUFFIX: Readonly<Record<string, number>> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A resource.Quantity as a number (cores, bytes, devices). */
export function quantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|([numkMGTPE]i?|Ki))?$/.exec(q.trim());
  if (!m) throw new Error(`not a quantity: ${q}`);
  if (m[2]) return Number(m[1]! + m[2]);
  const factor = SUFFIX[m[3] ?? ''];
  if (factor === undefined) throw new Error(`not a quantity: ${q}`);
  return Number(m[1]) * factor;
}

/** A pod's resource requests (the API server defaults a container's requests to its limits). */
export function podRequests(pod: V1Pod): Map<string, number> {
  const total = new Map<string, number>([['pods', 1]]);
  const containers: V1Container[] = pod.spec?.containers ?? [];
  for (const c of containers)
    for (const [name, q] of Object.entries(c.resources?.requests ?? {}))
      total.set(name, (total.get(name) ?? 0) + quantity(q));
  return total;
}

/** The first resource `requests` asks for beyond what is free, or null when the pod fits. */
export function insufficient(
  requests: ReadonlyMap<string, number>,
  allocatable: ReadonlyMap<string, number>,
  used: ReadonlyMap<string, number>,
): string | null {
  for (const [name, want] of requests) {
    if (want <= 0) continue;
    const free = (allocatable.get(name) ?? 0) - (used.get(name) ?? 0);
    // Rounding: 0.1 + 0.2 cores must fit in 0.3.
    if (want > free + 1e-9) return name;
  }
  return null;
}

// ------------------------------------------------------------------------------- termination message

/** The kubelet's limits (pkg/kubelet/container: MaxContainerTerminationMessage*). */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;
export const FALLBACK_LOG_MAX_LINES = 80;
export const FALLBACK_LOG_MAX_BYTES = 2048;

/** What FallbackToLogsOnError uses: the last 80 lines of the log, at most its last 2048 bytes. */
export function logTail(log: Buffer): string {
  let start = Math.max(0, log.length - FALLBACK_LOG_MAX_BYTES);
  let lines = 0;
  // Count newlines from the end, ignoring a trailing one, as a line-based tail does.
  for (let i = log.length - 2; i >= start; i--) {
    if (log[i] === 0x0a && ++lines >= FALLBACK_LOG_MAX_LINES) {
      start = i + 1;
      break;
    }
  }
  return log.subarray(start).toString('utf8');
}
