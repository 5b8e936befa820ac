// The RunaheadJob API, defined once: these zod schemas give the TypeScript types, the operator's
// validation (parse at the boundary, trust inside) and, through core/api/crd.ts, the CRD's OpenAPI
// schema in crds/. Rules a schema alone cannot state are written twice on purpose, side by side: as
// CEL (`x-kubernetes-validations`, so the API server refuses the manifest) and as zod refinements
// (so the operator refuses an object that reached it another way, e.g. stored before the CRD
// changed). test/integration/crd-validation.test.ts runs every invalid manifest through both.
import { z } from 'zod';
import { nameRule, objectMetaSchema } from './object-meta.ts';
import { MAX_JOB_NAME_LENGTH, PHASES } from './names.ts';
import { Affinity, NodeSelector, Tolerations } from './scheduling.ts';
import { Placement } from './placement.ts';

/** Keep in step with worker/model/presets.ts (a unit test checks). */
export const SYNTHETIC_PRESETS = ['tiny', 'small', 'llama-7b', 'llama3-8b'] as const;
export const EXECUTION_PROVIDERS = ['cpu', 'webgpu', 'cuda'] as const;
/** How a run uses its ranks; the one list every layer (CRD, flags, protocol, reports) takes. */
export const MODES = ['runahead', 'tsp', 'single'] as const;
export type ModeName = (typeof MODES)[number];
/** The modes that split the context among ranks (a partition table is for one of these). */
export const SPLIT_MODES = ['runahead', 'tsp'] as const satisfies readonly ModeName[];
export const PARTITION_STRATEGIES = ['even', 'balanced', 'explicit'] as const;
export const DTYPES = ['float32', 'float16'] as const;
export const MAX_RANKS = 64;
/** The run timeout of a job that sets neither runTimeoutSeconds nor activeDeadlineSeconds. */
export const DEFAULT_RUN_TIMEOUT_SECONDS = 3600;

export const cel = (rule: string, message: string, fieldPath?: string) => ({
  rule,
  message,
  ...(fieldPath ? { fieldPath } : {}),
});

/** resource.Quantity as the API server accepts it (apimachinery's regular expression). */
const QUANTITY_RE =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
const Quantity = z
  .union([
    z.string().regex(QUANTITY_RE, 'must be a Kubernetes quantity such as 500m, 2, 4Gi'),
    z.int().nonnegative(),
  ])
  // maxLength bounds what the CEL rules of a resource list may cost the API server.
  .meta({ 'x-kubernetes-int-or-string': true, maxLength: 64 });

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const ObjectName = z
  .string()
  .min(1)
  .max(253)
  .regex(DNS_SUBDOMAIN, 'must be a lowercase DNS subdomain name (a-z, 0-9, - and .)');
const ConfigMapKey = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[-._a-zA-Z0-9]+$/, 'must be a ConfigMap key (letters, digits, -, _ and .)');

const KeyRef = z.strictObject({
  name: ObjectName.describe('Name of the ConfigMap, in the job’s namespace.'),
  key: ConfigMapKey.describe('Key within the ConfigMap.'),
});

const exactlyOne = (fields: readonly string[], what: string) =>
  cel(
    fields.map((f) => `(has(self.${f}) ? 1 : 0)`).join(' + ') + ' == 1',
    `${what}: set exactly one of ${fields.join(', ')}`,
  );

// ---------------------------------------------------------------------------------------------- model

const SyntheticModel = z
  .strictObject({
    preset: z
      .enum(SYNTHETIC_PRESETS)
      .describe('Architecture to generate: tiny (tests), small (CPU), llama-7b, llama3-8b.'),
    seed: z.int().min(0).max(2_147_483_647).default(0).describe('Seed of the generated weights.'),
  })
  .describe('A deterministic model generated in every rank, no files needed (benchmarks, trials).');

/** Directories of the node a rank must never read, nor a container mount over. */
const SYSTEM_DIRS = [
  '/dev',
  '/proc',
  '/sys',
  '/etc',
  '/run',
  '/var/run',
  '/var/lib/kubelet',
  '/boot',
  '/root',
];
/** The operator's own mounts in a rank's container (operator/desired-children.ts). */
const OPERATOR_MOUNTS = ['/tmp', '/etc/runahead'];

/**
 * An absolute, normalized path: no "." or ".." segments, no empty segment ("//"), no trailing "/",
 * no control characters, not "/" itself, and not `denied` nor under it. Written twice, as zod (the
 * operator) and CEL (the API server).
 */
