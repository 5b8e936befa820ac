// What should exist for a RunaheadJob, as a pure function of the job: the headless Service that
// gives every rank a stable DNS name, the ConfigMap the ranks share, and one Pod per rank.
//
// Ordering: the pods of a group are created together, in rank order, rather than one after another
// as each becomes ready. Every rank loads the whole model before it is ready (minutes for a 7B
// model), so loading them in parallel is what keeps time-to-ready close to one load; the chain still
// starts only when every rank is ready, because rank 0 waits for every peer's gRPC health check to
// say SERVING before it releases the prompt (worker/chain/rank-node.ts).
import type {
  V1ConfigMap,
  V1EnvVar,
  V1ObjectMeta,
  V1Pod,
  V1Probe,
  V1Service,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { partitionFromSpec, resolvePartition } from '../core/partition-choice.ts';
import { DEFAULT_HOST_PATH_POLICY, type HostPathPolicy } from './policies/host-path-policy.ts';
import { DEFAULT_IMAGE_POLICY, type ImagePolicy } from './policies/image-policy.ts';
import { DEFAULT_NAMESPACE_POLICY, type NamespacePolicy } from './policies/namespace-policy.ts';
import { DEFAULT_PASS_THROUGH_POLICY, type PassThroughPolicy } from './policies/pass-through-policy.ts';
import { DEFAULT_LIMITS } from '../core/protocol.ts';
import { workerArgv, type WorkerConfig } from '../core/worker-config.ts';
import {
  DEFAULT_RUN_TIMEOUT_SECONDS,
  type RunaheadJob,
  type RunaheadJobSpec,
} from '../core/api/v1alpha1/runahead-job.ts';
import {
  KIND,
  LABEL_ATTEMPT,
  LABEL_COMPONENT,
  LABEL_JOB,
  LABEL_MANAGED_BY,
  LABEL_NAME,
  LABEL_RANK,
  MANAGED_BY,
  RANK_KV_PORT,
  RANK_KV_PORT_NAME,
  RANK_PORT,
  RANK_PORT_NAME,
  childNames,
} from '../core/api/v1alpha1/names.ts';
import { TERMINATION_MESSAGE_PATH } from '../core/api/termination-message.ts';
import { podGroupName, rankPlacement } from './rank-placement.ts';
import { childMeta, ownerRef, type OwnerRef } from './owned-objects.ts';
import { POD_GROUP_APIS } from '../core/api/v1alpha1/placement.ts';

export interface OperatorDefaults {
  /** Worker image for jobs that name none. */
  readonly workerImage: string;
  /** Cluster DNS domain (rank addresses are `<pod>.<service>.<namespace>.svc.<domain>`). */
  readonly clusterDomain: string;
  /** What a cluster admin allows jobs to read from their nodes (operator/policies/host-path-policy.ts). */
  readonly hostPathPolicy: HostPathPolicy;
  /** Which images ranks may run (operator/policies/image-policy.ts). */
  readonly imagePolicy: ImagePolicy;
  /** Whether tolerations and priorityClassName reach the pods (operator/policies/pass-through-policy.ts). */
  readonly passThroughPolicy: PassThroughPolicy;
  /** Which namespaces are served (operator/policies/namespace-policy.ts). */
  readonly namespacePolicy: NamespacePolicy;
  /** The gang's gate waits until the group fits (operator/policies/capacity-policy.ts); needs nodes. */
  readonly gangCapacityCheck: boolean;
}

export const DEFAULT_OPERATOR_DEFAULTS: OperatorDefaults = {
  workerImage: 'ghcr.io/runahead/worker:0.1.0',
  clusterDomain: 'cluster.local',
  hostPathPolicy: DEFAULT_HOST_PATH_POLICY,
  imagePolicy: DEFAULT_IMAGE_POLICY,
  passThroughPolicy: DEFAULT_PASS_THROUGH_POLICY,
  namespacePolicy: DEFAULT_NAMESPACE_POLICY,
  gangCapacityCheck: false,
};

/** The worker image's non-root user (images/worker.Dockerfile). */
const WORKER_UID = 65532;
const CONFIG_DIR = '/etc/runahead';
const PROMPT_FILE = `${CONFIG_DIR}/prompt/prompt.txt`;
const TABLE_FILE = `${CONFIG_DIR}/partition/table.json`;
const TLS_DIR = `${CONFIG_DIR}/tls`;

/** A job as the planner needs it: validated spec, identity, its labels (Kueue's queue name). */
export type JobRef = OwnerRef<RunaheadJobSpec>;

export const jobRef = (job: RunaheadJob): JobRef => ownerRef(job);

export function jobLabels(job: JobRef): Record<string, string> {
  return {
    [LABEL_JOB]: job.name,
    [LABEL_NAME]: 'runahead',
    [LABEL_COMPONENT]: 'worker',
    [LABEL_MANAGED_BY]: MANAGED_BY,
  };
}

function meta(job: JobRef, name: string, labels: Record<string, string> = jobLabels(job)) {
  return childMeta(KIND, job, name, labels);
}

/** host:port of every rank, by rank, through the headless Service. */
export function rankAddresses(job: JobRef, defaults: OperatorDefaults): string[] {
  const service = childNames.service(job.name);
  return Array.from(
    { length: job.spec.ranks },
    (_, i) =>
      `${childNames.hostname(job.name, i)}.${service}.${job.namespace}.svc.${defaults.clusterDomain}:${RANK_PORT}`,
  );
}

/**
 * The split, when the operator can know it before the run: explicit boundaries, or an even split of
 * a synthetic prompt. Otherwise (a text prompt's length is known only after rank 0 tokenizes it,
 * or a balanced table) rank 0 computes it and the status shows it once the run reports.
 */
export function plannedBoundaries(spec: RunaheadJobSpec): number[] | null {
  const choice = partitionFromSpec(spec.partition);
  const tokens = spec.prompt.syntheticTokens;
  if (choice.kind === 'balanced' || (choice.kind === 'even' && tokens === undefined)) return null;
  if (choice.kind === 'explicit') return [...choice.boundaries];
  return resolvePartition(choice, tokens!, spec.ranks, null).boundaries;
}

export function desiredService(job: JobRef): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(job, childNames.service(job.name)),
    spec: {
      clusterIP: 'None',
      // Ranks resolve each other while they load the model, before they are ready.
      publishNotReadyAddresses: true,
      selector: { [LABEL_JOB]: job.name, [LABEL_MANAGED_BY]: MANAGED_BY },
      ports: [{ name: RANK_PORT_NAME, port: RANK_PORT, targetPort: RANK_PORT_NAME, protocol: 'TCP' }],
    },
  };
}

