import { describe, expect, it } from '@jest/globals';
import {
  ApiError,
  COMPLETION_LIMIT_DEFAULTS as limits,
  completionBody,
  completionChunk,
  finishReason,
  parseCompletionRequest,
  promptTokenIds,
  type Completion,
} from './completions-api.ts';

const MODEL = 'synthetic:tiny';

function refusal(f: () => unknown): ApiError {
  try {
    f();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('not refused');
}

describe('parseCompletionRequest', () => {
  it('takes text or token ids, with OpenAI’s defaults, and ignores sampling fields', () => {
    expect(parseCompletionRequest({ model: MODEL, prompt: 'hi', temperature: 0.7 }, MODEL, limits)).toEqual({
      model: MODEL,
      prompt: { kind: 'text', text: 'hi' },
      maxTokens: 16,
      stream: false,
    });
    expect(
      parseCompletionRequest({ model: MODEL, prompt: [1, 2], max_tokens: 3, stream: true }, MODEL, limits),
    ).toMatchObject({
      prompt: { kind: 'ids', ids: [1, 2] },
      maxTokens: 3,
      stream: true,
    });
  });

  it('refuses each bad field by name, with what would be accepted', () => {
    const cases: [unknown, number, string | null, RegExp][] = [
      [{ prompt: 'x' }, 400, 'model', /model is required/],
      [{ model: 'gpt-4', prompt: 'x' }, 404, 'model', /serves "synthetic:tiny"/],
      [{ model: MODEL, prompt: ['a', 'b'] }, 400, 'prompt', /one prompt per request/],
      [{ model: MODEL, prompt: 'x', max_tokens: 0 }, 400, 'max_tokens', /≥ 1/],
      [{ model: MODEL, prompt: 'x', max_tokens: 1000 }, 400, 'max_tokens', /at most 256 \(--max-tokens\)/],
      [{ model: MODEL, prompt: 'x', n: 2 }, 400, 'n', /one completion per request/],
      [{ model: MODEL, prompt: 'x', stream: 'yes' }, 400, 'stream', /true or false/],
      ['not an object', 400, null, /./],
    ];
    for (const [body, status, param, message] of cases) {
      const e = refusal(() => parseCompletionRequest(body, MODEL, limits));
      expect({ status: e.status, param: e.param }).toEqual({ status, param });
      expect(e.message).toMatch(message);
      expect(e.body().error.type).toBe('invalid_request_error');
    }
  });
});

describe('promptTokenIds', () => {
  const check = { vocabSize: 100, maxPositions: 64, limits: { ...limits, maxPromptTokens: 32 } };
  const req = (prompt: string | number[], maxTokens = 4) =>
    parseCompletionRequest({ model: MODEL, prompt, max_tokens: maxTokens }, MODEL, limits);
  const encode = (text: string) => Array.from(text, (c) => c.charCodeAt(0) % 100);

  it('encodes text and passes ids through', () => {
    expect(promptTokenIds(req('ab'), encode, check)).toEqual([97, 98]);
    expect(promptTokenIds(req([5, 6]), encode, check)).toEqual([5, 6]);
  });

  it('refuses an empty prompt, ids outside the vocabulary, and prompts over the limits', () => {
    expect(refusal(() => promptTokenIds(req([]), encode, check)).message).toBe(
      'prompt is empty: give at least one token',
    );
    expect(refusal(() => promptTokenIds(req([1, 100]), encode, check)).message).toMatch(
      /token id 100.*100 ids \(0–99\)/,
    );
    const long = refusal(() => promptTokenIds(req('x'.repeat(33)), encode, check));
    expect([long.param, long.code, long.message]).toEqual([
      'prompt',
      'context_length_exceeded',
      'prompt has 33 tokens; this server takes at most 32 (--max-prompt-tokens)',
    ]);
    expect(refusal(() => promptTokenIds(req('x'.repeat(30), 40), encode, check)).param).toBe('max_tokens');
  });
});

describe('responses', () => {
  const completion: Completion = {
    id: 'cmpl-1',
    created: 1,
    model: MODEL,
    text: 'abc',
    tokens: [7, 8, 2],
    promptTokens: 5,
    maxTokens: 16,
    eosTokenIds: [2],
    runahead: {
      ranks: 2,
      mode: 'runahead',
      boundaries: [0, 3, 5],
      partition: 'even',
      route_reason: 'r',
      ttft_ms: 1,
      queue_ms: 0,
      token_ids: [7, 8, 2],
    },
  };

  it('says stop on an end-of-sequence token, length otherwise', () => {
    expect(finishReason([7, 2], 16, [2])).toBe('stop');
    expect(finishReason([7, 8], 2, [2])).toBe('length');
  });

  it('builds the body and the chunks in OpenAI’s shape, with the runahead fields', () => {
    expect(completionBody(completion)).toEqual({
      id: 'cmpl-1',
      object: 'text_completion',
      created: 1,
      model: MODEL,
      choices: [{ text: 'abc', index: 0, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
      runahead: completion.runahead,
    });
    expect(completionChunk(completion, 'a', null)).not.toHaveProperty('usage');
    expect(completionChunk(completion, 'a', null, { token: 7, ttftMs: 3 }).runahead).toEqual({
      first_token: 7,
      ttft_ms: 3,
    });
    expect(completionChunk(completion, 'bc', completion)).toMatchObject({
      choices: [{ text: 'bc', finish_reason: 'stop' }],
      usage: { completion_tokens: 3 },
      runahead: { ranks: 2 },
    });
  });
});
