// What should exist for one RunaheadServer, as pure functions of it: the client Service over every
// group's front, and per rank group the job's own children — its headless Service and rank pods,
// built by desired-children.ts from a job spec made of the server's (so placement, volumes, TLS,
// resources and policies are the job's, not a second copy) — with the ranks in --serve mode, plus
// one front pod (`runahead serve --ranks-at <the group's ranks>`), and with placement.podGroup the
// group's PodGroup, as the job makes it for one attempt.
import { createHash } from 'node:crypto';
import type { V1Container, V1ObjectMeta, V1Pod, V1Service } from '@kubernetes/client-node';
import { workerArgv } from '../core/worker-config.ts';
import { partitionFlags } from '../core/partition-choice.ts';
import {
  LABEL_ATTEMPT,
  LABEL_COMPONENT,
  LABEL_COSCHEDULING_POD_GROUP,
  LABEL_JOB,
  LABEL_MANAGED_BY,
  LABEL_NAME,
  LABEL_RANK,
  MANAGED_BY,
} from '../core/api/v1alpha1/names.ts';
import type { RunaheadJobSpec } from '../core/api/v1alpha1/runahead-job.ts';
import type { RunaheadServer, RunaheadServerSpec } from '../core/api/v1alpha1/runahead-server.ts';
import {
  FRONT_PORT,
  FRONT_PORT_NAME,
  LABEL_SERVER,
  LABEL_SERVER_GROUP,
  LABEL_SERVER_RANKS,
  LABEL_SERVER_REVISION,
  LABEL_SERVER_ROLE,
  SERVER_KIND,
  serverChildNames,
  type ServerRole,
} from '../core/api/v1alpha1/server-names.ts';
import {
  desiredPod,
  desiredPodGroup,
  desiredService,
  rankAddresses,
  workerConfig,
  type JobRef,
  type OperatorDefaults,
  type PodGroupObject,
} from './desired-children.ts';
import { childMeta, controllerReference, ownerRef, type OwnerRef } from './owned-objects.ts';
import { KUEUE } from './rank-placement.ts';

/** A server as the planner needs it: validated spec and identity. */
export type ServerRef = OwnerRef<RunaheadServerSpec>;

export const serverRef = (server: RunaheadServer): ServerRef => ownerRef(server);

/** What the front pod asks: a front only tokenizes and routes, the model runs on the ranks. */
const FRONT_RESOURCES = { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } };

/**
 * The revision of a spec: a hash of every field the pods are made from. replicas, maxUnavailable and
 * the client Service change no pod, so changing them rolls nothing.
 */
export function serverRevision(spec: RunaheadServerSpec): string {
  const pods: Partial<RunaheadServerSpec> = { ...spec };
  delete pods.replicas;
  delete pods.maxUnavailable;
  delete pods.service;
  return createHash('sha256').update(JSON.stringify(pods)).digest('hex').slice(0, 10);
}

/**
 * Group `group` as a RunaheadJob's rank group: the job code builds its Service and pods. A serving
 * rank takes its prompt and split from each request, so the prompt here only satisfies the schema
 * and reaches no pod (rank 0's prompt flag is dropped with --serve).
 */
export function groupJob(server: ServerRef, group: number): JobRef {
  const s = server.spec;
  const spec: RunaheadJobSpec = {
    ranks: s.ranks,
    mode: 'runahead',
    model: s.model,
    dtype: s.dtype,
    prompt: { syntheticTokens: s.ranks },
    partition: s.partition,
    maxNewTokens: 0,
    executionProvider: s.executionProvider,
    threads: s.threads,
    ...(s.image !== undefined ? { image: s.image } : {}),
    imagePullPolicy: s.imagePullPolicy,
    resources: s.resources,
    ...(s.nodeSelector ? { nodeSelector: s.nodeSelector } : {}),
    ...(s.tolerations ? { tolerations: s.tolerations } : {}),
    ...(s.affinity ? { affinity: s.affinity } : {}),
    ...(s.priorityClassName ? { priorityClassName: s.priorityClassName } : {}),
    ...(s.placement ? { placement: s.placement } : {}),
    ...(s.tls ? { tls: s.tls } : {}),
    peerTimeoutSeconds: s.peerTimeoutSeconds,
    startupTimeoutSeconds: s.startupTimeoutSeconds,
    runTimeoutSeconds: s.routing.requestTimeoutSeconds,
    backoffLimit: 0,
    suspend: false,
  };
  return {
    name: serverChildNames.group(server.name, group),
    namespace: server.namespace,
    uid: server.uid,
    ...(server.labels ? { labels: server.labels } : {}),
    spec,
  };
}

