// Where a job's ranks may run: core/v1 Affinity, Toleration and a nodeSelector, as zod schemas that
// mirror the Kubernetes API (k8s.io/api/core/v1 types.go) field for field, so that the CRD refuses a
// typo (`nodeAffinty`) instead of storing it and dropping it from the pods. Objects are strict
// (unknown fields refused) and every list, map and string is bounded: the API server estimates a CEL
// rule's cost from these bounds, and a rule nested under unbounded lists exceeds its budget.
//
// What the API server checks only when it validates a Pod (apis/core/validation) and a structural
// schema can state is stated here too: qualified-name keys, label values, operators and the values
// they need, weights of 1–100, tolerationSeconds only with NoExecute. An empty nodeSelectorTerms is
// left to the Pod's validation, as the Kubernetes schema does (the operator fails the job at once).
import { z } from 'zod';

const cel = (rule: string, message: string, fieldPath?: string) => ({
  rule,
  message,
  ...(fieldPath ? { fieldPath } : {}),
});

// Written with character classes only, no backslashes: the same text is a JavaScript regular
// expression, a JSON Schema pattern and a CEL string literal.
const NAME_PART = '[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
const DNS_SUBDOMAIN = '[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*';
/** A label or taint key: an optional DNS-subdomain prefix and "/", then a name of ≤ 63 characters. */
const QUALIFIED_NAME = `^(${DNS_SUBDOMAIN}/)?${NAME_PART}$`;
const LABEL_VALUE = `^(${NAME_PART})?$`;
const QUALIFIED_NAME_MAX = 253 + 1 + 63;
const LABEL_VALUE_MAX = 63;

const QUALIFIED_NAME_MESSAGE =
  'must be a qualified name such as kubernetes.io/os or node-role (an optional DNS prefix and "/", then at most 63 of A-Z, a-z, 0-9, -, _ and .)';
const LABEL_VALUE_MESSAGE =
  'must be a label value: at most 63 of A-Z, a-z, 0-9, -, _ and ., beginning and ending with a letter or digit';

/** A label key: what a topologyKey or a selector's key must be. */
export const QualifiedName = z
  .string()
  .min(1)
  .max(QUALIFIED_NAME_MAX)
  .regex(new RegExp(QUALIFIED_NAME), QUALIFIED_NAME_MESSAGE);
const LabelValue = z.string().max(LABEL_VALUE_MAX).regex(new RegExp(LABEL_VALUE), LABEL_VALUE_MESSAGE);

/**
 * A map from label keys to label values (nodeSelector, matchLabels). A structural schema cannot
 * constrain a map's keys, so they are checked by CEL, and by zod beside it (with the key in the path,
 * where a key schema would report only "Invalid key").
 */
const validKey = (k: string) => `size(${k}) <= ${QUALIFIED_NAME_MAX} && ${k}.matches('${QUALIFIED_NAME}')`;

function labelMap(what: string, maxProperties: number) {
  const message = `${what} keys ${QUALIFIED_NAME_MESSAGE}`;
  return z
    .record(z.string(), LabelValue)
    .superRefine((map, ctx) => {
      const keys = Object.keys(map);
      for (const key of keys)
        if (key.length > QUALIFIED_NAME_MAX || !new RegExp(QUALIFIED_NAME).test(key))
          ctx.addIssue({ code: 'custom', path: [key], message });
      if (keys.length > maxProperties)
        ctx.addIssue({ code: 'custom', message: `${what}: at most ${maxProperties} entries` });
    })
    .meta({
      maxProperties,
      'x-kubernetes-validations': [
        {
          rule: `self.all(k, ${validKey('k')})`,
          message,
          // The API server prints a map as "object"; this names the first bad key instead.
          messageExpression: `'${what} key "' + self.filter(k, !(${validKey('k')}))[0] + '" ${QUALIFIED_NAME_MESSAGE}'`,
        },
      ],
    });
}

// ------------------------------------------------------------------------------------- selectors

const VALUES_MESSAGE =
  'values must be non-empty with operator In or NotIn, and empty with Exists or DoesNotExist';
const GT_LT_MESSAGE = 'values must be one integer with operator Gt or Lt';

function valuesMatchOperator(r: { operator: string; values?: readonly string[] | undefined }): string | null {
  const n = r.values?.length ?? 0;
  if ((r.operator === 'In' || r.operator === 'NotIn') && n === 0) return VALUES_MESSAGE;
  if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && n !== 0) return VALUES_MESSAGE;
  if ((r.operator === 'Gt' || r.operator === 'Lt') && (n !== 1 || !/^-?[0-9]+$/.test(r.values![0]!)))
    return GT_LT_MESSAGE;
  return null;
}
const VALUES_CEL = cel(
  "(self.operator in ['In', 'NotIn']) ? (has(self.values) && size(self.values) > 0) : (!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0)",
  VALUES_MESSAGE,
  '.values',
);
const GT_LT_CEL = cel(
  "!(self.operator in ['Gt', 'Lt']) || (has(self.values) && size(self.values) == 1 && self.values[0].matches('^-?[0-9]+$'))",
  GT_LT_MESSAGE,
  '.values',
);

