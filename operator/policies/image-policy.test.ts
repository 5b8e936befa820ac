import { describe, expect, test } from '@jest/globals';
import { RunaheadJobSpecSchema } from '../../core/api/v1alpha1/runahead-job.ts';
import { imageProblem, imageUnder, parseAllowedImagePrefixes } from './image-policy.ts';

const spec = (image?: string) =>
  RunaheadJobSpecSchema.parse({
    ranks: 1,
    mode: 'single',
    model: { synthetic: { preset: 'tiny' } },
    prompt: { text: 'hi' },
    ...(image === undefined ? {} : { image }),
  });
const DEFAULT_IMAGE = 'ghcr.io/runahead/worker:0.1.0';

describe('the image policy', () => {
  test('any image by default', () => {
    expect(
      imageProblem(spec('docker.io/evil/miner:latest'), DEFAULT_IMAGE, { allowedImagePrefixes: [] }),
    ).toBeNull();
  });

  test.each([
    ['registry.example.com/runahead/', 'registry.example.com/runahead/worker:1.0', true],
    ['registry.example.com/runahead', 'registry.example.com/runahead/worker:1.0', true],
    ['registry.example.com/runahead', 'registry.example.com/runahead-evil/worker:1.0', false],
    ['ghcr.io/runahead/worker', 'ghcr.io/runahead/worker', true],
    ['ghcr.io/runahead/worker', 'ghcr.io/runahead/worker:0.1.0', true],
    ['ghcr.io/runahead/worker', 'ghcr.io/runahead/worker@sha256:0123', true],
    ['ghcr.io/runahead/worker', 'ghcr.io/runahead/worker-evil:0.1.0', false],
    ['ghcr.io/runahead/worker:', 'ghcr.io/runahead/worker:0.1.0', true],
    // As written: the runtime's expansion of short names comes after admission.
    ['docker.io/library/', 'busybox', false],
    ['registry.example.com', 'registry.example.com.evil.io/x', false],
  ])('prefix %s: %s allowed = %s', (prefix, image, allowed) => {
    expect(imageUnder(image, prefix)).toBe(allowed);
  });

  test('a job whose image is not under a prefix is refused, naming the field, the value, the flag and the fix', () => {
    const policy = { allowedImagePrefixes: ['registry.example.com/runahead/', 'ghcr.io/runahead/worker'] };
    expect(imageProblem(spec('registry.example.com/runahead/worker:1'), DEFAULT_IMAGE, policy)).toBeNull();
    expect(imageProblem(spec('docker.io/evil/miner:latest'), DEFAULT_IMAGE, policy)).toBe(
      "spec.image docker.io/evil/miner:latest is not allowed by the operator's image policy " +
        '(--allowed-image-prefixes: registry.example.com/runahead/, ghcr.io/runahead/worker): ' +
        'set spec.image to an image under one of them, or ask a cluster admin to allow its registry',
    );
  });

  test("a job without an image is checked with the operator's default worker image", () => {
    const policy = { allowedImagePrefixes: ['registry.example.com/'] };
    expect(imageProblem(spec(), 'registry.example.com/worker:1', policy)).toBeNull();
    expect(imageProblem(spec(), DEFAULT_IMAGE, policy)).toMatch(
      /^the operator's default worker image ghcr\.io\/runahead\/worker:0\.1\.0 \(spec\.image unset\) is not allowed .*--allowed-image-prefixes: registry\.example\.com\//,
    );
  });

  test('the flag takes comma-separated prefixes without spaces', () => {
    expect(parseAllowedImagePrefixes(' registry.example.com/a/, ghcr.io/b ,')).toEqual([
      'registry.example.com/a/',
      'ghcr.io/b',
    ]);
    expect(parseAllowedImagePrefixes('')).toEqual([]);
    expect(() => parseAllowedImagePrefixes('a b')).toThrow('"a b" is not an image reference prefix');
    expect(() => parseAllowedImagePrefixes(':tag')).toThrow('is not an image reference prefix');
  });
});
