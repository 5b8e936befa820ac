import { describe, expect, test } from '@jest/globals';
import { RunaheadJobSpecSchema, type RunaheadJobSpecInput } from '../../core/api/v1alpha1/runahead-job.ts';
import { hostPathProblem, parseAllowedHostPaths } from './host-path-policy.ts';

const spec = (model: RunaheadJobSpecInput['model']) =>
  RunaheadJobSpecSchema.parse({ ranks: 1, mode: 'single', model, prompt: { text: 'hi' } });
const onHost = (path: string) => spec({ checkpoint: { volume: { hostPath: { path } } } });

describe('the hostPath policy', () => {
  test('no hostPath at all by default; PVCs and synthetic models are not its business', () => {
    const none = { allowedHostPaths: [] };
    expect(hostPathProblem(onHost('/data/models'), none)).toMatch(
      /^spec\.model\.checkpoint\.volume\.hostPath\.path \/data\/models is not allowed .*--allowed-host-paths: none.*persistentVolumeClaim/,
    );
    expect(
      hostPathProblem(spec({ checkpoint: { volume: { persistentVolumeClaim: { claimName: 'm' } } } }), none),
    ).toBeNull();
    expect(hostPathProblem(spec({ synthetic: { preset: 'tiny' } }), none)).toBeNull();
  });

  test('a directory is allowed at or under a prefix, not beside it', () => {
    const policy = { allowedHostPaths: ['/var/lib/runahead', '/data/'] };
    expect(hostPathProblem(onHost('/var/lib/runahead'), policy)).toBeNull();
    expect(hostPathProblem(onHost('/var/lib/runahead/models'), policy)).toBeNull();
    expect(hostPathProblem(onHost('/data/m'), policy)).toBeNull();
    expect(hostPathProblem(onHost('/var/lib/runahead-evil'), policy)).toContain('/var/lib/runahead, /data/');
  });

  test('the flag takes absolute directories without ".."', () => {
    expect(parseAllowedHostPaths(' /a, /b/c ,')).toEqual(['/a', '/b/c']);
    expect(parseAllowedHostPaths('')).toEqual([]);
    expect(() => parseAllowedHostPaths('/a,relative')).toThrow('"relative" is not an absolute directory');
    expect(() => parseAllowedHostPaths('/a/../etc')).toThrow('without ".."');
  });
});
