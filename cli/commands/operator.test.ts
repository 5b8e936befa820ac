import { describe, expect, test } from '@jest/globals';
import { Command } from 'commander';
import { parseFlags } from '../options.ts';
import { OperatorFlags, registerOperator } from './operator.ts';

/** What `runahead operator <argv>` would run with; throws the command's usage error. */
async function flags(...argv: string[]): Promise<OperatorFlags> {
  const program = new Command('runahead').exitOverride();
  registerOperator(program);
  const operator = program.commands.find((c) => c.name() === 'operator')!;
  let raw: Record<string, unknown> = {};
  operator.exitOverride().configureOutput({ writeErr: () => {} });
  operator.action((f: Record<string, unknown>) => {
    raw = f;
  });
  await program.parseAsync(['operator', ...argv], { from: 'user' });
  return parseFlags(OperatorFlags, raw);
}

describe("`runahead operator`: the admin's limits", () => {
  test('defaults: any image, no tolerations or priority classes, every namespace, no hostPath', async () => {
    expect(await flags()).toMatchObject({
      allowedImagePrefixes: [],
      allowTolerations: false,
      allowPriorityClass: false,
      namespaces: 'all',
      allowedHostPaths: [],
    });
  });

  test('set', async () => {
    expect(
      await flags(
        '--allowed-image-prefixes',
        'registry.example.com/ml/, ghcr.io/runahead/worker',
        '--allow-tolerations',
        '--allow-priority-class',
        '--namespaces',
        'labelled',
      ),
    ).toMatchObject({
      allowedImagePrefixes: ['registry.example.com/ml/', 'ghcr.io/runahead/worker'],
      allowTolerations: true,
      allowPriorityClass: true,
      namespaces: 'labelled',
    });
  });

  test('refused with a message naming the flag', async () => {
    await expect(flags('--namespaces', 'some')).rejects.toThrow('--namespaces must be one of: all, labelled');
    await expect(flags('--namespaces', 'labelled', '--namespace', 'ml')).rejects.toThrow(
      '--namespaces labelled needs the operator to watch every namespace: drop --namespace',
    );
    await expect(flags('--allowed-image-prefixes', 'a b')).rejects.toThrow(
      '--allowed-image-prefixes: "a b" is not an image reference prefix',
    );
  });
});
