// Renders charts/runahead-operator with helm and parses the manifests, for the chart tests and for
// integration tests that want to run as the chart's ServiceAccount (`chartRbac`).
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { helm, type RunResult } from './tools.ts';

export const CHART_DIR = fileURLToPath(new URL('../../charts/runahead-operator', import.meta.url));

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface RenderOptions {
  release?: string;
  namespace?: string;
  /** `--set` assignments. */
  set?: readonly string[];
  /** A values file's content (YAML or JSON). */
  values?: string;
  /** Also render crds/ (helm template --include-crds). */
  includeCrds?: boolean;
}

function templateArgs(opts: RenderOptions): string[] {
  return [
    'template',
    opts.release ?? 'runahead',
    CHART_DIR,
    '--namespace',
    opts.namespace ?? 'runahead-system',
    ...(opts.includeCrds ? ['--include-crds'] : []),
    ...(opts.values === undefined ? [] : ['--values', '-']),
    ...(opts.set ?? []).flatMap((s) => ['--set', s]),
  ];
}

/** `helm template` as it ran: exit code, the YAML, and stderr (a refusal's reason). */
export function renderRaw(opts: RenderOptions = {}): Promise<RunResult> {
  return helm(templateArgs(opts), opts.values);
}

/** The manifests `helm template` renders; throws with helm's message if it refuses. */
export async function render(opts: RenderOptions = {}): Promise<{ yaml: string; manifests: Manifest[] }> {
  const r = await renderRaw(opts);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}):\n${r.stderr}`);
  const manifests = parseAllDocuments(r.stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${d.errors[0]?.message}`);
      return d.toJS() as Manifest | null;
    })
    .filter((m): m is Manifest => m !== null);
  return { yaml: r.stdout, manifests };
}

export function find(manifests: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  if (found.length !== 1)
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, rendered ${found.length}`);
  return found[0]!;
}

export function kinds(manifests: readonly Manifest[]): string[] {
  return manifests.map((m) => m.kind).sort();
}
