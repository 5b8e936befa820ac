// The chart's Deployment runs `runahead operator` with arguments the command really accepts: they
// are parsed by the command's own definition (cli/commands/operator.ts), with its action replaced so
// that nothing starts.
import { describe, expect, test } from '@jest/globals';
import { Command } from 'commander';
import { registerOperator } from '../../cli/commands/operator.ts';
import { find, render, type RenderOptions } from '../support/chart.ts';

async function deploymentArgs(opts: RenderOptions): Promise<{ args: string[]; env: string[] }> {
  const { manifests } = await render(opts);
  const c = (
    find(manifests, 'Deployment') as unknown as {
      spec: { template: { spec: { containers: { args: string[]; env: { name: string }[] }[] } } };
    }
  ).spec.template.spec.containers[0]!;
  return { args: c.args, env: c.env.map((e) => e.name) };
}

/** The option values `runahead operator` parses from `args`; throws on an unknown or malformed flag. */
async function parseAsOperator(args: readonly string[]): Promise<Record<string, unknown>> {
  const program = new Command('runahead').exitOverride();
  registerOperator(program);
  const operator = program.commands.find((c) => c.name() === 'operator')!;
  let parsed: Record<string, unknown> | undefined;
  operator.exitOverride().configureOutput({ writeErr: () => {} });
  operator.action((flags: Record<string, unknown>) => {
    parsed = flags;
  });
  await program.parseAsync([...args], { from: 'user' });
  return parsed!;
}

describe('the Deployment runs `runahead operator` with flags it accepts', () => {
  test('default values: leader election on, the Lease in the release namespace, metrics on the container port', async () => {
    const { args } = await deploymentArgs({ namespace: 'ops' });
    expect(args[0]).toBe('operator');
    expect(await parseAsOperator(args)).toMatchObject({
      leaderElection: true,
      leaderElectionNamespace: 'ops',
      leaseName: 'runahead-operator',
      metricsAddress: '0.0.0.0:8080',
      workerImage: 'runahead-worker:0.1.0',
      // No hostPath unless a cluster admin allows directories.
      allowedHostPaths: '',
      // Any image; no tolerations or priority classes; every namespace.
      allowedImagePrefixes: '',
      namespaces: 'all',
    });
    expect(args.some((a) => a.startsWith('--allow-tolerations') || a.startsWith('--allow-priority'))).toBe(
      false,
    );
  }, 60_000);

  test('one replica without leader election, one watched namespace, another port and worker image', async () => {
    const { args } = await deploymentArgs({
      set: [
        'replicaCount=1',
        'operator.leaderElection.enabled=false',
        'operator.watchNamespace=ml',
        'operator.port=9090',
        'workerImage.repository=registry.example.com/w',
        'workerImage.tag=1.0',
        'operator.extraArgs={--concurrency=8}',
        'operator.allowedHostPaths={/var/lib/runahead,/data/models}',
      ],
    });
    const flags = await parseAsOperator(args);
    expect(flags).toMatchObject({
      allowedHostPaths: '/var/lib/runahead,/data/models',
      leaderElection: false,
      namespace: 'ml',
      metricsAddress: '0.0.0.0:9090',
      workerImage: 'registry.example.com/w:1.0',
      concurrency: '8',
    });
    expect(flags['leaderElectionNamespace']).toBeUndefined();
  }, 60_000);

  test("the admin's limits: image prefixes, pass-through switches, labelled namespaces", async () => {
    const { args } = await deploymentArgs({
      set: [
        'operator.allowedImagePrefixes={registry.example.com/ml/,runahead-worker}',
        'operator.allowTolerations=true',
        'operator.allowPriorityClass=true',
        'operator.namespaces=labelled',
      ],
    });
    expect(await parseAsOperator(args)).toMatchObject({
      allowedImagePrefixes: 'registry.example.com/ml/,runahead-worker',
      allowTolerations: true,
      allowPriorityClass: true,
      namespaces: 'labelled',
    });
  }, 60_000);

  test('labelled namespaces with one watched namespace, or another mode, are refused', async () => {
    await expect(
      deploymentArgs({ set: ['operator.namespaces=labelled', 'operator.watchNamespace=ml'] }),
    ).rejects.toThrow('leave operator.watchNamespace empty');
    await expect(deploymentArgs({ set: ['operator.namespaces=some'] })).rejects.toThrow(
      "at '/operator/namespaces': value must be one of 'all', 'labelled'",
    );
    await expect(deploymentArgs({ set: ['operator.allowedImagePrefixes={a b}'] })).rejects.toThrow(
      "at '/operator/allowedImagePrefixes/0'",
    );
  }, 60_000);

  test('an unknown flag would be refused, so the tests above would catch one', async () => {
    await expect(parseAsOperator(['operator', '--leader-election'])).rejects.toThrow(
      /unknown option '--leader-election'/,
    );
  });
});
