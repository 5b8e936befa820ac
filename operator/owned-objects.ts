// What the planners know of one of our objects (a RunaheadJob, a RunaheadServer) and how its
// children point back at it: identity read once from the object's metadata, and the controller
// owner reference — the garbage collector deletes a child with its owner, and `controller` tells
// other controllers the child is taken.
import type { V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION } from '../core/api/v1alpha1/names.ts';

/** One of our objects as a planner needs it: validated spec, identity, its own labels. */
export interface OwnerRef<Spec> {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  /** The object's own labels (absent: none). */
  readonly labels?: Readonly<Record<string, string>>;
  readonly spec: Spec;
}

/** An object as parsed by its zod schema. */
interface Parsed<Spec> {
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string | undefined;
    readonly uid?: string | undefined;
    readonly labels?: Readonly<Record<string, string>> | undefined;
  };
  readonly spec: Spec;
}

export function ownerRef<Spec>(obj: Parsed<Spec>): OwnerRef<Spec> {
  return {
    name: obj.metadata.name,
    namespace: obj.metadata.namespace ?? 'default',
    uid: obj.metadata.uid ?? '',
    labels: obj.metadata.labels ?? {},
    spec: obj.spec,
  };
}

/** `owner` (of kind `kind`, in our API group) as its child's controller. */
export function controllerReference(kind: string, owner: OwnerRef<unknown>): V1OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind,
    name: owner.name,
    uid: owner.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** A child's metadata: `name` in its owner's namespace, with `labels`, controlled by the owner. */
export function childMeta(
  kind: string,
  owner: OwnerRef<unknown>,
  name: string,
  labels: Record<string, string>,
): { name: string; namespace: string; labels: Record<string, string>; ownerReferences: V1OwnerReference[] } {
  return { name, namespace: owner.namespace, labels, ownerReferences: [controllerReference(kind, owner)] };
}