/** What finds a group's children in the server controller's cache. */
function groupLabels(server: ServerRef, group: number) {
  return { [LABEL_SERVER]: server.name, [LABEL_SERVER_GROUP]: String(group) };
}

function serverLabels(server: ServerRef, group: number, role: ServerRole, revision: string) {
  return {
    ...groupLabels(server, group),
    [LABEL_SERVER_ROLE]: role,
    [LABEL_SERVER_REVISION]: revision,
    [LABEL_SERVER_RANKS]: String(server.spec.ranks),
  };
}

/**
 * A child the job code made for a group, handed to the server: `labels` added and the server as its
 * owner. Changed in place: the job code makes a fresh object each call, nobody else holds it.
 */
function ownedByServer(meta: V1ObjectMeta, server: ServerRef, labels: Record<string, string>): void {
  meta.labels = { ...meta.labels, ...labels };
  meta.ownerReferences = [controllerReference(SERVER_KIND, server)];
}

/** The client Service: every ready front of every group, on spec.service.port. */
export function desiredClientService(server: ServerRef): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: childMeta(SERVER_KIND, server, serverChildNames.service(server.name), {
      [LABEL_SERVER]: server.name,
      [LABEL_NAME]: 'runahead',
      [LABEL_MANAGED_BY]: MANAGED_BY,
    }),
    spec: {
      type: server.spec.service.type,
      selector: { [LABEL_SERVER]: server.name, [LABEL_SERVER_ROLE]: 'front', [LABEL_MANAGED_BY]: MANAGED_BY },
      ports: [
        {
          name: FRONT_PORT_NAME,
          port: server.spec.service.port,
          targetPort: FRONT_PORT_NAME,
          protocol: 'TCP',
        },
      ],
    },
  };
}

/** The group's headless Service (stable rank names), owned by the server. */
export function desiredGroupService(server: ServerRef, group: number): V1Service {
  const service = desiredService(groupJob(server, group));
  // The server's label is how its controller's cache finds the Service (and knows it exists).
  ownedByServer(service.metadata!, server, groupLabels(server, group));
  return service;
}

/**
 * The PodGroup of attempt `attempt` of group `group` (spec.placement.podGroup; null without one):
 * the job's, `<server>-g<group>-a<attempt>`, the name the group's rank pods carry, owned by the
 * server. Its minMember is `ranks`: the front does not count. The gang is what holds GPUs and must
 * start together (a chain with a rank missing serves nothing while the others hold the model); the
 * front holds no GPU, is scheduled anywhere by the default scheduler, and waits for the ranks on its
 * own (/readyz), so making it a member would only tie it to the gang scheduler.
 */
export function desiredServerPodGroup(
  server: ServerRef,
  group: number,
  attempt: number,
): PodGroupObject | null {
  const podGroup = desiredPodGroup(groupJob(server, group), attempt);
  if (podGroup) ownedByServer(podGroup.metadata, server, groupLabels(server, group));
  return podGroup;
}

/** Rank `rank` of group `group`, as the job makes it, serving (`runahead worker --serve`). */
export function desiredRankPod(
  server: ServerRef,
  group: number,
  rank: number,
  attempt: number,
  revision: string,
  defaults: OperatorDefaults,
): V1Pod {
  const job = groupJob(server, group);
  const pod = desiredPod(job, rank, attempt, defaults);
  ownedByServer(pod.metadata!, server, serverLabels(server, group, 'rank', revision));
  pod.spec!.containers[0]!.args = workerArgv({
    ...workerConfig(job, rank, defaults),
    serve: true,
    prompt: null,
  });
  return pod;
}

