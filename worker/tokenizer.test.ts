import { describe, expect, it } from '@jest/globals';
import { loadTokenizer } from './tokenizer.ts';

describe('synthetic tokenizer', () => {
  it('is byte-level: one token per UTF-8 byte after BOS, and decodes back', async () => {
    const tok = await loadTokenizer('synthetic:tiny');
    const text = 'héllo, 世界 🙂';
    const ids = tok.encode(text);
    expect(ids[0]).toBe(1);
    expect(ids.length).toBe(1 + Buffer.byteLength(text));
    expect(tok.decode(ids)).toBe(text);
    expect(tok.decode([300])).toBe('<extra_300>');
  });

  it('names a missing tokenizer.json', async () => {
    await expect(loadTokenizer('/nonexistent/model')).rejects.toThrow(
      /tokenizer\.json not found: \/nonexistent\/model\/tokenizer\.json/,
    );
  });
});
