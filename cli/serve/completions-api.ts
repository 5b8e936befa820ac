// POST /v1/completions in OpenAI's completions shape: the request parsed and checked at the edge
// (zod, every refusal naming its field and the limit or fix), the prompt as token ids within the
// server's limits, and the response and stream chunks built from a run's result. Pure: no I/O.
//
// Decoding is greedy (the chain's last rank continues from the KV-cache it holds): sampling fields
// (temperature, top_p, …) are accepted and ignored, as a greedy OpenAI-compatible server does; what
// cannot be honoured at all (n > 1, several prompts in one request) is refused.
import { z } from 'zod';

export interface CompletionLimits {
  /** Largest request body, in bytes. */
  readonly maxBodyBytes: number;
  /** Longest prompt, in tokens. */
  readonly maxPromptTokens: number;
  /** Largest max_tokens a request may ask for. */
  readonly maxTokens: number;
}

export const COMPLETION_LIMIT_DEFAULTS: CompletionLimits = {
  maxBodyBytes: 1024 * 1024,
  maxPromptTokens: 8192,
  maxTokens: 256,
};

/** OpenAI's default max_tokens for /v1/completions. */
export const DEFAULT_MAX_TOKENS = 16;

/** A refusal as OpenAI's API answers it: status, and { error: { message, type, param, code } }. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly type: string;
  readonly param: string | null;
  readonly code: string | null;
  /** Seconds for a Retry-After header (429, 503). */
  readonly retryAfterSeconds: number | null;

  constructor(
    status: number,
    message: string,
    options: { type?: string; param?: string | null; code?: string | null; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.status = status;
    this.type = options.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds ?? null;
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const CompletionRequestSchema = z.looseObject({
  model: z.string({ error: 'model is required: the name GET /v1/models lists' }),
  prompt: z.union([z.string(), z.array(z.int().min(0))], {
    error: 'prompt must be a string or an array of token ids (one prompt per request)',
  }),
  max_tokens: z
    .int({ error: 'max_tokens must be an integer' })
    .min(1, 'max_tokens must be ≥ 1')
    .optional()
    .default(DEFAULT_MAX_TOKENS),
  stream: z.boolean({ error: 'stream must be true or false' }).optional().default(false),
  n: z.literal(1, { error: 'n must be 1: one completion per request' }).optional(),
  echo: z.literal(false, { error: 'echo is not supported: leave it out or false' }).optional(),
});

export interface CompletionRequest {
  readonly model: string;
  readonly prompt:
    { readonly kind: 'text'; readonly text: string } | { readonly kind: 'ids'; readonly ids: number[] };
  readonly maxTokens: number;
  readonly stream: boolean;
}

/** The request body (already JSON-parsed), checked; refusals name the field. */
export function parseCompletionRequest(
  body: unknown,
  servedModel: string,
  limits: CompletionLimits,
): CompletionRequest {
  const r = CompletionRequestSchema.safeParse(body);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const param = issue.path.length > 0 ? issue.path.join('.') : null;
    throw new ApiError(400, issue.message, { param });
  }
  const req = r.data;
  if (req.model !== servedModel)
    throw new ApiError(
      404,
      `model ${JSON.stringify(req.model)} is not served here; this server serves ${JSON.stringify(servedModel)}`,
      {
        param: 'model',
        code: 'model_not_found',
      },
    );
  if (req.max_tokens > limits.maxTokens)
    throw new ApiError(
      400,
      `max_tokens is ${req.max_tokens}; this server generates at most ${limits.maxTokens} (--max-tokens)`,
      {
        param: 'max_tokens',
      },
    );
  return {
    model: req.model,
    prompt:
      typeof req.prompt === 'string' ? { kind: 'text', text: req.prompt } : { kind: 'ids', ids: req.prompt },
    maxTokens: req.max_tokens,
    stream: req.stream,
  };
}

/** What the prompt's tokens are checked against. */
export interface PromptCheck {
  readonly vocabSize: number;
  readonly maxPositions: number;
  readonly limits: CompletionLimits;
}

/** The prompt as token ids (text through the model's tokenizer), within the server's limits. */
export function promptTokenIds(
  req: CompletionRequest,
  encode: (text: string) => number[],
  check: PromptCheck,
): number[] {
  const ids = req.prompt.kind === 'text' ? encode(req.prompt.text) : req.prompt.ids;
  if (ids.length === 0)
    throw new ApiError(400, 'prompt is empty: give at least one token', { param: 'prompt' });
  const bad = ids.find((id) => id >= check.vocabSize);
  if (bad !== undefined)
    throw new ApiError(
      400,
      `prompt has token id ${bad}; the model's vocabulary has ${check.vocabSize} ids (0–${check.vocabSize - 1})`,
      {
        param: 'prompt',
      },
    );
  if (ids.length > check.limits.maxPromptTokens)
    throw new ApiError(
      400,
      `prompt has ${ids.length} tokens; this server takes at most ${check.limits.maxPromptTokens} (--max-prompt-tokens)`,
      {
        param: 'prompt',
        code: 'context_length_exceeded',
      },
    );
  if (ids.length + req.maxTokens > check.maxPositions)
    throw new ApiError(
      400,
      `prompt (${ids.length} tokens) plus max_tokens (${req.maxTokens}) is over the model's ${check.maxPositions} positions`,
      { param: 'max_tokens', code: 'context_length_exceeded' },
    );
  return ids;
}

/** Where and how fast the prompt ran: the `runahead` field of every response. */
export interface RunaheadUsage {
  readonly ranks: number;
  readonly mode: 'single' | 'runahead';
  readonly boundaries: readonly number[];
  readonly partition: string;
  readonly route_reason: string;
  readonly ttft_ms: number;
  readonly queue_ms: number;
  /** The generated token ids, the first one included (text alone loses them). */
  readonly token_ids: readonly number[];
  readonly predicted_single_ms?: number;
  readonly predicted_split_ms?: number;
}

export interface Completion {
  readonly id: string;
  readonly created: number;
  readonly model: string;
  readonly text: string;
  readonly tokens: readonly number[];
  readonly promptTokens: number;
  readonly maxTokens: number;
  readonly eosTokenIds: readonly number[];
  readonly runahead: RunaheadUsage;
}

/** "stop" when the model ended on an end-of-sequence token, "length" when max_tokens ended it. */
export function finishReason(
  tokens: readonly number[],
  maxTokens: number,
  eosTokenIds: readonly number[],
): 'stop' | 'length' {
  const last = tokens.at(-1);
  return last !== undefined && eosTokenIds.includes(last) && tokens.length <= maxTokens ? 'stop' : 'length';
}

function usage(c: Completion) {
  return {
    prompt_tokens: c.promptTokens,
    completion_tokens: c.tokens.length,
    total_tokens: c.promptTokens + c.tokens.length,
  };
}

/** The whole answer of a request without stream. */
export function completionBody(c: Completion) {
  return {
    id: c.id,
    object: 'text_completion',
    created: c.created,
    model: c.model,
    choices: [
      {
        text: c.text,
        index: 0,
        logprobs: null,
        finish_reason: finishReason(c.tokens, c.maxTokens, c.eosTokenIds),
      },
    ],
    usage: usage(c),
    runahead: c.runahead,
  };
}

/**
 * One streamed chunk: `text` not sent before; the first carries the first token's id and TTFT in
 * `runahead`, one follows per later token that adds text, and the last carries finish_reason, usage
 * and the whole `runahead`.
 */
export function completionChunk(
  head: { readonly id: string; readonly created: number; readonly model: string },
  text: string,
  last: Completion | null,
  first?: { readonly token: number; readonly ttftMs: number },
) {
  return {
    id: head.id,
    object: 'text_completion',
    created: head.created,
    model: head.model,
    choices: [
      {
        text,
        index: 0,
        logprobs: null,
        finish_reason: last ? finishReason(last.tokens, last.maxTokens, last.eosTokenIds) : null,
      },
    ],
    ...(last ? { usage: usage(last), runahead: last.runahead } : {}),
    ...(first ? { runahead: { first_token: first.token, ttft_ms: first.ttftMs } } : {}),
  };
}
