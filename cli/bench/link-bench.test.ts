import { describe, expect, it } from '@jest/globals';
import { RANK_MALLOC_ENV } from './link-bench.ts';

describe('bench link', () => {
  it('runs its rank processes with the allocator settings every rank runs with', async () => {
    // ort.ts loads onnxruntime, which the link benchmark itself must not: only this test imports it.
    const { MALLOC_TUNING_ENV } = await import('../../worker/runtime/ort.ts');
    expect(RANK_MALLOC_ENV).toEqual(MALLOC_TUNING_ENV);
  });
});
