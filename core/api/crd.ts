// The CustomResourceDefinitions (RunaheadJob, RunaheadServer), made from the zod schemas (one source of truth). zod's
// JSON Schema is close to what Kubernetes wants, but a CRD's schema must be *structural*
// (apiextensions.k8s.io "Specifying a structural schema"): a type on every node, no
// `additionalProperties: false` beside `properties`, no `$ref`, no free `anyOf`. structural() rewrites
// zod's output into that form and throws on anything it does not know how to say, rather than
// emit a schema the API server would read differently from the operator.
import { z } from 'zod';
import { ROOT_VALIDATIONS, RunaheadJobSpecSchema, RunaheadJobStatusSchema } from './v1alpha1/runahead-job.ts';
import {
  RunaheadServerSpecSchema,
  RunaheadServerStatusSchema,
  SERVER_ROOT_VALIDATIONS,
} from './v1alpha1/runahead-server.ts';
import { CRD_NAME, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './v1alpha1/names.ts';
import {
  SERVER_CRD_NAME,
  SERVER_KIND,
  SERVER_PLURAL,
  SERVER_SHORT_NAMES,
  SERVER_SINGULAR,
} from './v1alpha1/server-names.ts';

export type JsonSchema = Record<string, unknown>;

/** Keys copied as they are. */
const PASS = new Set([
  'type',
  'description',
  'default',
  'enum',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'maxProperties',
  'pattern',
  'minItems',
  'maxItems',
  'required',
  'x-kubernetes-validations',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
]);
/** Keys dropped: zod's bookkeeping, or what a structural schema expresses otherwise. */
const DROP = new Set(['$schema', 'propertyNames']);
/** zod's bounds for "any safe integer" say nothing a reader needs. */
const SAFE = Number.MAX_SAFE_INTEGER;

export function structural(node: JsonSchema, path = '(root)'): JsonSchema {
  if (node['x-kubernetes-int-or-string'] === true) {
    // resource.Quantity and friends, as controller-gen writes them.
    const anyOf = node['anyOf'] as JsonSchema[] | undefined;
    const pattern = anyOf?.find((a) => a['type'] === 'string')?.['pattern'];
    const maxLength = node['maxLength'];
    return {
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      ...(typeof pattern === 'string' ? { pattern } : {}),
      ...(typeof maxLength === 'number' ? { maxLength } : {}),
      'x-kubernetes-int-or-string': true,
    };
  }
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (DROP.has(key)) continue;
    if (key === 'properties') {
      out['properties'] = Object.fromEntries(
        Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [
          k,
          structural(v, `${path}.${k}`),
        ]),
      );
    } else if (key === 'items') {
      out['items'] = structural(value as JsonSchema, `${path}[]`);
    } else if (key === 'additionalProperties') {
      if (value === false) continue; // strict objects: unknown fields are refused by field validation
      if (node['properties'] !== undefined)
        throw new Error(`${path}: properties and additionalProperties together are not structural`);
      const v = value as JsonSchema;
      // z.record(z.string(), z.unknown()) gives {}: an object of anything, kept as given.
      if (Object.keys(v).length > 0) out['additionalProperties'] = structural(v, `${path}.*`);
    } else if (key === 'minimum' && value === -SAFE) {
      continue;
    } else if (key === 'maximum' && value === SAFE) {
      continue;
    } else if (PASS.has(key)) {
      out[key] = value;
    } else {
      throw new Error(`${path}: no structural form for JSON Schema key "${key}"`);
    }
  }
  if (out['type'] === undefined && out['x-kubernetes-preserve-unknown-fields'] !== true)
    throw new Error(`${path}: a structural schema needs a type on every node`);
  return out;
}

function jsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'throw',
    reused: 'inline',
    target: 'draft-2020-12',
  });
}

/** What differs between the API's kinds; everything else about their CRDs is the same. */
export interface KindDefinition {
  readonly crdName: string;
  readonly kind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly description: string;
  readonly spec: z.ZodType;
  readonly status: z.ZodType;
  readonly rootValidations: readonly JsonSchema[];
  readonly printerColumns: readonly JsonSchema[];
}

export const RUNAHEAD_JOB: KindDefinition = {
  crdName: CRD_NAME,
  kind: KIND,
  plural: PLURAL,
  singular: SINGULAR,
  shortNames: SHORT_NAMES,
  description: 'A prompt prefilled by several ranks at once with KV-Runahead; status holds TTFT.',
  spec: RunaheadJobSpecSchema,
  status: RunaheadJobStatusSchema,
  rootValidations: ROOT_VALIDATIONS,
  printerColumns: [
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Ranks', type: 'integer', jsonPath: '.spec.ranks' },
    { name: 'Mode', type: 'string', jsonPath: '.spec.mode' },
    { name: 'Tokens', type: 'integer', jsonPath: '.status.contextLength' },
    { name: 'TTFT-ms', type: 'number', jsonPath: '.status.ttftMs' },
    { name: 'Restarts', type: 'integer', jsonPath: '.status.restarts', priority: 1 },
    { name: 'First-Token', type: 'string', jsonPath: '.status.firstTokenText', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

export const RUNAHEAD_SERVER: KindDefinition = {
  crdName: SERVER_CRD_NAME,
  kind: SERVER_KIND,
  plural: SERVER_PLURAL,
  singular: SERVER_SINGULAR,
  shortNames: SERVER_SHORT_NAMES,
  description:
    'Warm rank groups that serve OpenAI-style completions, each prompt split by its length; status holds the endpoint and TTFT.',
  spec: RunaheadServerSpecSchema,
  status: RunaheadServerStatusSchema,
  rootValidations: SERVER_ROOT_VALIDATIONS,
  printerColumns: [
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' },
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
    { name: 'Ranks', type: 'integer', jsonPath: '.spec.ranks' },
    { name: 'TTFT-p50-ms', type: 'number', jsonPath: '.status.ttftMs.p50' },
    { name: 'TTFT-p99-ms', type: 'number', jsonPath: '.status.ttftMs.p99' },
    { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint', priority: 1 },
    { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
};

/** Every kind of the API, each written to its own file in crds/. */
export const KINDS: readonly KindDefinition[] = [RUNAHEAD_JOB, RUNAHEAD_SERVER];

export function openApiSchema(def: KindDefinition = RUNAHEAD_JOB): JsonSchema {
  // apiVersion, kind and metadata belong to the API server; a CRD may only restrict metadata.name,
  // which the root rule does.
  return {
    type: 'object',
    description: def.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: structural(jsonSchema(def.spec), 'spec'),
      status: structural(jsonSchema(def.status), 'status'),
    },
    'x-kubernetes-validations': def.rootValidations,
  };
}

export function customResourceDefinition(def: KindDefinition = RUNAHEAD_JOB): JsonSchema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: def.crdName,
      labels: { 'app.kubernetes.io/name': 'runahead', 'app.kubernetes.io/part-of': 'runahead' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular: def.singular,
        shortNames: [...def.shortNames],
        categories: ['all', 'runahead'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...def.printerColumns],
          schema: { openAPIV3Schema: openApiSchema(def) },
        },
      ],
    },
  };
}
