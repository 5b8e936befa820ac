// `runahead operator`: the RunaheadJob controller (in a cluster: the chart's Deployment; for
// development: any kubeconfig).
import type { Command } from 'commander';
import { z } from 'zod';
import { parseFlags } from '../options.ts';
import { runOperator } from '../../operator/run-operator.ts';
import { DEFAULT_OPERATOR_DEFAULTS } from '../../operator/desired-children.ts';
import { parseAllowedHostPaths } from '../../operator/policies/host-path-policy.ts';
import { parseAllowedImagePrefixes } from '../../operator/policies/image-policy.ts';
import { NAMESPACE_MODES } from '../../operator/policies/namespace-policy.ts';

const seconds = (flag: string) =>
  z.coerce.number({ error: `${flag} must be a number` }).positive(`${flag} must be > 0`);

/** A comma list parsed by a policy's own parser, its error as the flag's message. */
const commaList = (parse: (text: string) => string[]) =>
  z.string().transform((text, ctx) => {
    try {
      return parse(text);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

export const OperatorFlags = z
  .object({
    kubeconfig: z.string().optional(),
    namespace: z.string().optional(),
    leaderElection: z.boolean(),
    leaderElectionNamespace: z.string().optional(),
    leaseName: z.string().min(1),
    leaseDuration: seconds('--lease-duration'),
    renewDeadline: seconds('--renew-deadline'),
    retryPeriod: seconds('--retry-period'),
    metricsAddress: z
      .string()
      .regex(
        /^[^:]*:\d+$/,
        '--metrics-address must be host:port (e.g. 0.0.0.0:8080, or :0 for any free port)',
      ),
    workerImage: z.string().min(1),
    clusterDomain: z.string().min(1),
    allowedHostPaths: commaList(parseAllowedHostPaths),
    allowedImagePrefixes: commaList(parseAllowedImagePrefixes),
    allowTolerations: z.boolean().default(false),
    allowPriorityClass: z.boolean().default(false),
    gangCapacityCheck: z.boolean().default(false),
    namespaces: z.enum(NAMESPACE_MODES, {
      error: `--namespaces must be one of: ${NAMESPACE_MODES.join(', ')}`,
    }),
    concurrency: z.coerce.number().int().min(1, '--concurrency must be ≥ 1').max(64),
    identity: z.string().optional(),
  })
  // One namespace is served or not by the admin's own choice of --namespace; a label adds nothing.
  .refine((f) => !(f.namespace !== undefined && f.namespaces === 'labelled'), {
    message: '--namespaces labelled needs the operator to watch every namespace: drop --namespace',
  });
export type OperatorFlags = z.infer<typeof OperatorFlags>;

export function registerOperator(program: Command): void {
  program
    .command('operator')
    .description(
      'run the RunaheadJob operator (reconciles jobs into rank pods; serves metrics and a dashboard)',
    )
    .option(
      '--kubeconfig <file>',
      'kubeconfig to use (default: in-cluster config, else $KUBECONFIG or ~/.kube/config)',
    )
    .option('--namespace <ns>', 'watch only this namespace (default: all namespaces)')
    .option('--no-leader-election', 'act without a Lease (only for a single replica)')
    .option(
      '--leader-election-namespace <ns>',
      'namespace of the Lease (default: $POD_NAMESPACE, else default)',
    )
    .option('--lease-name <name>', 'name of the Lease', 'runahead-operator')
    .option('--lease-duration <s>', 'seconds a leader holds the Lease without renewing', '15')
    .option('--renew-deadline <s>', 'seconds the leader keeps trying to renew before it steps down', '10')
    .option('--retry-period <s>', 'seconds between attempts to acquire or renew', '2')
    .option(
      '--metrics-address <host:port>',
      'serves /metrics, /healthz, /readyz and the dashboard at /',
      '0.0.0.0:8080',
    )
    .option(
      '--worker-image <image>',
      'worker image for jobs that name none',
      DEFAULT_OPERATOR_DEFAULTS.workerImage,
    )
    .option(
      '--cluster-domain <domain>',
      'cluster DNS domain for rank addresses',
      DEFAULT_OPERATOR_DEFAULTS.clusterDomain,
    )
    .option(
      '--allowed-host-paths <dirs>',
      'comma-separated node directories a job’s hostPath may be at or under (default: none, no hostPath)',
      '',
    )
    .option(
      '--allowed-image-prefixes <prefixes>',
      'comma-separated image prefixes a rank’s image (spec.image, else --worker-image) must start with (default: any image)',
      '',
    )
    .option(
      '--allow-tolerations',
      'pass jobs’ spec.tolerations to their pods (default: a job setting them fails)',
    )
    .option(
      '--allow-priority-class',
      'pass jobs’ spec.priorityClassName to their pods (default: a job setting one fails)',
    )
    .option(
      '--namespaces <which>',
      'serve jobs in all namespaces, or only in those labelled runahead.dev/enabled=true (labelled)',
      'all',
    )
    .option(
      '--gang-capacity-check',
      'keep a gang’s scheduling gate until some topology domain has free GPUs for all its ranks (lists and watches nodes)',
    )
    .option('--concurrency <n>', 'jobs reconciled at once', '4')
    .option('--identity <id>', 'this replica in the Lease (default: $POD_NAME, else hostname_pid)')
    .action(async (flags: Record<string, unknown>) => {
      const f = parseFlags(OperatorFlags, flags);
      // Exit with the operator's code even if a client library left a handle open.
      process.exit(await runOperator(f));
    });
}