/** A gang scheduler's PodGroup: bind all `ranks` pods or none (minMember). */
export interface PodGroupObject {
  readonly apiVersion: string;
  readonly kind: 'PodGroup';
  readonly metadata: V1ObjectMeta;
  readonly spec: { readonly minMember: number; readonly scheduleTimeoutSeconds?: number };
}

/** The PodGroup of one attempt, for spec.placement.podGroup; null without one. */
export function desiredPodGroup(job: JobRef, attempt: number): PodGroupObject | null {
  const scheduler = job.spec.placement?.podGroup?.scheduler;
  if (!scheduler) return null;
  const api = POD_GROUP_APIS[scheduler];
  return {
    apiVersion: `${api.group}/${api.version}`,
    kind: 'PodGroup',
    metadata: meta(job, podGroupName(job.name, attempt)),
    spec: {
      minMember: job.spec.ranks,
      // Coscheduling gives up on a group that waits this long; startupTimeoutSeconds says the same.
      ...(scheduler === 'Coscheduling' ? { scheduleTimeoutSeconds: job.spec.startupTimeoutSeconds } : {}),
    },
  };
}

export function desiredConfigMap(job: JobRef, defaults: OperatorDefaults): V1ConfigMap {
  const data: Record<string, string> = {
    peers: rankAddresses(job, defaults).join('\n'),
  };
  if (job.spec.prompt.text !== undefined) data['prompt.txt'] = job.spec.prompt.text;
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta(job, childNames.configMap(job.name)), data };
}

