import { describe, expect, it } from '@jest/globals';
import { collectionPath } from './list-collection.ts';

describe('collectionPath', () => {
  it('builds core and group paths, namespaced or across namespaces', () => {
    const pods = { group: '', version: 'v1', plural: 'pods' };
    const jobs = { group: 'runahead.dev', version: 'v1alpha1', plural: 'runaheadjobs' };
    expect(collectionPath(pods)).toBe('/api/v1/pods');
    expect(collectionPath(pods, 'team-a')).toBe('/api/v1/namespaces/team-a/pods');
    expect(collectionPath(jobs)).toBe('/apis/runahead.dev/v1alpha1/runaheadjobs');
    expect(collectionPath(jobs, 'ns')).toBe('/apis/runahead.dev/v1alpha1/namespaces/ns/runaheadjobs');
    expect(
      collectionPath({ group: 'coordination.k8s.io', version: 'v1', plural: 'leases' }, 'kube-system'),
    ).toBe('/apis/coordination.k8s.io/v1/namespaces/kube-system/leases');
  });

  it.each([
    [{ group: '', version: '1', plural: 'pods' }, undefined, /invalid API version "1"/],
    [{ group: '', version: 'v1', plural: 'Pods' }, undefined, /invalid resource name "Pods"/],
    [{ group: 'bad/group', version: 'v1', plural: 'x' }, undefined, /invalid API group "bad\/group"/],
    [{ group: '', version: 'v1', plural: 'pods' }, '../secrets', /invalid namespace "..\/secrets"/],
  ])('refuses %j in %s', (resource, namespace, message) => {
    expect(() => collectionPath(resource, namespace)).toThrow(message);
  });
});
