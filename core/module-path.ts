// Entry points started as threads or processes are named by their sibling module: `.ts` when the
// source runs directly under Node's type stripping, `.js` when running the build in dist/.
export function siblingModule(importMetaUrl: string, relative: string): URL {
  const ext = importMetaUrl.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`${relative}${ext}`, importMetaUrl);
}
