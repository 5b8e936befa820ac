// What the kubelet does before it starts a pod's container, for the test node agent
// (node-agent.ts): the volumes, materialized in the pod's directory (configMap and secret keys
// written as files, emptyDir made, hostPath checked against its type), and the container's
// environment (values with `$(VAR)` expansion, the downward API, ConfigMap and Secret keys). What
// cannot be set up yet makes the container wait (ContainerWaiting), and the kubelet tries again.
import { chmod, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { V1Container, V1EnvVar, V1Pod, V1Volume } from '@kubernetes/client-node';
import { expandVars, type Mount } from './pod-sandbox.ts';

/** The container cannot start yet; the kubelet retries (the pod stays Pending). */
export class ContainerWaiting extends Error {
  override readonly name = 'ContainerWaiting';
  /** The container's waiting reason (ContainerCreating, CreateContainerConfigError). */
  readonly reason: string;
  /** The reason of the Event that says why (FailedMount, Failed). */
  readonly event: string;
  constructor(reason: string, event: string, message: string) {
    super(message);
    this.reason = reason;
    this.event = event;
  }
}

const configError = (message: string) =>
  new ContainerWaiting('CreateContainerConfigError', 'Failed', message);

export type KeyKind = 'ConfigMap' | 'Secret';
/** The keys of a ConfigMap or Secret in the pod's namespace, decoded; null when it does not exist. */
export type KeyReader = (kind: KeyKind, name: string) => Promise<Record<string, Buffer> | null>;

/** The pod as the container's setup needs it. */
export interface PodContext {
  readonly pod: V1Pod;
  /** The pod's directory on this machine (volumes go under `volumes/`). */
  readonly dir: string;
  readonly podIP: string;
  readonly hostIP: string;
  /** The file that stands for the container's terminationMessagePath. */
  readonly terminationPath: string;
  readonly keys: KeyReader;
  /** Where a path of the node lies on this machine. */
  readonly nodePath: (path: string) => string;
}

/** The one container the agent runs (it runs no init containers and restarts nothing). */
export function singleContainer(pod: V1Pod): V1Container {
  const containers = pod.spec?.containers ?? [];
  if (containers.length !== 1 || (pod.spec?.initContainers?.length ?? 0) > 0)
    throw configError('the test node agent runs pods of exactly one container and no init containers');
  if ((pod.spec?.restartPolicy ?? 'Always') !== 'Never')
    throw configError('the test node agent runs only pods with restartPolicy Never');
  if (containers[0]!.readinessProbe?.exec) throw configError('the test node agent does not run exec probes');
  return containers[0]!;
}

// ------------------------------------------------------------------------------------------ volumes

/** Materializes the pod's volumes; the container's mounts, its termination message file last. */
export async function setUpVolumes(ctx: PodContext, container: V1Container): Promise<Mount[]> {
  const local = new Map<string, string>();
  for (const v of ctx.pod.spec?.volumes ?? []) local.set(v.name, await setUpVolume(ctx, v));
  const mounts: Mount[] = [];
  for (const m of container.volumeMounts ?? []) {
    const base = local.get(m.name);
    if (base === undefined) throw configError(`volume ${m.name} is not defined`);
    mounts.push({ containerPath: m.mountPath, localPath: m.subPath ? join(base, m.subPath) : base });
  }
  mounts.push({
    containerPath: container.terminationMessagePath ?? '/dev/termination-log',
    localPath: ctx.terminationPath,
  });
  return mounts;
}

const mountFailed = (v: V1Volume, why: string) =>
  new ContainerWaiting(
    'ContainerCreating',
    'FailedMount',
    `MountVolume.SetUp failed for volume "${v.name}" : ${why}`,
  );

async function setUpVolume(ctx: PodContext, v: V1Volume): Promise<string> {
  const dir = join(ctx.dir, 'volumes', v.name);
  if (v.emptyDir) {
    await mkdir(dir, { recursive: true });
    return dir;
  }
  if (v.hostPath) return hostPathVolume(ctx, v);
  if (v.configMap || v.secret) return keyVolume(ctx, v, dir);
  throw mountFailed(v, 'the test node agent supports only configMap, secret, emptyDir and hostPath volumes');
}

async function hostPathVolume(ctx: PodContext, v: V1Volume): Promise<string> {
  const { path: nodePath, type = '' } = v.hostPath!;
  const path = ctx.nodePath(nodePath);
  if (type === 'DirectoryOrCreate') await mkdir(path, { recursive: true });
  const kind = await stat(path).then(
    (s) => (s.isDirectory() ? 'Directory' : s.isFile() ? 'File' : 'other'),
    () => 'missing',
  );
  if ((type === 'Directory' || type === 'DirectoryOrCreate') && kind !== 'Directory')
    throw mountFailed(v, `hostPath type check failed: ${nodePath} is not a directory`);
  if (type === 'File' && kind !== 'File')
    throw mountFailed(v, `hostPath type check failed: ${nodePath} is not a file`);
  return path;
}

async function keyVolume(ctx: PodContext, v: V1Volume, dir: string): Promise<string> {
  const source = v.configMap ?? v.secret!;
  const name = (v.configMap ? v.configMap.name : v.secret!.secretName) ?? '';
  const what = v.configMap ? 'configmap' : 'secret';
  const data = await ctx.keys(v.configMap ? 'ConfigMap' : 'Secret', name);
  if (!data && !source.optional) throw mountFailed(v, `${what} "${name}" not found`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const items = source.items ?? Object.keys(data ?? {}).map((key) => ({ key, path: key, mode: undefined }));
  for (const item of items) {
    const content = data?.[item.key];
    if (content === undefined) {
      if (source.optional) continue;
      throw mountFailed(
        v,
        `${what} references non-existent ${what === 'secret' ? 'secret' : 'config'} key: ${item.key}`,
      );
    }
    const file = join(dir, item.path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
    await chmod(file, item.mode ?? source.defaultMode ?? 0o644);
  }
  return dir;
}

// ------------------------------------------------------------------------------------------ env

/** The container's environment, in order, each value's `$(VAR)` expanded against the entries before it. */
export async function containerEnv(ctx: PodContext, container: V1Container): Promise<[string, string][]> {
  const vars = new Map<string, string>();
  const keys = async (kind: KeyKind, name: string, optional: boolean | undefined) => {
    const data = await ctx.keys(kind, name);
    if (data) return data;
    if (optional) return {};
    throw configError(`${kind === 'ConfigMap' ? 'configmap' : 'secret'} "${name}" not found`);
  };
  for (const from of container.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref) continue;
    const data = await keys(from.configMapRef ? 'ConfigMap' : 'Secret', ref.name ?? '', ref.optional);
    for (const [k, v] of Object.entries(data)) vars.set(`${from.prefix ?? ''}${k}`, v.toString('utf8'));
  }
  for (const e of container.env ?? []) {
    const value = e.value !== undefined ? expandVars(e.value, vars) : await valueFrom(ctx, e, keys);
    if (value !== undefined) vars.set(e.name, value);
  }
  return [...vars];
}

async function valueFrom(
  ctx: PodContext,
  e: V1EnvVar,
  keys: (kind: KeyKind, name: string, optional: boolean | undefined) => Promise<Record<string, Buffer>>,
): Promise<string | undefined> {
  const from = e.valueFrom;
  if (!from) return '';
  if (from.fieldRef) {
    const value = fieldValue(ctx, from.fieldRef.fieldPath);
    if (value === undefined)
      throw configError(`env ${e.name}: unsupported fieldRef ${from.fieldRef.fieldPath}`);
    return value;
  }
  const ref = from.configMapKeyRef ?? from.secretKeyRef;
  if (!ref) throw configError(`env ${e.name}: the test node agent does not support this valueFrom`);
  const kind = from.configMapKeyRef ? 'ConfigMap' : 'Secret';
  const v = (await keys(kind, ref.name ?? '', ref.optional))[ref.key];
  if (v !== undefined) return v.toString('utf8');
  if (ref.optional) return undefined;
  throw configError(
    `couldn't find key ${ref.key} in ${kind} ${ctx.pod.metadata?.namespace ?? ''}/${ref.name ?? ''}`,
  );
}

/** The downward API's fieldRef values. */
function fieldValue(ctx: PodContext, path: string): string | undefined {
  const { metadata, spec } = ctx.pod;
  const labelRef = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (labelRef)
    return (labelRef[1] === 'labels' ? metadata?.labels : metadata?.annotations)?.[labelRef[2]!] ?? '';
  const values: Record<string, string | undefined> = {
    'metadata.name': metadata?.name,
    'metadata.namespace': metadata?.namespace,
    'metadata.uid': metadata?.uid,
    'spec.nodeName': spec?.nodeName,
    'spec.serviceAccountName': spec?.serviceAccountName,
    'status.hostIP': ctx.hostIP,
    'status.hostIPs': ctx.hostIP,
    'status.podIP': ctx.podIP,
    'status.podIPs': ctx.podIP,
  };
  return path in values ? (values[path] ?? '') : undefined;
}
