// `runahead render` prints what the operator creates, from the operator's own planner, offline: the
// real command on the examples, compared with desiredChildren, and refusals that name the field.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { parseRunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import { DEFAULT_OPERATOR_DEFAULTS, desiredChildren, jobRef } from '../../operator/desired-children.ts';
import { runCli } from '../support/cli.ts';
import { repoPath } from '../support/operator.ts';

const docs = (yaml: string) => parseAllDocuments(yaml).map((d) => d.toJS() as Record<string, unknown>);

describe('runahead render', () => {
  it('prints the Service, the ConfigMap and every rank pod exactly as the operator plans them', async () => {
    const file = repoPath('examples/llama-7b-rack-gang.yaml');
    const r = await runCli(['render', '-f', file, '-n', 'ml', '--worker-image', 'registry.example/w:1']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const printed = docs(r.stdout);
    const manifest = docs(readFileSync(file, 'utf8'))[0]!;
    const parsed = parseRunaheadJob({
      ...manifest,
      metadata: { ...(manifest['metadata'] as object), namespace: 'ml' },
    });
    if (!parsed.ok) throw new Error(parsed.message);
    const planned = desiredChildren(jobRef(parsed.job), 0, {
      ...DEFAULT_OPERATOR_DEFAULTS,
      workerImage: 'registry.example/w:1',
    });
    expect(printed).toEqual(JSON.parse(JSON.stringify(planned)));
    expect(printed.map((o) => `${String(o['kind'])}/${(o['metadata'] as { name: string }).name}`)).toEqual([
      'Service/llama-7b-rack-ranks',
      'ConfigMap/llama-7b-rack-shared',
      'Pod/llama-7b-rack-0',
      'Pod/llama-7b-rack-1',
      'Pod/llama-7b-rack-2',
      'Pod/llama-7b-rack-3',
    ]);
    // The placement the example asks for, as the scheduler will read it.
    const pod = printed[3] as {
      spec: { schedulingGates: unknown; affinity: { podAffinity: unknown; podAntiAffinity: unknown } };
    };
    expect(pod.spec.schedulingGates).toEqual([{ name: 'runahead.dev/gang' }]);
    expect(JSON.stringify(pod.spec.affinity.podAffinity)).toContain('example.com/rack');
    expect(JSON.stringify(pod.spec.affinity.podAntiAffinity)).toContain('"NotIn"');
  });

  it('reads stdin, skips other kinds, and renders every job of a multi-document manifest', async () => {
    const r = await runCli(['render', '-f', '-'], {
      stdin: [
        'apiVersion: v1',
        'kind: Namespace',
        'metadata: {name: ml}',
        '---',
        readFileSync(repoPath('examples/synthetic-2ranks.yaml'), 'utf8'),
      ].join('\n'),
    });
    expect(r.code).toBe(0);
    expect(docs(r.stdout).map((o) => o['kind'])).toEqual(['Service', 'ConfigMap', 'Pod', 'Pod']);
  });

  it("prints a pod group's PodGroup before the pods", async () => {
    const r = await runCli(['render', '-f', '-', '--attempt', '2'], {
      stdin:
        'apiVersion: runahead.dev/v1alpha1\nkind: RunaheadJob\nmetadata: {name: vc, namespace: ml}\nspec: {ranks: 2, model: {synthetic: {preset: tiny}}, prompt: {syntheticTokens: 8}, placement: {podGroup: {scheduler: Volcano}}}\n',
    });
    expect(r.code).toBe(0);
    const printed = docs(r.stdout);
    expect(printed.map((o) => o['kind'])).toEqual(['Service', 'ConfigMap', 'PodGroup', 'Pod', 'Pod']);
    expect(printed[2]).toMatchObject({
      apiVersion: 'scheduling.volcano.sh/v1beta1',
      metadata: { name: 'vc-a2', namespace: 'ml' },
      spec: { minMember: 2 },
    });
    expect(printed[3]).toMatchObject({
      metadata: {
        annotations: { 'scheduling.k8s.io/group-name': 'vc-a2' },
        labels: { 'runahead.dev/attempt': '2' },
      },
      spec: { schedulerName: 'volcano' },
    });
  });

  it('refuses an invalid job with the field and why (exit 2), and a manifest without a job', async () => {
    const bad = await runCli(['render', '-f', '-'], {
      stdin:
        'apiVersion: runahead.dev/v1alpha1\nkind: RunaheadJob\nmetadata: {name: j}\nspec: {ranks: 2, model: {synthetic: {preset: tiny}}, prompt: {syntheticTokens: 8}, placement: {exclusive: true}}\n',
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /RunaheadJob j: spec\.placement\.exclusive: placement\.exclusive needs placement\.topologyKey/,
    );
    const none = await runCli(['render', '-f', '-'], {
      stdin: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n',
    });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no runahead.dev/v1alpha1 RunaheadJob in the manifest');
    const missing = await runCli(['render', '-f', '/nonexistent/job.yaml']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read /nonexistent/job.yaml');
  });
});