function safePath(denied: readonly string[], what: string, colon: 'allowed' | 'refused') {
  const message = `${what} must be a normalized absolute path (no "..", ".", "//" or trailing "/"${colon === 'refused' ? ', no ":"' : ''}), not / and not under ${denied.join(', ')}`;
  // Control characters (< 0x20, 0x7f) checked apart: a regular expression naming them reads badly.
  const hasControl = (p: string) => {
    for (let i = 0; i < p.length; i++) if (p.charCodeAt(i) < 0x20 || p.charCodeAt(i) === 0x7f) return true;
    return false;
  };
  const zodSegment = colon === 'refused' ? /^(\/[^/:]+)+$/ : /^(\/[^/]+)+$/;
  const zodRule = (p: string) =>
    zodSegment.test(p) &&
    !hasControl(p) &&
    !p.split('/').some((seg) => seg === '.' || seg === '..') &&
    !denied.some((d) => p === d || p.startsWith(`${d}/`));
  const celRule = [
    `self.matches('^(/[^/${colon === 'refused' ? ':' : ''}\\\\x00-\\\\x1f\\\\x7f]+)+$')`,
    "!self.split('/').exists(seg, seg == '.' || seg == '..')",
    ...denied.map((d) => `self != '${d}' && !self.startsWith('${d}/')`),
  ].join(' && ');
  return z
    .string()
    .min(2)
    .max(1024)
    .refine(zodRule, message)
    .meta({ 'x-kubernetes-validations': [cel(celRule, message)] });
}

const CheckpointVolume = z
  .strictObject({
    persistentVolumeClaim: z
      .strictObject({ claimName: ObjectName, readOnly: z.boolean().default(true) })
      .optional(),
    hostPath: z.strictObject({ path: safePath(SYSTEM_DIRS, 'hostPath.path', 'allowed') }).optional(),
  })
  .describe('Where the checkpoint lives: a PersistentVolumeClaim or a directory on the node.')
  .meta({ 'x-kubernetes-validations': [exactlyOne(['persistentVolumeClaim', 'hostPath'], 'volume')] });

const RELATIVE_PATH_MESSAGE = 'must be relative to mountPath, without ".."';
const CheckpointModel = z
  .strictObject({
    volume: CheckpointVolume,
    mountPath: safePath([...SYSTEM_DIRS, ...OPERATOR_MOUNTS], 'mountPath', 'refused')
      .default('/models')
      .describe('Where the volume is mounted in every rank’s container (read-only).'),
    path: z
      .string()
      .max(1024)
      .refine((p) => !p.startsWith('/') && !p.split('/').includes('..'), RELATIVE_PATH_MESSAGE)
      .default('')
      .describe(
        'Directory of the checkpoint (config.json, *.safetensors, tokenizer.json) relative to mountPath.',
      ),
  })
  .describe('A Hugging Face-style Llama checkpoint directory on a volume.')
  .meta({
    'x-kubernetes-validations': [
      cel(
        "!self.path.startsWith('/') && !self.path.split('/').exists(s, s == '..')",
        RELATIVE_PATH_MESSAGE,
        '.path',
      ),
    ],
  });

export const Model = z
  .strictObject({
    synthetic: SyntheticModel.optional(),
    checkpoint: CheckpointModel.optional(),
  })
  .meta({ 'x-kubernetes-validations': [exactlyOne(['synthetic', 'checkpoint'], 'model')] });

// --------------------------------------------------------------------------------------------- prompt

/** Inline prompts: what fits beside the rest of a ConfigMap (1 MiB) and a client-side apply's annotation. */
const PROMPT_TEXT_MAX_BYTES = 256 * 1024;
const PROMPT_TEXT_MESSAGE = `prompt.text must be at most ${PROMPT_TEXT_MAX_BYTES} bytes of UTF-8; put a longer prompt in a ConfigMap (prompt.configMapKeyRef)`;

/** What a running group was planned from: changing any of it would need new pods. */
const IMMUTABLE_FIELDS = [
  'ranks',
  'mode',
  'model',
  'prompt',
  'partition',
  'dtype',
  'executionProvider',
  'image',
] as const;
/** Optional fields compare their presence first (CEL cannot compare an unset field). */
const immutableRule = (f: string) =>
  f === 'image'
    ? 'has(self.image) == has(oldSelf.image) && (!has(self.image) || self.image == oldSelf.image)'
    : `self.${f} == oldSelf.${f}`;