function modelReference(spec: RunaheadJobSpec): string {
  if (spec.model.synthetic) return `synthetic:${spec.model.synthetic.preset}`;
  const c = spec.model.checkpoint!;
  const base = c.mountPath.replace(/\/+$/, '');
  return c.path ? `${base}/${c.path.replace(/\/+$/, '')}` : base;
}

/** How long a rank's run may take: the job's runTimeoutSeconds, else its activeDeadlineSeconds. */
export function runTimeoutSeconds(spec: RunaheadJobSpec): number {
  return spec.runTimeoutSeconds ?? spec.activeDeadlineSeconds ?? DEFAULT_RUN_TIMEOUT_SECONDS;
}

/** What rank `rank` of the job is told (core/worker-config.ts: the worker parses the same). */
export function workerConfig(job: JobRef, rank: number, defaults: OperatorDefaults): WorkerConfig {
  const spec = job.spec;
  return {
    rank,
    worldSize: spec.ranks,
    peers: rankAddresses(job, defaults),
    listen: `0.0.0.0:${RANK_PORT}`,
    kvPort: RANK_KV_PORT,
    serve: false,
    engine: {
      model: modelReference(spec),
      ep: spec.executionProvider,
      dtype: spec.dtype,
      threads: spec.threads,
      seed: spec.model.synthetic?.seed ?? 0,
      device: 0,
      layersPerGraph: 'auto',
      attention: 'auto',
      io: 'auto',
    },
    // A missing or broken checkpoint is reported against the field the user wrote.
    modelOrigin: spec.model.checkpoint ? 'spec.model.checkpoint.path' : 'spec.model.synthetic.preset',
    // Only rank 0 reads the prompt; the others take their chunks from it.
    prompt:
      rank !== 0
        ? null
        : spec.prompt.syntheticTokens !== undefined
          ? { kind: 'tokens', count: spec.prompt.syntheticTokens }
          : { kind: 'file', path: PROMPT_FILE },
    chain: {
      mode: spec.mode,
      partition: partitionFromSpec(spec.partition),
      ...(spec.partition.strategy === 'balanced' ? { partitionTable: TABLE_FILE } : {}),
      maxNewTokens: spec.maxNewTokens,
      maxFrameBytes: DEFAULT_LIMITS.maxFrameBytes,
      maxQueuedFrames: DEFAULT_LIMITS.maxQueuedFrames,
      peerTimeoutMs: spec.peerTimeoutSeconds * 1000,
      startupTimeoutMs: spec.startupTimeoutSeconds * 1000,
      runTimeoutMs: runTimeoutSeconds(spec) * 1000,
      kvTransport: 'socket',
      tls: spec.tls
        ? { cert: `${TLS_DIR}/tls.crt`, key: `${TLS_DIR}/tls.key`, ca: `${TLS_DIR}/ca.crt` }
        : null,
    },
    terminationLog: TERMINATION_MESSAGE_PATH,
    resultFile: null,
    json: false,
  };
}

