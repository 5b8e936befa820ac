// `runahead render -f job.yaml`: the objects the operator would create for a manifest's
// RunaheadJobs — the headless Service, the shared ConfigMap and the rank pods — printed as YAML, from
// the operator's own planner (operator/desired-children.ts) and offline: no cluster, no kubeconfig.
// For reviews, GitOps diffs and debugging a placement before it reaches a scheduler.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { parseAllDocuments, stringify } from 'yaml';
import { z } from 'zod';
import { API_VERSION, KIND } from '../../core/api/v1alpha1/names.ts';
import { parseRunaheadJob } from '../../core/api/v1alpha1/runahead-job.ts';
import {
  DEFAULT_OPERATOR_DEFAULTS,
  desiredChildren,
  jobRef,
  type OperatorDefaults,
} from '../../operator/desired-children.ts';
import { UsageError, parseFlags } from '../options.ts';

const RenderFlags = z.object({
  filename: z.string({ error: 'give the manifest with -f <file> (- for stdin)' }).min(1),
  namespace: z.string().min(1).default('default'),
  workerImage: z.string().min(1),
  clusterDomain: z.string().min(1),
  attempt: z.coerce
    .number({ error: '--attempt must be a number' })
    .int('--attempt must be a whole number')
    .min(0, '--attempt must be ≥ 0')
    .max(100, '--attempt must be ≤ 100 (spec.backoffLimit’s maximum)'),
});
type RenderFlags = z.infer<typeof RenderFlags>;

/** The manifest's RunaheadJobs as the operator would parse them; other kinds are passed over. */
export function jobsOf(text: string, source: string, namespace: string) {
  const docs = parseAllDocuments(text);
  const jobs = [];
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0)
      throw new UsageError(`${source}: document ${i + 1}: ${doc.errors[0]!.message}`);
    const obj: unknown = doc.toJS();
    if (!obj || typeof obj !== 'object') continue;
    const { apiVersion, kind, metadata } = obj as {
      apiVersion?: unknown;
      kind?: unknown;
      metadata?: Record<string, unknown>;
    };
    if (kind !== KIND || apiVersion !== API_VERSION) continue;
    // The API server fills the namespace from the request, as `kubectl apply -n` does.
    const withNamespace = { ...obj, metadata: { namespace, ...metadata } };
    const parsed = parseRunaheadJob(withNamespace);
    const name = typeof metadata?.['name'] === 'string' ? metadata['name'] : `document ${i + 1}`;
    if (!parsed.ok) throw new UsageError(`${source}: RunaheadJob ${name}: ${parsed.message}`);
    jobs.push(parsed.job);
  }
  if (jobs.length === 0) throw new UsageError(`${source}: no ${API_VERSION} ${KIND} in the manifest`);
  return jobs;
}

/** The YAML `runahead render` prints: every job's children, one document each. */
export function render(text: string, source: string, flags: RenderFlags): string {
  const defaults: OperatorDefaults = {
    ...DEFAULT_OPERATOR_DEFAULTS,
    workerImage: flags.workerImage,
    clusterDomain: flags.clusterDomain,
  };
  return jobsOf(text, source, flags.namespace)
    .flatMap((job) => desiredChildren(jobRef(job), flags.attempt, defaults))
    .map((o) => `---\n${stringify(o, { lineWidth: 0 })}`)
    .join('');
}

export function registerRender(program: Command): void {
  program
    .command('render')
    .description(
      'print the Service, ConfigMap and rank pods the operator would create for a RunaheadJob manifest (offline)',
    )
    .option(
      '-f, --filename <file>',
      'manifest with one or more RunaheadJobs (- for stdin); other kinds are skipped',
    )
    .option('-n, --namespace <ns>', 'namespace of jobs that name none', 'default')
    .option('--worker-image <image>', 'the operator’s --worker-image', DEFAULT_OPERATOR_DEFAULTS.workerImage)
    .option(
      '--cluster-domain <domain>',
      'the operator’s --cluster-domain',
      DEFAULT_OPERATOR_DEFAULTS.clusterDomain,
    )
    .option('--attempt <n>', 'the rank group’s restart (status.restarts) to render', '0')
    .addHelpText(
      'after',
      '\nThe cluster admin’s limits (--allowed-host-paths, --allowed-image-prefixes, --allow-tolerations,\n--allow-priority-class) are not checked here: a job that breaks one fails with PolicyViolation.\nownerReferences carry the job’s metadata.uid when the manifest has one (kubectl get -o yaml).',
    )
    .action((flags: Record<string, unknown>) => {
      const f = parseFlags(RenderFlags, flags);
      const source = f.filename === '-' ? 'stdin' : f.filename;
      let text: string;
      try {
        text = readFileSync(f.filename === '-' ? 0 : f.filename, 'utf8');
      } catch (err) {
        throw new UsageError(`cannot read ${source}: ${(err as Error).message}`);
      }
      process.stdout.write(render(text, source, f));
    });
}