const Prompt = z
  .strictObject({
    text: z
      .string()
      .min(1)
      .max(PROMPT_TEXT_MAX_BYTES)
      // maxLength counts characters; the limit is on bytes (262144 emoji are 1 MiB of UTF-8).
      .refine((t) => Buffer.byteLength(t, 'utf8') <= PROMPT_TEXT_MAX_BYTES, PROMPT_TEXT_MESSAGE)
      .meta({
        'x-kubernetes-validations': [
          cel(`size(bytes(self)) <= ${PROMPT_TEXT_MAX_BYTES}`, PROMPT_TEXT_MESSAGE),
        ],
      })
      .optional()
      .describe('The prompt, inline (up to 256 KiB of UTF-8; longer prompts belong in a ConfigMap).'),
    configMapKeyRef: KeyRef.optional().describe('The prompt, read from a ConfigMap key.'),
    syntheticTokens: z
      .int()
      .min(1)
      .max(1_048_576)
      .optional()
      .describe('A synthetic prompt of this many tokens (benchmarks).'),
  })
  .meta({
    'x-kubernetes-validations': [exactlyOne(['text', 'configMapKeyRef', 'syntheticTokens'], 'prompt')],
  });

// ------------------------------------------------------------------------------------------ partition

const Boundaries = z
  .array(z.int().min(0).max(1_048_576))
  .min(2)
  .max(MAX_RANKS + 1)
  .meta({
    'x-kubernetes-validations': [
      cel('self[0] == 0', 'boundaries must start at 0'),
      cel(
        'self.isSorted() && self.all(x, self.indexOf(x) == self.lastIndexOf(x))',
        'boundaries must be strictly increasing (every rank owns at least one token)',
      ),
    ],
  });

export const Partition = z
  .strictObject({
    strategy: z
      .enum(PARTITION_STRATEGIES)
      .default('even')
      .describe(
        'even: equal chunks; balanced: earlier ranks get longer chunks, from a lookup table (runahead tune); explicit: the boundaries given.',
      ),
    boundaries: Boundaries.optional().describe(
      'explicit only: ranks+1 increasing token offsets from 0 to the context length; rank i owns [b_i, b_i+1).',
    ),
    tableConfigMapRef: KeyRef.optional().describe(
      'balanced only: a ConfigMap key holding the lookup table written by `runahead tune`.',
    ),
  })
  .meta({
    'x-kubernetes-validations': [
      cel(
        "(self.strategy == 'explicit') == has(self.boundaries)",
        'partition.boundaries is required with strategy explicit and only allowed with it',
        '.boundaries',
      ),
      cel(
        "(self.strategy == 'balanced') == has(self.tableConfigMapRef)",
        'partition.tableConfigMapRef is required with strategy balanced and only allowed with it',
        '.tableConfigMapRef',
      ),
    ],
  });

// ---------------------------------------------------------------------------------------- scheduling

const MAX_RESOURCES = 16;
const RESOURCE_NAME = /^([a-z0-9.-]+\/)?[a-zA-Z0-9_.-]+$/;
const RESOURCE_NAME_MESSAGE = 'resource names look like cpu, memory or nvidia.com/gpu';
const NEGATIVE_MESSAGE = 'resource quantities must not be negative';
const GPU_MESSAGE = 'GPU counts (resources named …gpu) must be whole numbers';
/** A resource list, its rules written twice: zod here, CEL for the API server (the CRD's schema
 * cannot constrain a map's keys, nor an int-or-string's sign). */
const ResourceList = z
  .record(z.string(), Quantity)
  .superRefine((list, ctx) => {
    // Names checked here rather than by the key's schema, whose failure zod reports as "Invalid key".
    for (const name of Object.keys(list))
      if (!RESOURCE_NAME.test(name))
        ctx.addIssue({ code: 'custom', path: [name], message: RESOURCE_NAME_MESSAGE });
    if (Object.keys(list).length > MAX_RESOURCES)
      ctx.addIssue({ code: 'custom', message: `at most ${MAX_RESOURCES} resources` });
    for (const [name, q] of Object.entries(list)) {
      if (typeof q === 'string' && q.startsWith('-'))
        ctx.addIssue({ code: 'custom', path: [name], message: NEGATIVE_MESSAGE });
      if (name.endsWith('gpu') && typeof q === 'string' && !/^[0-9]+$/.test(q))
        ctx.addIssue({ code: 'custom', path: [name], message: GPU_MESSAGE });
    }
  })
  .meta({
    maxProperties: MAX_RESOURCES,
    'x-kubernetes-validations': [
      cel(`self.all(k, k.matches('${RESOURCE_NAME.source.replaceAll('\\/', '/')}'))`, RESOURCE_NAME_MESSAGE),
      cel(
        "self.all(k, type(self[k]) == int ? self[k] >= 0 : !string(self[k]).startsWith('-'))",
        NEGATIVE_MESSAGE,
      ),
      cel(
        "self.all(k, !k.endsWith('gpu') || type(self[k]) == int || string(self[k]).matches('^[0-9]+$'))",
        GPU_MESSAGE,
      ),
    ],
  });
