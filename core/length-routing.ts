// Length-aware routing of a served prompt: one rank, or the whole chain with the split the partition
// choice gives. Context-parallel prefill is slower than one device below some length (serving
// engines report 15–21% for prompts under 4–8k tokens: the chain's fixed and transfer costs are paid
// whatever the length, the saving grows with it), so a server splits a prompt only where the cost
// model says the chain is faster:
//   one rank:  predict(single, [0, C])          (core/cost-model.ts)
//   chain:     predict(runahead, resolvePartition(choice, C))
// and takes the lower. Without a calibrated profile an explicit threshold stands in for it. Pure.
import { predict, type CostProfile } from './cost-model.ts';
import { resolvePartition, type PartitionChoice, type PartitionKind } from './partition-choice.ts';
import type { PartitionTable } from './partition-table.ts';

export type RoutePolicy =
  /** Every prompt on one rank (rank 0): the baseline. */
  | { readonly kind: 'single' }
  /** Every prompt long enough for one token per rank across the chain. */
  | { readonly kind: 'split' }
  /** One rank below `singleBelow` tokens, the chain from there. */
  | { readonly kind: 'threshold'; readonly singleBelow: number }
  /** Whichever the calibrated cost model predicts to be faster for the prompt's length. */
  | { readonly kind: 'cost-model'; readonly profile: CostProfile };

export interface RouteDecision {
  /** Ranks the prompt runs on: 1, or all of them. */
  readonly ranks: number;
  readonly mode: 'single' | 'runahead';
  /** ranks + 1 token offsets, 0 to the prompt's length. */
  readonly boundaries: number[];
  /** How the boundaries were chosen: "single" for one rank. */
  readonly partition: PartitionKind | 'single';
  /** Why, in words (the response and the log say it). */
  readonly reason: string;
  /** The cost model's predictions, when it decided. */
  readonly predictedSingleMs?: number;
  readonly predictedSplitMs?: number;
}

export interface RouteContext {
  /** Ranks of the group. */
  readonly ranks: number;
  /** How a split prompt is partitioned (even, or balanced from `table`). */
  readonly partition: PartitionChoice;
  readonly table: PartitionTable | null;
}

function single(contextLength: number, reason: string, extra: Partial<RouteDecision> = {}): RouteDecision {
  return { ranks: 1, mode: 'single', boundaries: [0, contextLength], partition: 'single', reason, ...extra };
}

/** Where a prompt of `contextLength` tokens runs under `policy`. */
export function routePrompt(policy: RoutePolicy, contextLength: number, ctx: RouteContext): RouteDecision {
  if (ctx.ranks === 1) return single(contextLength, 'the group has one rank');
  if (policy.kind === 'single') return single(contextLength, 'route single: every prompt on one rank');
  if (contextLength < ctx.ranks)
    return single(contextLength, `${contextLength} token(s) cannot be split over ${ctx.ranks} ranks`);
  const split = resolvePartition(ctx.partition, contextLength, ctx.ranks, ctx.table);
  const chain = (reason: string, extra: Partial<RouteDecision> = {}): RouteDecision => ({
    ranks: ctx.ranks,
    mode: 'runahead',
    boundaries: split.boundaries,
    partition: split.partition,
    reason,
    ...extra,
  });
  switch (policy.kind) {
    case 'split':
      return chain('route split: every prompt over the chain');
    case 'threshold':
      return contextLength < policy.singleBelow
        ? single(contextLength, `${contextLength} tokens < --single-below ${policy.singleBelow}`)
        : chain(`${contextLength} tokens ≥ --single-below ${policy.singleBelow}`);
    case 'cost-model': {
      const { coefficients, numLayers, kvBytesPerToken } = policy.profile;
      const shape = { numLayers, kvBytesPerToken };
      const predictedSingleMs = predict(coefficients, shape, 'single', [0, contextLength]).ttftMs;
      const predictedSplitMs = predict(coefficients, shape, 'runahead', split.boundaries).ttftMs;
      const figures = { predictedSingleMs, predictedSplitMs };
      const words = `predicted ${predictedSingleMs.toFixed(0)} ms on one rank, ${predictedSplitMs.toFixed(0)} ms on ${ctx.ranks}`;
      return predictedSingleMs <= predictedSplitMs
        ? single(contextLength, words, figures)
        : chain(words, figures);
    }
  }
}

/**
 * The shortest length from which `policy` splits, searched over [1, maxTokens] (null: it never does
 * there). For the log and the README, not for routing: the cost model's curves cross once in
 * practice, but routing asks the model for every prompt and does not rely on it.
 */
export function splitFrom(policy: RoutePolicy, ctx: RouteContext, maxTokens: number): number | null {
  for (let c = ctx.ranks; c <= maxTokens; c = c < 64 ? c + 1 : Math.ceil(c * 1.02)) {
    if (routePrompt(policy, c, ctx).ranks > 1) {
      // Refine downwards to the token (the scan above steps 2% at a time).
      let lo = c;
      while (lo > ctx.ranks && routePrompt(policy, lo - 1, ctx).ranks > 1) lo--;
      return lo;
    }
  }
  return null;
}
