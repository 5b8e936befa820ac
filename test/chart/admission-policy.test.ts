// The chart's ValidatingAdmissionPolicy (templates/admission-policy.yaml) on a real API server: the
// admin limits the operator enforces (operator.allowedHostPaths, allowedImagePrefixes,
// allowTolerations, allowPriorityClass) refuse a RunaheadJob at creation, the message naming the
// field, the policy and the chart value; what the limits allow is admitted; an update that leaves the
// spec alone passes. Needs KUBEBUILDER_ASSETS and helm.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { stringify } from 'yaml';
import { ControlPlane } from '../support/control-plane.ts';
import { find, kinds, render, type Manifest } from '../support/chart.ts';
import { eventually, eventuallyExpect } from '../support/eventually.ts';
import { installCrds } from '../support/operator.ts';

const TIMEOUT = 120_000;
const POLICY = 'runahead-runahead-operator-limits';
const NS = 'team-a';

/** The chart's policy objects for these `--set` values. */
async function policyObjects(set: readonly string[]): Promise<Manifest[]> {
  const { manifests } = await render({ set: ['admissionPolicy.enabled=true', ...set] });
  return manifests.filter((m) => m.kind.startsWith('ValidatingAdmissionPolicy'));
}

const NARROW = [
  'operator.allowedHostPaths={/data/models}',
  'operator.allowedImagePrefixes={registry.example.com/ml/}',
  'workerImage.repository=registry.example.com/ml/worker',
];
const WIDE = [
  'operator.allowedHostPaths={/}',
  'operator.allowTolerations=true',
  'operator.allowPriorityClass=true',
];

function job(name: string, spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'runahead.dev/v1alpha1',
    kind: 'RunaheadJob',
    metadata: { name, namespace: NS },
    spec: {
      ranks: 2,
      model: { synthetic: { preset: 'tiny' } },
      prompt: { syntheticTokens: 64 },
      executionProvider: 'cpu',
      ...spec,
    },
  };
}
const hostPathModel = (path: string) => ({ checkpoint: { volume: { hostPath: { path } } } });

const REFUSED = [
  {
    name: 'a hostPath outside the allowed directories',
    job: job('host-etc', { model: hostPathModel('/srv/secrets') }),
    message:
      /spec\.model\.checkpoint\.volume\.hostPath\.path \/srv\/secrets is not allowed by ValidatingAdmissionPolicy runahead-runahead-operator-limits \(chart value operator\.allowedHostPaths: \/data\/models\)/,
  },
  {
    name: 'a hostPath that only shares a prefix of characters',
    job: job('host-sibling', { model: hostPathModel('/data/models-evil') }),
    message: /hostPath\.path \/data\/models-evil is not allowed by ValidatingAdmissionPolicy/,
  },
  {
    name: 'an image from another registry',
    job: job('image-other', { image: 'docker.io/evil/worker:1' }),
    message:
      /spec\.image docker\.io\/evil\/worker:1 is not allowed by ValidatingAdmissionPolicy runahead-runahead-operator-limits \(chart value operator\.allowedImagePrefixes: registry\.example\.com\/ml\/\)/,
  },
  {
    name: 'tolerations while the chart passes none',
    job: job('tolerating', { tolerations: [{ operator: 'Exists' }] }),
    message:
      /spec\.tolerations \(1 toleration\(s\)\) is not allowed by ValidatingAdmissionPolicy runahead-runahead-operator-limits \(chart value operator\.allowTolerations is false\)/,
  },
  {
    name: 'a priorityClassName while the chart passes none',
    job: job('critical', { priorityClassName: 'system-node-critical' }),
    message:
      /spec\.priorityClassName \(system-node-critical\) is not allowed by ValidatingAdmissionPolicy runahead-runahead-operator-limits \(chart value operator\.allowPriorityClass is false\)/,
  },
];

const ADMITTED = [
  { name: 'a synthetic model on the default worker image', job: job('plain') },
  { name: 'the allowed directory itself', job: job('host-root', { model: hostPathModel('/data/models') }) },
  { name: 'a directory under it', job: job('host-under', { model: hostPathModel('/data/models/llama') }) },
  {
    name: 'an image under the allowed prefix',
    job: job('image-ok', { image: 'registry.example.com/ml/w:2' }),
  },
  { name: 'an empty toleration list', job: job('no-tolerations', { tolerations: [] }) },
];