export const Resources = z
  .strictObject({ limits: ResourceList.optional(), requests: ResourceList.optional() })
  .describe('Per-rank resources; default: one nvidia.com/gpu.');

export const Tls = z
  .strictObject({
    secretName: ObjectName.describe(
      'A kubernetes.io/tls Secret with tls.crt, tls.key and ca.crt: every rank presents tls.crt and accepts only peers signed by ca.crt.',
    ),
  })
  .describe('Mutual TLS between ranks.');

// -------------------------------------------------------------------------------------------- spec

function exactlyOneSet(obj: object, fields: readonly string[], path: string[], ctx: z.RefinementCtx): void {
  const set = fields.filter((f) => (obj as Record<string, unknown>)[f] !== undefined);
  if (set.length !== 1)
    ctx.addIssue({
      code: 'custom',
      path,
      message: `${path.join('.')}: set exactly one of ${fields.join(', ')} (got ${set.length === 0 ? 'none' : set.join(', ')})`,
    });
}

/**
 * The zod side of the CEL rules on `model` and `partition`, for every spec that has them (a job's, a
 * server's): the operator checks an object that reached it without the API server's validation.
 */
export function checkModelAndPartition(
  spec: { model: z.infer<typeof Model>; partition: z.infer<typeof Partition> },
  ctx: z.RefinementCtx,
): void {
  exactlyOneSet(spec.model, ['synthetic', 'checkpoint'], ['model'], ctx);
  if (spec.model.checkpoint)
    exactlyOneSet(
      spec.model.checkpoint.volume,
      ['persistentVolumeClaim', 'hostPath'],
      ['model', 'checkpoint', 'volume'],
      ctx,
    );
  const p = spec.partition;
  if ((p.strategy === 'explicit') !== (p.boundaries !== undefined))
    ctx.addIssue({
      code: 'custom',
      path: ['partition', 'boundaries'],
      message: 'partition.boundaries is required with strategy explicit and only allowed with it',
    });
  if ((p.strategy === 'balanced') !== (p.tableConfigMapRef !== undefined))
    ctx.addIssue({
      code: 'custom',
      path: ['partition', 'tableConfigMapRef'],
      message: 'partition.tableConfigMapRef is required with strategy balanced and only allowed with it',
    });
}