function volumes(job: JobRef): { volumes: V1Volume[]; mounts: V1VolumeMount[] } {
  const spec = job.spec;
  const volumes: V1Volume[] = [{ name: 'tmp', emptyDir: { sizeLimit: '1Gi' } }];
  const mounts: V1VolumeMount[] = [{ name: 'tmp', mountPath: '/tmp' }];
  if (spec.prompt.text !== undefined) {
    volumes.push({
      name: 'prompt',
      configMap: { name: childNames.configMap(job.name), items: [{ key: 'prompt.txt', path: 'prompt.txt' }] },
    });
  } else if (spec.prompt.configMapKeyRef) {
    const ref = spec.prompt.configMapKeyRef;
    volumes.push({
      name: 'prompt',
      configMap: { name: ref.name, items: [{ key: ref.key, path: 'prompt.txt' }] },
    });
  }
  if (volumes.some((v) => v.name === 'prompt'))
    mounts.push({ name: 'prompt', mountPath: `${CONFIG_DIR}/prompt`, readOnly: true });
  const table = spec.partition.tableConfigMapRef;
  if (table) {
    volumes.push({
      name: 'partition-table',
      configMap: { name: table.name, items: [{ key: table.key, path: 'table.json' }] },
    });
    mounts.push({ name: 'partition-table', mountPath: `${CONFIG_DIR}/partition`, readOnly: true });
  }
  const checkpoint = spec.model.checkpoint;
  if (checkpoint) {
    const v = checkpoint.volume;
    volumes.push(
      v.persistentVolumeClaim
        ? {
            name: 'model',
            persistentVolumeClaim: { claimName: v.persistentVolumeClaim.claimName, readOnly: true },
          }
        : { name: 'model', hostPath: { path: v.hostPath!.path, type: 'Directory' } },
    );
    mounts.push({ name: 'model', mountPath: checkpoint.mountPath, readOnly: true });
  }
  if (spec.tls) {
    volumes.push({ name: 'tls', secret: { secretName: spec.tls.secretName, defaultMode: 0o440 } });
    mounts.push({ name: 'tls', mountPath: TLS_DIR, readOnly: true });
  }
  return { volumes, mounts };
}

/** Per-rank resources: as given, or one GPU for GPU execution providers. */
export function rankResources(spec: RunaheadJobSpec): {
  limits?: Record<string, string>;
  requests?: Record<string, string>;
} {
  const str = (list: Record<string, string | number> | undefined) =>
    list ? Object.fromEntries(Object.entries(list).map(([k, v]) => [k, String(v)])) : undefined;
  const limits = str(spec.resources.limits);
  const requests = str(spec.resources.requests);
  if (!limits && !requests && spec.executionProvider !== 'cpu') return { limits: { 'nvidia.com/gpu': '1' } };
  return { ...(limits ? { limits } : {}), ...(requests ? { requests } : {}) };
}

/**
 * Ready = the model is loaded and the rank serves: the gRPC health service says SERVING
 * (worker/chain/rank-node.ts). With mutual TLS the kubelet's gRPC probe (plaintext) cannot talk to
 * it; the rank binds its port only once the model is loaded, so an open port means the same there.
 */
function readinessProbe(spec: RunaheadJobSpec): V1Probe {
  const check = spec.tls ? { tcpSocket: { port: RANK_PORT } } : { grpc: { port: RANK_PORT } };
  return { ...check, periodSeconds: 2, failureThreshold: 1 };
}

function rankEnv(job: JobRef, rank: number, defaults: OperatorDefaults): V1EnvVar[] {
  const peers = rankAddresses(job, defaults);
  // For people reading the pod (the worker takes everything from its args): who it is and its
  // neighbours in the chain.
  const env: V1EnvVar[] = [
    { name: 'RUNAHEAD_JOB', value: job.name },
    { name: 'RUNAHEAD_RANK', value: String(rank) },
    { name: 'RUNAHEAD_WORLD_SIZE', value: String(job.spec.ranks) },
    { name: 'RUNAHEAD_PEERS', value: peers.join(',') },
    { name: 'RUNAHEAD_PREDECESSOR', value: rank > 0 ? peers[rank - 1]! : '' },
    { name: 'RUNAHEAD_SUCCESSOR', value: rank + 1 < peers.length ? peers[rank + 1]! : '' },
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
  ];
  return env;
}