describe('the chart renders the admission policy', () => {
  test(
    'only when admissionPolicy.enabled, bound to the watched namespace when there is one',
    async () => {
      expect(kinds((await render()).manifests)).not.toContain('ValidatingAdmissionPolicy');
      const objects = await policyObjects([
        'operator.watchNamespace=ml',
        'admissionPolicy.validationActions={Warn,Audit}',
      ]);
      expect(kinds(objects)).toEqual(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
      expect(find(objects, 'ValidatingAdmissionPolicyBinding')['spec']).toEqual({
        policyName: POLICY,
        validationActions: ['Warn', 'Audit'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ml' } } },
      });
      const labelled = await policyObjects(['operator.namespaces=labelled']);
      expect(find(labelled, 'ValidatingAdmissionPolicyBinding')['spec']).toMatchObject({
        matchResources: { namespaceSelector: { matchLabels: { 'runahead.dev/enabled': 'true' } } },
      });
      // Switches that allow something leave their rule out.
      const wide = find(await policyObjects(WIDE), 'ValidatingAdmissionPolicy') as unknown as {
        spec: { validations: unknown[] };
      };
      expect(wide.spec.validations).toHaveLength(1);
    },
    TIMEOUT,
  );
});

describe('the admission policy on a real API server', () => {
  let cp: ControlPlane;

  beforeAll(async () => {
    // kube-controller-manager writes the policy's type-checking status.
    cp = await ControlPlane.start({
      controllerManager: true,
      controllers: ['validatingadmissionpolicy-status-controller'],
    });
    await installCrds(cp);
    await cp.kubectl(['create', 'namespace', NS]);
  }, TIMEOUT);

  afterAll(async () => {
    await (cp as ControlPlane | undefined)?.stop();
  });

  const apply = async (objects: readonly Manifest[]) => {
    await cp.kubectl(['apply', '-f', '-'], objects.map((o) => stringify(o)).join('---\n'));
  };
  /** `kubectl create --dry-run=server`: admission runs, nothing is stored. Resolves with the refusal, or ''. */
  const refusal = (j: Record<string, unknown>, dryRun = true): Promise<string> =>
    cp.kubectl(['create', ...(dryRun ? ['--dry-run=server'] : []), '-f', '-'], stringify(j)).then(
      () => '',
      (e: unknown) => (e as Error).message,
    );

  test(
    'the API server type-checks every expression against the CRD without a warning',
    async () => {
      await apply(await policyObjects(NARROW));
      const status = await eventually('the policy type-checked', async () => {
        const vap = JSON.parse(
          await cp.kubectl(['get', 'validatingadmissionpolicy', POLICY, '-o', 'json']),
        ) as {
          metadata: { generation: number };
          status?: { observedGeneration?: number; typeChecking?: unknown };
        };
        return vap.status?.observedGeneration === vap.metadata.generation ? vap.status : null;
      });
      expect(status.typeChecking).toEqual({});
    },
    TIMEOUT,
  );

  test.each(REFUSED)(
    '$name is refused, naming the field, the policy and the chart value',
    async ({ job: j, message }) => {
      // A new policy takes effect within about a second, not at once.
      await eventuallyExpect(
        'the refusal',
        () => refusal(j),
        (m) => {
          expect(m).toMatch(message);
        },
        20_000,
      );
    },
    TIMEOUT,
  );

  test.each(ADMITTED)(
    '$name is admitted',
    async ({ job: j }) => {
      expect(await refusal(j)).toBe('');
    },
    TIMEOUT,
  );

  test(
    'a job with no image is held to the default worker image',
    async () => {
      await apply(await policyObjects([...NARROW, 'workerImage.repository=docker.io/runahead-worker']));
      await eventuallyExpect(
        'the refusal',
        () => refusal(job('default-image')),
        (m) => {
          expect(m).toMatch(
            /the operator's default worker image docker\.io\/runahead-worker:\S+ \(spec\.image unset\) is not allowed by ValidatingAdmissionPolicy/,
          );
        },
        20_000,
      );
    },
    TIMEOUT,
  );

  test(
    'with the switches on, what was refused is admitted; narrowed again, a stored job may change its labels but not its spec',
    async () => {
      await apply(await policyObjects(WIDE));
      const tolerating = REFUSED.find((c) => c.name.startsWith('tolerations'))!.job;
      for (const c of REFUSED.filter((r) => !r.name.includes('image')))
        await eventuallyExpect(
          'admitted',
          () => refusal(c.job),
          (m) => {
            expect(m).toBe('');
          },
          20_000,
        );
      expect(await refusal(tolerating, false)).toBe('');

      await apply(await policyObjects(NARROW));
      const patch = (p: string) =>
        cp.kubectl(['patch', 'runaheadjob', 'tolerating', '-n', NS, '--type=merge', '-p', p]).then(
          () => '',
          (e: unknown) => (e as Error).message,
        );
      // A new value each time: a change the stale policy let through would leave nothing to refuse.
      let backoffLimit = 10;
      await eventuallyExpect(
        'the spec change refused',
        () => patch(JSON.stringify({ spec: { backoffLimit: backoffLimit++ } })),
        (m) => {
          expect(m).toMatch(
            /spec\.tolerations \(1 toleration\(s\)\) is not allowed by ValidatingAdmissionPolicy/,
          );
        },
        20_000,
      );
      expect(await patch('{"metadata":{"labels":{"team":"a"}}}')).toBe('');
    },
    TIMEOUT,
  );
});