export const RunaheadJobSpecSchema = z
  .strictObject({
    ranks: z
      .int()
      .min(1)
      .max(MAX_RANKS)
      .describe('Number of ranks (worker pods); each holds the whole model and prefills one chunk.'),
    mode: z
      .enum(MODES)
      .default('runahead')
      .describe('runahead (KV-Runahead), tsp (all-gather baseline) or single (one rank alone).'),
    model: Model,
    dtype: z.enum(DTYPES).default('float16').describe('Compute dtype of the model.'),
    prompt: Prompt,
    partition: Partition.default({ strategy: 'even' }),
    maxNewTokens: z
      .int()
      .min(0)
      .max(4096)
      .default(0)
      .describe('Greedy tokens the last rank generates after the first.'),
    executionProvider: z
      .enum(EXECUTION_PROVIDERS)
      .default('cuda')
      .describe('onnxruntime execution provider: cuda, webgpu (Vulkan) or cpu.'),
    threads: z.int().min(0).max(1024).default(0).describe('CPU threads per rank (0: onnxruntime decides).'),
    image: z
      .string()
      .min(1)
      .max(512)
      .optional()
      .describe('Worker image (it runs `runahead worker`); default: the operator’s --worker-image.'),
    imagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
    resources: Resources.prefault({}),
    nodeSelector: NodeSelector.optional(),
    tolerations: Tolerations.optional(),
    affinity: Affinity.optional(),
    priorityClassName: ObjectName.optional(),
    placement: Placement.optional(),
    tls: Tls.optional(),
    peerTimeoutSeconds: z
      .int()
      .min(1)
      .max(3600)
      .default(60)
      .describe('A rank fails the run when a peer is silent this long.'),
    startupTimeoutSeconds: z
      .int()
      .min(1)
      .max(86_400)
      .default(900)
      .describe(
        'Every rank must be running this long after the group is released to the scheduler (else the group fails with the scheduler’s or kubelet’s reason, counted against backoffLimit); rank 0 waits as long for every rank to load the model.',
      ),
    runTimeoutSeconds: z
      .int()
      .min(1)
      .max(604_800)
      .optional()
      .describe(
        'A rank fails the run when it has not ended this long after it began (default: activeDeadlineSeconds when set, else 3600).',
      ),
    backoffLimit: z
      .int()
      .min(0)
      .max(100)
      .default(3)
      .describe('Restarts of the whole rank group after a rank fails, before the job fails.'),
    activeDeadlineSeconds: z
      .int()
      .min(1)
      .max(31_536_000)
      .optional()
      .describe('The job fails when it has been active this long (suspended time does not count).'),
    ttlSecondsAfterFinished: z
      .int()
      .min(0)
      .max(31_536_000)
      .optional()
      .describe('Delete the job (and its pods) this long after it succeeds or fails.'),
    suspend: z
      .boolean()
      .default(false)
      .describe('true deletes the pods and holds the job; false resumes it.'),
  })
  .meta({
    'x-kubernetes-validations': [
      cel(
        '!has(self.partition.boundaries) || size(self.partition.boundaries) == self.ranks + 1',
        'partition.boundaries must hold ranks + 1 offsets',
        '.partition.boundaries',
      ),
      cel("self.mode != 'single' || self.ranks == 1", 'mode single runs on exactly 1 rank', '.ranks'),
      cel(
        '!has(self.prompt.syntheticTokens) || self.prompt.syntheticTokens >= self.ranks',
        'prompt.syntheticTokens must give every rank at least one token',
        '.prompt.syntheticTokens',
      ),
      cel(
        '!has(self.prompt.syntheticTokens) || !has(self.partition.boundaries) || self.partition.boundaries[size(self.partition.boundaries) - 1] == self.prompt.syntheticTokens',
        'the last partition boundary must equal prompt.syntheticTokens',
        '.partition.boundaries',
      ),
      // One rule per field, so that the refusal names the field that changed.
      ...IMMUTABLE_FIELDS.map((f) =>
        cel(immutableRule(f), `spec.${f} is immutable; create a new job instead`, `.${f}`),
      ),
    ],
  })
  .superRefine((spec, ctx) => {
    // The same rules as the CEL above and on the nested objects, for the operator's own check.
    checkModelAndPartition(spec, ctx);
    exactlyOneSet(spec.prompt, ['text', 'configMapKeyRef', 'syntheticTokens'], ['prompt'], ctx);
    const p = spec.partition;
    if (p.boundaries) {
      const b = p.boundaries;
      if (b[0] !== 0)
        ctx.addIssue({
          code: 'custom',
          path: ['partition', 'boundaries'],
          message: 'boundaries must start at 0',
        });
      if (b.some((x, i) => i > 0 && x <= b[i - 1]!))
        ctx.addIssue({
          code: 'custom',
          path: ['partition', 'boundaries'],
          message: 'boundaries must be strictly increasing (every rank owns at least one token)',
        });
      if (b.length !== spec.ranks + 1)
        ctx.addIssue({
          code: 'custom',
          path: ['partition', 'boundaries'],
          message: 'partition.boundaries must hold ranks + 1 offsets',
        });
      const synthetic = spec.prompt.syntheticTokens;
      if (synthetic !== undefined && b[b.length - 1] !== synthetic)
        ctx.addIssue({
          code: 'custom',
          path: ['partition', 'boundaries'],
          message: 'the last partition boundary must equal prompt.syntheticTokens',
        });
    }
    if (spec.mode === 'single' && spec.ranks !== 1)
      ctx.addIssue({ code: 'custom', path: ['ranks'], message: 'mode single runs on exactly 1 rank' });
    if (spec.prompt.syntheticTokens !== undefined && spec.prompt.syntheticTokens < spec.ranks)
      ctx.addIssue({
        code: 'custom',
        path: ['prompt', 'syntheticTokens'],
        message: 'prompt.syntheticTokens must give every rank at least one token',
      });
  });
