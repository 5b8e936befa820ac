// The RunaheadServer API: warm rank groups that serve completions (`runahead serve`'s front over rank
// pods in --serve mode), kept whole by the operator. The rank group's fields (ranks, model, dtype,
// partition, resources, placement, TLS, …) are the job's own schemas, taken from RunaheadJobSpecSchema
// so that both kinds say and check them the same way; what is the server's own (replicas of whole
// groups, the roll, routing, the client Service) is defined here. As in runahead-job.ts, rules are
// written twice: CEL for the API server, zod for the operator.
import { z } from 'zod';
import { nameRule, objectMetaSchema } from './object-meta.ts';
import {
  cel,
  checkModelAndPartition,
  Condition,
  describeIssues,
  RunaheadJobSpecSchema,
} from './runahead-job.ts';
import { MAX_SERVER_NAME_LENGTH, MAX_SERVER_REPLICAS } from './server-names.ts';

const job = RunaheadJobSpecSchema.shape;

export const ROUTES = ['split', 'single', 'auto'] as const;
/** Where a server's queue and request limits stop: what one front holds in memory. */
const MAX_QUEUE = 1024;

const Service = z
  .strictObject({
    port: z.int().min(1).max(65535).default(8000).describe('Port of the client Service.'),
    type: z
      .enum(['ClusterIP', 'NodePort', 'LoadBalancer'])
      .default('ClusterIP')
      .describe('Service type of the client Service.'),
  })
  .describe('The Service clients send completions to; it selects every ready group’s front.');

const Routing = z
  .strictObject({
    policy: z
      .enum(ROUTES)
      .default('split')
      .describe(
        'split: every prompt over the whole chain; single: every prompt on rank 0 alone; auto: prompts shorter than singleBelowTokens on one rank, the chain from there.',
      ),
    singleBelowTokens: z
      .int()
      .min(1)
      .max(1_048_576)
      .optional()
      .describe('auto only: prompts shorter than this run on one rank.'),
    maxQueue: z
      .int()
      .min(0)
      .max(MAX_QUEUE)
      .default(16)
      .describe('Requests each group’s front holds waiting; more are refused with 429 and Retry-After.'),
    requestTimeoutSeconds: z
      .int()
      .min(1)
      .max(3600)
      .default(120)
      .describe('A request still running this long (queue included) is answered 504 and its run stopped.'),
  })
  .meta({
    'x-kubernetes-validations': [
      cel(
        // has(): the CRD's default for routing is {} and the API server checks it before defaulting inside.
        "(has(self.policy) && self.policy == 'auto') == has(self.singleBelowTokens)",
        'routing.singleBelowTokens is required with policy auto and only allowed with it',
        '.singleBelowTokens',
      ),
    ],
  });

const EXPLICIT_MESSAGE =
  'partition.strategy explicit fixes one prompt length; a server splits each prompt by its own length: use even or balanced';

export const RunaheadServerSpecSchema = z
  .strictObject({
    ranks: job.ranks,
    model: job.model,
    dtype: job.dtype,
    partition: job.partition,
    executionProvider: job.executionProvider,
    threads: job.threads,
    image: job.image,
    imagePullPolicy: job.imagePullPolicy,
    resources: job.resources,
    nodeSelector: job.nodeSelector,
    tolerations: job.tolerations,
    affinity: job.affinity,
    priorityClassName: job.priorityClassName,
    placement: job.placement,
    tls: job.tls,
    peerTimeoutSeconds: job.peerTimeoutSeconds,
    startupTimeoutSeconds: job.startupTimeoutSeconds,
    replicas: z
      .int()
      .min(0)
      .max(MAX_SERVER_REPLICAS)
      .default(1)
      .describe('Rank groups, each a whole chain of `ranks` pods and a front; 0 holds the server.'),
    maxUnavailable: z
      .int()
      .min(1)
      .max(MAX_SERVER_REPLICAS)
      .default(1)
      .describe('Groups a spec change takes down at once while it rolls them to the new spec.'),
    servedModelName: z
      .string()
      .min(1)
      .max(256)
      .optional()
      .describe('The model name clients send (default: the server’s name).'),
    routing: Routing.prefault({}),
    service: Service.prefault({}),
  })
  .meta({
    'x-kubernetes-validations': [
      cel("self.partition.strategy != 'explicit'", EXPLICIT_MESSAGE, '.partition.strategy'),
    ],
  })
  .superRefine((spec, ctx) => {
    checkModelAndPartition(spec, ctx);
    if (spec.partition.strategy === 'explicit')
      ctx.addIssue({ code: 'custom', path: ['partition', 'strategy'], message: EXPLICIT_MESSAGE });
    if ((spec.routing.policy === 'auto') !== (spec.routing.singleBelowTokens !== undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['routing', 'singleBelowTokens'],
        message: 'routing.singleBelowTokens is required with policy auto and only allowed with it',
      });
  });
export type RunaheadServerSpec = z.infer<typeof RunaheadServerSpecSchema>;
export type RunaheadServerSpecInput = z.input<typeof RunaheadServerSpecSchema>;

// ------------------------------------------------------------------------------------------ status

const GroupStatus = z.strictObject({
  group: z.int().min(0),
  /** The spec revision its pods run (a hash of the spec's rank-group fields). */
  revision: z.string().max(64),
  /** Every rank pod and the front are ready (the front's /readyz: every rank SERVING). */
  ready: z.boolean(),
  /** Times this group was started again after a rank pod failed or was deleted. */
  restarts: z.int().min(0),
  /** Why it is not ready, when it is not. */
  message: z.string().max(4096).optional(),
});
export type GroupStatus = z.infer<typeof GroupStatus>;

const TtftPercentiles = z.strictObject({
  p50: z.number().min(0),
  p90: z.number().min(0),
  p99: z.number().min(0),
  /** Requests the percentiles are over. */
  requests: z.int().min(0),
});

export const RunaheadServerStatusSchema = z.strictObject({
  observedGeneration: z.int().min(0).optional(),
  conditions: z
    .array(Condition)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] }),
  replicas: z.int().min(0).optional(),
  readyReplicas: z.int().min(0).optional(),
  /** Groups running the current spec revision. */
  updatedReplicas: z.int().min(0).optional(),
  /** The revision of the current spec. */
  revision: z.string().max(64).optional(),
  /** Where clients send completions: http://<service>.<namespace>.svc:<port>/v1/completions. */
  endpoint: z.string().max(512).optional(),
  groups: z.array(GroupStatus).max(MAX_SERVER_REPLICAS).optional(),
  /** Recent time to first token over every group's front, in milliseconds. */
  ttftMs: TtftPercentiles.optional(),
});
export type RunaheadServerStatus = z.infer<typeof RunaheadServerStatusSchema>;

// ------------------------------------------------------------------------------------------ object

export const SERVER_ROOT_VALIDATIONS = [nameRule(MAX_SERVER_NAME_LENGTH, "the server's Services and pods")];

export const RunaheadServerSchema = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: objectMetaSchema(MAX_SERVER_NAME_LENGTH),
  spec: RunaheadServerSpecSchema,
  status: RunaheadServerStatusSchema.optional(),
});
export type RunaheadServer = z.infer<typeof RunaheadServerSchema>;

/** Parse an object read from the API server; a failure says which field and why. */
export function parseRunaheadServer(
  obj: unknown,
): { ok: true; server: RunaheadServer } | { ok: false; message: string } {
  const r = RunaheadServerSchema.safeParse(obj);
  return r.success ? { ok: true, server: r.data } : { ok: false, message: describeIssues(r.error) };
}
