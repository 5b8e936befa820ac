// What a cluster admin allows: which images rank pods may run. A rank runs the job's `spec.image`
// (or the operator's --worker-image when the job names none) with the operator's identity as its
// creator, so a user allowed only to create RunaheadJobs would otherwise run any image the nodes
// can pull. --allowed-image-prefixes (chart: operator.allowedImagePrefixes) narrows it; empty, the
// default, allows any image, as before.
//
// An image is compared as written: the container runtime expands short names (`busybox` →
// `docker.io/library/busybox`) after admission, so an admin lists each spelling they accept.
import type { RunaheadJobSpec } from '../../core/api/v1alpha1/runahead-job.ts';

export interface ImagePolicy {
  /** Image references a rank's image must start with; empty: any image. */
  readonly allowedImagePrefixes: readonly string[];
}

export const DEFAULT_IMAGE_POLICY: ImagePolicy = { allowedImagePrefixes: [] };

/**
 * `image` is `prefix` itself or continues it at a boundary of the reference (`/` a path component,
 * `:` a tag, `@` a digest), so `ghcr.io/acme/worker` allows `ghcr.io/acme/worker:1.0` but not
 * `ghcr.io/acme/worker-evil`. A prefix that ends in `/`, `:` or `@` already ends at a boundary.
 */
export function imageUnder(image: string, prefix: string): boolean {
  if (!image.startsWith(prefix)) return false;
  if (image.length === prefix.length || /[/:@]$/.test(prefix)) return true;
  return '/:@'.includes(image[prefix.length]!);
}

/** Why the policy refuses the job (the message names the field, the value, the flag and the fix), or null. */
export function imageProblem(spec: RunaheadJobSpec, workerImage: string, policy: ImagePolicy): string | null {
  const prefixes = policy.allowedImagePrefixes;
  if (prefixes.length === 0) return null;
  const image = spec.image ?? workerImage;
  if (prefixes.some((p) => imageUnder(image, p))) return null;
  const field =
    spec.image === undefined
      ? `the operator's default worker image ${image} (spec.image unset)`
      : `spec.image ${image}`;
  return (
    `${field} is not allowed by the operator's image policy (--allowed-image-prefixes: ${prefixes.join(', ')}): ` +
    `set spec.image to an image under one of them, or ask a cluster admin to allow its registry`
  );
}

/** Parse --allowed-image-prefixes: comma-separated image reference prefixes, no spaces. */
export function parseAllowedImagePrefixes(text: string): string[] {
  const prefixes = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  const bad = prefixes.find((p) => /\s/.test(p) || /^[/:@]/.test(p));
  if (bad !== undefined)
    throw new Error(
      `--allowed-image-prefixes: ${JSON.stringify(bad)} is not an image reference prefix (e.g. registry.example.com/runahead/)`,
    );
  return prefixes;
}