export type RunaheadJobSpec = z.infer<typeof RunaheadJobSpecSchema>;
/** A spec as written in a manifest: defaulted fields may be left out. */
export type RunaheadJobSpecInput = z.input<typeof RunaheadJobSpecSchema>;

// ------------------------------------------------------------------------------------------ status

export const Condition = z.strictObject({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().max(1024),
  message: z.string().max(32_768),
  lastTransitionTime: z.string(),
  observedGeneration: z.int().min(0).optional(),
});
export type Condition = z.infer<typeof Condition>;

const RankStatus = z.strictObject({
  rank: z.int().min(0),
  pod: z.string(),
  node: z.string().optional(),
  /** The pod's phase (Pending, Running, Succeeded, Failed), as observed. */
  phase: z.string(),
  ready: z.boolean(),
  /** [start, end) token offsets of this rank's chunk, once known. */
  chunk: z.array(z.int().min(0)).length(2).optional(),
  computeMs: z.number().optional(),
  waitMs: z.number().optional(),
  sendMs: z.number().optional(),
  /** The part of sendMs that delayed the first token: a receiver on the critical path waited for it. */
  criticalSendMs: z.number().optional(),
  bytesSent: z.int().min(0).optional(),
  bytesReceived: z.int().min(0).optional(),
  peakRssBytes: z.int().min(0).optional(),
  /** Start and end of this rank's work, ms after the prompt was released (rank 0's clock). */
  startMs: z.number().optional(),
  endMs: z.number().optional(),
  /** The rank's run drawn in letters, one per time slot: c compute, w wait for K/V, s send, . idle. */
  timeline: z.string().max(512).optional(),
  /** Why this rank failed, when it did (its termination message). */
  message: z.string().max(4096).optional(),
});
export type RankStatus = z.infer<typeof RankStatus>;

export const RunaheadJobStatusSchema = z.strictObject({
  phase: z.enum(PHASES).optional(),
  observedGeneration: z.int().min(0).optional(),
  conditions: z
    .array(Condition)
    .optional()
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] }),
  /** Restarts of the rank group so far (at most spec.backoffLimit). */
  restarts: z.int().min(0).optional(),
  startTime: z.string().optional(),
  /**
   * When every rank pod of the current group existed with no scheduling gate left (released to the
   * scheduler): spec.startupTimeoutSeconds counts from here, so time queued behind a gate is free.
   */
  groupReleaseTime: z.string().optional(),
  completionTime: z.string().optional(),
  contextLength: z.int().min(0).optional(),
  /** The split used: ranks + 1 token offsets. */
  boundaries: z.array(z.int().min(0)).optional(),
  /** How the split was chosen: even, balanced or explicit. */
  partition: z.string().optional(),
  ttftMs: z.number().optional(),
  firstToken: z.int().min(0).optional(),
  firstTokenText: z.string().optional(),
  /** The first token followed by the generated ones. */
  tokens: z.array(z.int().min(0)).optional(),
  text: z.string().optional(),
  ranks: z.array(RankStatus).optional(),
});
export type RunaheadJobStatus = z.infer<typeof RunaheadJobStatusSchema>;

// ------------------------------------------------------------------------------------------ object

/** Rules on the whole object (the CRD's root); the operator checks the same with RunaheadJobSchema. */
export const ROOT_VALIDATIONS = [nameRule(MAX_JOB_NAME_LENGTH, "the job's Service and pods")];

export const RunaheadJobSchema = z.object({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: objectMetaSchema(MAX_JOB_NAME_LENGTH),
  spec: RunaheadJobSpecSchema,
  status: RunaheadJobStatusSchema.optional(),
});
export type RunaheadJob = z.infer<typeof RunaheadJobSchema>;

/** Where a job's problems are: `spec.partition.boundaries: must …`, one line per issue. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `${i.path.length > 0 ? `${i.path.map(String).join('.')}: ` : ''}${i.message}`)
    .join('; ');
}

/** Parse an object read from the API server; a failure says which field and why. */
export function parseRunaheadJob(
  obj: unknown,
): { ok: true; job: RunaheadJob } | { ok: false; message: string } {
  const r = RunaheadJobSchema.safeParse(obj);
  return r.success ? { ok: true, job: r.data } : { ok: false, message: describeIssues(r.error) };
}
