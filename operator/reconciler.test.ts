// The reconciler without an API server: what it decides before it writes. Its clients point at a
// port where nothing listens, so any request it made would fail the test; what it writes, and the
// 409/404 handling, run against a real kube-apiserver in test/integration/operator.test.ts (the
// reconciler's own logic is the thin "apply the plan" layer; the decisions are job-plan.ts's, tested
// in job-plan.test.ts).
import { describe, expect, it } from '@jest/globals';
import { CoreV1Api, CustomObjectsApi, KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../core/api/v1alpha1/names.ts';
import { parseRunaheadJob, type RunaheadJobStatus } from '../core/api/v1alpha1/runahead-job.ts';
import { logger } from '../core/log.ts';
import { DEFAULT_OPERATOR_DEFAULTS } from './desired-children.ts';
import { planInvalidJob } from './job-plan.ts';
import { ConflictError, Reconciler, type ClusterView, type ReconcileObserver } from './reconciler.ts';

const NOW = new Date('2026-12-01T10:00:00Z');

function clients(): { core: CoreV1Api; custom: CustomObjectsApi } {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'nowhere', server: 'http://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'nowhere', cluster: 'nowhere', user: 'nobody' }],
    currentContext: 'nowhere',
  });
  return { core: kc.makeApiClient(CoreV1Api), custom: kc.makeApiClient(CustomObjectsApi) };
}

function view(jobs: Record<string, unknown>, pods: V1Pod[] = []): ClusterView {
  return {
    job: (namespace, name) => jobs[`${namespace}/${name}`],
    podsOfJob: () => pods,
    serviceExists: () => false,
    configMapExists: () => false,
    namespaceLabels: () => undefined,
  };
}

function observer() {
  const seen = { gone: [] as string[], terminal: [] as string[], restarted: 0 };
  const o: ReconcileObserver = {
    terminal: (job, status) => seen.terminal.push(`${job.namespace}/${job.name}:${status.phase ?? ''}`),
    restarted: () => {
      seen.restarted++;
    },
    jobGone: (namespace, name) => seen.gone.push(`${namespace}/${name}`),
  };
  return { o, seen };
}

function reconciler(v: ClusterView, o: ReconcileObserver): Reconciler {
  return new Reconciler({
    view: v,
    ...clients(),
    defaults: DEFAULT_OPERATOR_DEFAULTS,
    log: logger('reconciler-test'),
    observer: o,
    clock: () => NOW,
  });
}

const job = (spec: object, status?: RunaheadJobStatus, metadata: object = {}) => ({
  apiVersion: API_VERSION,
  kind: KIND,
  metadata: { name: 'demo', namespace: 'ns', uid: 'uid-1', generation: 3, resourceVersion: '7', ...metadata },
  spec,
  ...(status ? { status } : {}),
});
const validSpec = { ranks: 2, model: { synthetic: { preset: 'tiny' } }, prompt: { syntheticTokens: 64 } };

describe('Reconciler, before any write', () => {
  it('forgets a job that is gone, without a request', async () => {
    const { o, seen } = observer();
    expect(await reconciler(view({}), o).reconcile('ns', 'demo')).toEqual({ requeueAfterMs: null });
    expect(seen.gone).toEqual(['ns/demo']);
  });

  it('leaves a job that is being deleted to garbage collection', async () => {
    const { o, seen } = observer();
    const deleting = job(validSpec, undefined, { deletionTimestamp: NOW.toISOString() });
    expect(await reconciler(view({ 'ns/demo': deleting }), o).reconcile('ns', 'demo')).toEqual({
      requeueAfterMs: null,
    });
    expect(seen).toEqual({ gone: [], terminal: [], restarted: 0 });
  });

  it('writes nothing for an invalid job whose status already says so', async () => {
    const invalid = job({ ...validSpec, ranks: 0 });
    const parsed = parseRunaheadJob(invalid);
    expect(parsed.ok).toBe(false);
    const recorded = planInvalidJob(undefined, 3, parsed.ok ? '' : parsed.message, [], NOW).status;
    const { o } = observer();
    const r = reconciler(view({ 'ns/demo': job({ ...validSpec, ranks: 0 }, recorded) }), o);
    expect(await r.reconcile('ns', 'demo')).toEqual({ requeueAfterMs: null });
  });

  it('with --namespaces labelled, leaves a job in a namespace without the label alone: no status write', async () => {
    // The same job, served, fails on its status write (the test above): here nothing is written.
    const { o, seen } = observer();
    const unserved = job({ ...validSpec, ranks: 0 });
    const labelled = { ...DEFAULT_OPERATOR_DEFAULTS, namespacePolicy: { namespaces: 'labelled' as const } };
    const make = (labels?: Record<string, string>) =>
      new Reconciler({
        view: { ...view({ 'ns/demo': unserved }), namespaceLabels: () => labels },
        ...clients(),
        defaults: labelled,
        log: logger('reconciler-test'),
        observer: o,
        clock: () => NOW,
      });
    expect(await make(undefined).reconcile('ns', 'demo')).toEqual({ requeueAfterMs: null });
    expect(await make({ 'runahead.dev/enabled': 'false' }).reconcile('ns', 'demo')).toEqual({
      requeueAfterMs: null,
    });
    expect(seen).toEqual({ gone: [], terminal: [], restarted: 0 });
    await expect(make({ 'runahead.dev/enabled': 'true' }).reconcile('ns', 'demo')).rejects.toThrow();
  });

  it('passes on a failed status write: neither a conflict to retry at once nor "deleted meanwhile"', async () => {
    const { o, seen } = observer();
    const r = reconciler(view({ 'ns/demo': job({ ...validSpec, ranks: 0 }) }), o);
    const outcome = r.reconcile('ns', 'demo');
    await expect(outcome).rejects.toThrow();
    await expect(outcome).rejects.not.toBeInstanceOf(ConflictError);
    expect(seen.terminal).toEqual([]);
  });
});