const LabelSelectorRequirement = z
  .strictObject({
    key: QualifiedName,
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(LabelValue).max(64).exactOptional(),
  })
  .superRefine((r, ctx) => {
    const m = valuesMatchOperator(r);
    if (m) ctx.addIssue({ code: 'custom', path: ['values'], message: m });
  })
  .meta({ 'x-kubernetes-validations': [VALUES_CEL] });

const LabelSelector = z.strictObject({
  matchLabels: labelMap('matchLabels', 16).exactOptional(),
  matchExpressions: z.array(LabelSelectorRequirement).max(16).exactOptional(),
});

const NodeSelectorRequirement = z
  .strictObject({
    key: QualifiedName,
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']),
    // Label values, or node names for matchFields' metadata.name.
    values: z.array(z.string().max(253)).max(64).exactOptional(),
  })
  .superRefine((r, ctx) => {
    const m = valuesMatchOperator(r);
    if (m) ctx.addIssue({ code: 'custom', path: ['values'], message: m });
  })
  .meta({ 'x-kubernetes-validations': [VALUES_CEL, GT_LT_CEL] });

const NodeSelectorTerm = z.strictObject({
  matchExpressions: z.array(NodeSelectorRequirement).max(16).exactOptional(),
  matchFields: z.array(NodeSelectorRequirement).max(16).exactOptional(),
});

const Weight = z.int().min(1).max(100);

// -------------------------------------------------------------------------------------- affinity

const NodeAffinity = z.strictObject({
  requiredDuringSchedulingIgnoredDuringExecution: z
    .strictObject({ nodeSelectorTerms: z.array(NodeSelectorTerm).max(16) })
    .exactOptional(),
  preferredDuringSchedulingIgnoredDuringExecution: z
    .array(z.strictObject({ weight: Weight, preference: NodeSelectorTerm }))
    .max(16)
    .exactOptional(),
});

const PodAffinityTerm = z.strictObject({
  labelSelector: LabelSelector.exactOptional(),
  namespaceSelector: LabelSelector.exactOptional(),
  namespaces: z.array(z.string().min(1).max(63)).max(16).exactOptional(),
  topologyKey: QualifiedName,
  matchLabelKeys: z.array(QualifiedName).max(16).exactOptional(),
  mismatchLabelKeys: z.array(QualifiedName).max(16).exactOptional(),
});

const PodAffinity = z.strictObject({
  requiredDuringSchedulingIgnoredDuringExecution: z.array(PodAffinityTerm).max(8).exactOptional(),
  preferredDuringSchedulingIgnoredDuringExecution: z
    .array(z.strictObject({ weight: Weight, podAffinityTerm: PodAffinityTerm }))
    .max(8)
    .exactOptional(),
});

export const Affinity = z
  .strictObject({
    nodeAffinity: NodeAffinity.exactOptional(),
    podAffinity: PodAffinity.exactOptional(),
    podAntiAffinity: PodAffinity.exactOptional(),
  })
  .describe('A core/v1 Affinity, copied to every rank’s pod.');

// ------------------------------------------------------------------------------------ tolerations

const TOLERATION_KEY_MESSAGE =
  'a toleration without a key must have operator Exists (it tolerates every taint)';
const TOLERATION_VALUE_MESSAGE = 'a toleration with operator Exists must not have a value';
const TOLERATION_SECONDS_MESSAGE = 'tolerationSeconds is only allowed with effect NoExecute';

// Kubernetes takes an empty key as no key.
const TolerationKey = z
  .string()
  .max(QUALIFIED_NAME_MAX)
  .regex(new RegExp(`^$|${QUALIFIED_NAME}`), QUALIFIED_NAME_MESSAGE);

export const Toleration = z
  .strictObject({
    key: TolerationKey.exactOptional(),
    operator: z.enum(['Exists', 'Equal']).exactOptional(),
    value: LabelValue.exactOptional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).exactOptional(),
    tolerationSeconds: z.int().min(0).max(31_536_000).exactOptional(),
  })
  .superRefine((t, ctx) => {
    if (!t.key && t.operator !== 'Exists')
      ctx.addIssue({ code: 'custom', path: ['operator'], message: TOLERATION_KEY_MESSAGE });
    if (t.operator === 'Exists' && t.value !== undefined && t.value !== '')
      ctx.addIssue({ code: 'custom', path: ['value'], message: TOLERATION_VALUE_MESSAGE });
    if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute')
      ctx.addIssue({ code: 'custom', path: ['tolerationSeconds'], message: TOLERATION_SECONDS_MESSAGE });
  })
  .meta({
    'x-kubernetes-validations': [
      cel(
        "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
        TOLERATION_KEY_MESSAGE,
        '.operator',
      ),
      cel(
        "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
        TOLERATION_VALUE_MESSAGE,
        '.value',
      ),
      cel(
        "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
        TOLERATION_SECONDS_MESSAGE,
        '.tolerationSeconds',
      ),
    ],
  });

export const MAX_TOLERATIONS = 64;
export const Tolerations = z.array(Toleration).max(MAX_TOLERATIONS);

// ---------------------------------------------------------------------------------- nodeSelector

export const MAX_NODE_SELECTOR_ENTRIES = 32;
export const NodeSelector = labelMap('nodeSelector', MAX_NODE_SELECTOR_ENTRIES).describe(
  'Node labels every rank’s node must have (a core/v1 PodSpec nodeSelector).',
);
