import { describe, expect, it } from '@jest/globals';
import { syntheticPromptIds } from './prompt.ts';

describe('synthetic prompts', () => {
  it('have the requested length, start with BOS, stay in the vocabulary and repeat per seed', () => {
    const ids = syntheticPromptIds(500, 512, 4, 1);
    expect(ids.length).toBe(500);
    expect(ids[0]).toBe(1);
    expect(ids.slice(1).every((id) => id >= 3 && id < 512)).toBe(true);
    expect(syntheticPromptIds(500, 512, 4, 1)).toEqual(ids);
    expect(syntheticPromptIds(500, 512, 5, 1)).not.toEqual(ids);
  });

  it('refuses an empty prompt', () => {
    expect(() => syntheticPromptIds(0, 512, 1, 1)).toThrow(/at least 1 token/);
  });
});
