// Lists a collection as plain JSON, the way the watch delivers objects. client-node's typed lists
// turn built-in objects into model classes (timestamps become Date) while its Watch hands over the
// JSON it read (timestamps stay strings); an informer fed by both would hold a mix of the two shapes
// in one cache. Going through client-node's own request context and HTTP library keeps its
// authentication (tokens, exec plugins, client certificates) and TLS settings.
import {
  ApiException,
  HttpMethod,
  IsomorphicFetchHttpLibrary,
  RequestContext,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
} from '@kubernetes/client-node';

/** Which collection: `{group: '', version: 'v1', plural: 'pods'}`, `{group: 'runahead.dev', ...}`. */
export interface ResourceRef {
  /** API group; '' for the core group (pods, services, configmaps). */
  readonly group: string;
  readonly version: string;
  /** Plural resource name, lower case (runaheadjobs, pods). */
  readonly plural: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** `/api/v1/namespaces/ns/pods`, `/apis/runahead.dev/v1alpha1/runaheadjobs` (all namespaces). */
export function collectionPath(resource: ResourceRef, namespace?: string): string {
  const { group, version, plural } = resource;
  if (!/^v\d+((alpha|beta)\d+)?$/.test(version))
    throw new Error(
      `invalid API version ${JSON.stringify(version)} for ${plural} (expected e.g. v1, v1alpha1)`,
    );
  if (!DNS_LABEL.test(plural)) throw new Error(`invalid resource name ${JSON.stringify(plural)}`);
  if (group !== '' && !group.split('.').every((part) => DNS_LABEL.test(part)))
    throw new Error(`invalid API group ${JSON.stringify(group)} for ${plural}`);
  if (namespace !== undefined && !DNS_LABEL.test(namespace))
    throw new Error(`invalid namespace ${JSON.stringify(namespace)} for ${plural}`);
  const root = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
  return namespace === undefined ? `${root}/${plural}` : `${root}/namespaces/${namespace}/${plural}`;
}

export interface ListOptions {
  readonly labelSelector?: string | undefined;
  /** Objects per page (the API server's `limit`); pages keep each response and its memory bounded. */
  readonly pageSize?: number | undefined;
  /** Deadline of each page's request. */
  readonly timeoutMs?: number | undefined;
}

/**
 * Lists every object of `path` (following `continue` tokens: one consistent snapshot). Throws
 * client-node's ApiException (`.code`) for HTTP errors, as its typed clients do.
 */
export async function listCollection<T extends KubernetesObject>(
  kubeConfig: KubeConfig,
  path: string,
  options: ListOptions = {},
): Promise<KubernetesListObject<T>> {
  const cluster = kubeConfig.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster: set current-context');
  const http = new IsomorphicFetchHttpLibrary();
  const items: T[] = [];
  let resourceVersion: string | undefined;
  let continueToken: string | undefined;
  do {
    const url = new URL(cluster.server + path);
    url.searchParams.set('limit', String(options.pageSize ?? 500));
    if (options.labelSelector !== undefined) url.searchParams.set('labelSelector', options.labelSelector);
    if (continueToken !== undefined) url.searchParams.set('continue', continueToken);
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    ctx.setHeaderParam('Accept', 'application/json');
    ctx.setSignal(AbortSignal.timeout(options.timeoutMs ?? 60_000));
    await kubeConfig.applySecurityAuthentication(ctx);
    const response = await http.send(ctx).toPromise();
    const text = await response.body.text();
    if (response.httpStatusCode < 200 || response.httpStatusCode > 299) {
      throw new ApiException(
        response.httpStatusCode,
        `list ${path} failed`,
        parseOrText(text),
        response.headers,
      );
    }
    const page = JSON.parse(text) as RawListPage<T>;
    // Every page of one snapshot carries its resourceVersion: the watch starts from there.
    resourceVersion ??= page.metadata?.resourceVersion;
    for (const item of page.items ?? []) items.push(item);
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken !== undefined);
  return { metadata: resourceVersion === undefined ? {} : { resourceVersion }, items };
}

/** A list response as JSON (client-node's V1ListMeta names `continue` `_continue`). */
interface RawListPage<T> {
  readonly metadata?: { readonly resourceVersion?: string; readonly continue?: string };
  readonly items?: T[] | null;
}

function parseOrText(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
