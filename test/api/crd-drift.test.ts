// crds/ is generated from the zod schemas (make generate); these tests fail when they drift, and
// when the API's enums drift from what the worker really supports.
import { describe, expect, test } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { crdFile, crdYaml } from '../../scripts/generate-crd.ts';
import { KINDS, structural } from '../../core/api/crd.ts';
import { EXECUTION_PROVIDERS, SYNTHETIC_PRESETS } from '../../core/api/v1alpha1/runahead-job.ts';
import { PRESETS } from '../../worker/model/presets.ts';
import { EXECUTION_PROVIDERS as WORKER_EPS } from '../../worker/runtime/ort.ts';

describe('crds/', () => {
  test.each(KINDS.map((def) => [def.kind, def] as const))(
    'the committed %s CRD is what the zod schemas generate (run `make generate` if not)',
    (_, def) => {
      expect(readFileSync(crdFile(def), 'utf8')).toBe(crdYaml(def));
    },
  );

  test('the API offers exactly the synthetic presets and execution providers the worker has', () => {
    expect([...SYNTHETIC_PRESETS].sort()).toEqual(Object.keys(PRESETS).sort());
    expect([...EXECUTION_PROVIDERS].sort()).toEqual([...WORKER_EPS].sort());
  });

  test('structural() refuses what a CRD cannot say', () => {
    expect(() => structural({ anyOf: [{ type: 'string' }, { type: 'object' }] })).toThrow(
      '(root): no structural form for JSON Schema key "anyOf"',
    );
    expect(() =>
      structural({ type: 'object', properties: {}, additionalProperties: { type: 'string' } }),
    ).toThrow('properties and additionalProperties together are not structural');
    expect(() => structural({ properties: { a: { description: 'no type' } }, type: 'object' })).toThrow(
      '(root).a: a structural schema needs a type on every node',
    );
  });
});
