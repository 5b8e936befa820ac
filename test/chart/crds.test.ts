// The chart ships the CRD in crds/ (Helm's convention), as a copy of the generated crds/ of the
// repository (`make chart-crds`). A copy that drifted would install an old schema.
import { describe, expect, test } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CHART_DIR } from '../support/chart.ts';

const REPO_CRDS = fileURLToPath(new URL('../../crds', import.meta.url));
const CHART_CRDS = `${CHART_DIR}/crds`;

describe('chart crds/', () => {
  test('holds exactly the generated CRDs, byte for byte (else: make chart-crds)', () => {
    const generated = readdirSync(REPO_CRDS)
      .filter((f) => f.endsWith('.yaml'))
      .sort();
    expect(generated.length).toBeGreaterThan(0);
    expect(readdirSync(CHART_CRDS).sort()).toEqual(generated);
    for (const f of generated) {
      const same = readFileSync(`${CHART_CRDS}/${f}`, 'utf8') === readFileSync(`${REPO_CRDS}/${f}`, 'utf8');
      expect([f, same ? 'same' : 'differs: run make chart-crds']).toEqual([f, 'same']);
    }
  });
});