export function desiredPod(job: JobRef, rank: number, attempt: number, defaults: OperatorDefaults): V1Pod {
  const spec = job.spec;
  const { volumes: vols, mounts } = volumes(job);
  const placement = rankPlacement(job, rank, attempt);
  const labels = {
    ...placement.labels,
    ...jobLabels(job),
    [LABEL_RANK]: String(rank),
    [LABEL_ATTEMPT]: String(attempt),
  };
  const annotations = Object.keys(placement.annotations).length > 0 ? placement.annotations : undefined;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      ...meta(job, childNames.pod(job.name, rank), labels),
      ...(annotations ? { annotations } : {}),
    },
    spec: {
      hostname: childNames.hostname(job.name, rank),
      subdomain: childNames.service(job.name),
      // A failed rank fails the group: the operator restarts all ranks together (the chain's state
      // lives in all of them), so the kubelet must not restart one alone.
      restartPolicy: 'Never',
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 10,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: WORKER_UID,
        runAsGroup: WORKER_UID,
        fsGroup: WORKER_UID,
        seccompProfile: { type: 'RuntimeDefault' },
      },
      ...(spec.nodeSelector ? { nodeSelector: spec.nodeSelector } : {}),
      // Passed through where the admin allows them (policies/pass-through-policy.ts); their shape is
      // core/v1's (core/api/v1alpha1/scheduling.ts), checked by the API server on the job already.
      ...(spec.tolerations ? { tolerations: spec.tolerations } : {}),
      // spec.affinity plus spec.placement's terms (rank-placement.ts).
      ...(placement.affinity ? { affinity: placement.affinity } : {}),
      ...(spec.priorityClassName ? { priorityClassName: spec.priorityClassName } : {}),
      ...(placement.schedulerName ? { schedulerName: placement.schedulerName } : {}),
      // The gang's gate: lifted by the operator once every rank pod of the group exists.
      ...(placement.schedulingGates.length > 0 ? { schedulingGates: placement.schedulingGates } : {}),
      containers: [
        {
          name: 'worker',
          image: spec.image ?? defaults.workerImage,
          imagePullPolicy: spec.imagePullPolicy,
          args: workerArgv(workerConfig(job, rank, defaults)),
          env: rankEnv(job, rank, defaults),
          ports: [
            { name: RANK_PORT_NAME, containerPort: RANK_PORT, protocol: 'TCP' },
            { name: RANK_KV_PORT_NAME, containerPort: RANK_KV_PORT, protocol: 'TCP' },
          ],
          // Ready = the model is loaded and the rank serves (worker/chain/rank-node.ts sets SERVING).
          readinessProbe: readinessProbe(spec),
          resources: rankResources(spec),
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ['ALL'] },
          },
          volumeMounts: mounts,
          terminationMessagePath: TERMINATION_MESSAGE_PATH,
          // A rank that dies before writing its message still says why: the end of its log.
          terminationMessagePolicy: 'FallbackToLogsOnError',
        },
      ],
      volumes: vols,
    },
  };
}

/** Every rank's pod, in rank order. */
export function desiredPods(job: JobRef, attempt: number, defaults: OperatorDefaults): V1Pod[] {
  return Array.from({ length: job.spec.ranks }, (_, rank) => desiredPod(job, rank, attempt, defaults));
}

/**
 * Everything the operator creates for one attempt of the job, in the order it creates them: the
 * Service, the ConfigMap, the PodGroup (spec.placement.podGroup), the rank pods. `runahead render`
 * prints this.
 */
export function desiredChildren(
  job: JobRef,
  attempt: number,
  defaults: OperatorDefaults,
): (V1Service | V1ConfigMap | PodGroupObject | V1Pod)[] {
  const podGroup = desiredPodGroup(job, attempt);
  return [
    desiredService(job),
    desiredConfigMap(job, defaults),
    ...(podGroup ? [podGroup] : []),
    ...desiredPods(job, attempt, defaults),
  ];
}