/** `runahead serve` flags that put the front in front of the group's ranks. */
export function frontArgv(server: ServerRef, group: number, defaults: OperatorDefaults): string[] {
  const job = groupJob(server, group);
  const c = workerConfig(job, 0, defaults);
  const s = server.spec;
  const r = s.routing;
  const k = c.chain;
  return [
    'serve',
    ...['--ranks-at', rankAddresses(job, defaults).join(',')],
    ...['--model', c.engine.model, '--seed', String(c.engine.seed), '--dtype', c.engine.dtype],
    ...partitionFlags(k.partition),
    ...(k.partitionTable ? ['--partition-table', k.partitionTable] : []),
    ...['--max-frame-bytes', String(k.maxFrameBytes), '--max-queued-frames', String(k.maxQueuedFrames)],
    ...['--peer-timeout-ms', String(k.peerTimeoutMs), '--run-timeout-ms', String(k.runTimeoutMs)],
    ...(k.tls ? ['--tls-cert', k.tls.cert, '--tls-key', k.tls.key, '--tls-ca', k.tls.ca] : []),
    // The pod's own IP (kubelet's $(VAR) expansion of the env below): what probes and the Service reach.
    ...['--host', '$(POD_IP)', '--port', String(FRONT_PORT)],
    ...['--route', r.policy, ...(r.singleBelowTokens ? ['--single-below', String(r.singleBelowTokens)] : [])],
    ...['--max-queue', String(r.maxQueue), '--request-timeout-ms', String(r.requestTimeoutSeconds * 1000)],
    ...['--served-model-name', s.servedModelName ?? server.name],
  ];
}

/**
 * The group's front: rank 0's pod (its image, volumes — the tokenizer is the checkpoint's — TLS and
 * security context) running `runahead serve --ranks-at` instead, without GPUs, placement or gates.
 * Ready = /readyz: every rank of the group answers SERVING.
 */
export function desiredFrontPod(
  server: ServerRef,
  group: number,
  revision: string,
  defaults: OperatorDefaults,
): V1Pod {
  const rank0 = desiredPod(groupJob(server, group), 0, 0, defaults);
  // Not a rank: without the rank labels, the job's controller and observePod pass it by; nor a
  // member of the gang's PodGroup (desiredServerPodGroup says why) or of Kueue's pod group, whose
  // total count is the ranks (with the server's queue label the front is a workload of its own).
  const rankOnly = new Set([
    LABEL_RANK,
    LABEL_ATTEMPT,
    LABEL_JOB,
    LABEL_COSCHEDULING_POD_GROUP,
    KUEUE.podGroupName,
  ]);
  const labels = Object.fromEntries(
    Object.entries(rank0.metadata!.labels ?? {}).filter(([k]) => !rankOnly.has(k)),
  );
  const worker = rank0.spec!.containers[0]!;
  const front: V1Container = {
    name: 'front',
    image: worker.image!,
    imagePullPolicy: worker.imagePullPolicy!,
    args: frontArgv(server, group, defaults),
    env: [
      { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'RUNAHEAD_SERVER', value: server.name },
      { name: 'RUNAHEAD_SERVER_GROUP', value: String(group) },
    ],
    ports: [{ name: FRONT_PORT_NAME, containerPort: FRONT_PORT, protocol: 'TCP' }],
    readinessProbe: {
      httpGet: { path: '/readyz', port: FRONT_PORT_NAME },
      periodSeconds: 2,
      failureThreshold: 1,
    },
    livenessProbe: {
      httpGet: { path: '/healthz', port: FRONT_PORT_NAME },
      periodSeconds: 10,
      failureThreshold: 3,
    },
    resources: FRONT_RESOURCES,
    ...(worker.securityContext ? { securityContext: worker.securityContext } : {}),
    ...(worker.volumeMounts ? { volumeMounts: worker.volumeMounts } : {}),
  };
  // Anywhere: a front holds no GPU, so no placement, gate or gang scheduler applies to it.
  const spec = rank0.spec!;
  delete spec.hostname;
  delete spec.subdomain;
  delete spec.affinity;
  delete spec.schedulingGates;
  delete spec.schedulerName;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: childMeta(SERVER_KIND, server, serverChildNames.frontPod(server.name, group), {
      ...labels,
      [LABEL_COMPONENT]: 'front',
      ...serverLabels(server, group, 'front', revision),
    }),
    spec: Object.assign(spec, { restartPolicy: 'Never', containers: [front] }),
  };
}

/** Every pod of group `group`, ranks in order then the front (the order they are created in). */
export function desiredGroupPods(
  server: ServerRef,
  group: number,
  attempt: number,
  revision: string,
  defaults: OperatorDefaults,
): V1Pod[] {
  return [
    ...Array.from({ length: server.spec.ranks }, (_, rank) =>
      desiredRankPod(server, group, rank, attempt, revision, defaults),
    ),
    desiredFrontPod(server, group, revision, defaults),
  ];
}
