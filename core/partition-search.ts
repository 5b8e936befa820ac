// The split that minimises predicted TTFT. The paper searches a coarse grid of boundaries and
// refines around the best point; here the same hierarchy runs as a pattern search that starts from
// an equal-work split instead of a grid, which keeps 16 ranks cheap:
//   1. equal work: chunks such that every rank's own compute is the same W (bisection on W);
//   2. pattern search on the full chain model (predict()): move each run of consecutive boundaries
//      (one boundary, or several together, which shifts work along the chain without changing the
//      chunks between them) by ±step while that lowers the prediction, halve the step when nothing
//      moves, stop below the granularity.
// Every candidate is a valid split (boundaries increasing, chunks ≥ granularity, 0 and C at the
// ends), so no invalid split can come out.
import {
  attendMs,
  checkCoefficients,
  predict,
  projectMs,
  type CostCoefficients,
  type ModelShape,
  type Scheme,
} from './cost-model.ts';
import { PartitionError, evenBoundaries, validateBoundaries } from './partition.ts';

export interface SearchOptions {
  readonly scheme?: Exclude<Scheme, 'single'>;
  /** Boundaries are multiples of this many tokens (GPU kernels like aligned chunks); default 1. */
  readonly granularity?: number;
}

export interface SearchResult {
  readonly boundaries: number[];
  readonly predictedMs: number;
  readonly evenPredictedMs: number;
  readonly evaluations: number;
  readonly searchMs: number;
}

function checkInputs(contextLength: number, ranks: number, granularity: number): void {
  if (!Number.isInteger(ranks) || ranks < 1)
    throw new PartitionError(`ranks must be a positive integer, got ${ranks}`);
  if (!Number.isInteger(contextLength) || contextLength < 1) {
    throw new PartitionError(`the context length must be a positive integer, got ${contextLength}`);
  }
  if (!Number.isInteger(granularity) || granularity < 1)
    throw new PartitionError(`granularity must be a positive integer, got ${granularity}`);
  if (contextLength < ranks * granularity) {
    throw new PartitionError(
      `the context (${contextLength} tokens) is too short for ${ranks} ranks of at least ${granularity} token(s) each`,
    );
  }
}

/** Chunks of equal own compute (projection + attention over the prefix), earliest ranks longest. */
export function equalWorkBoundaries(
  c: CostCoefficients,
  contextLength: number,
  ranks: number,
  granularity = 1,
): number[] {
  const work = (start: number, tokens: number) => projectMs(c, tokens) + attendMs(c, tokens, start + tokens);
  /** Greedy: each rank but the last takes the longest chunk (in steps of g) whose work is ≤ w. */
  const cut = (w: number): number[] => {
    const b = [0];
    for (let i = 0; i < ranks - 1; i++) {
      const start = b[i]!;
      let lo = 1;
      let hi = Math.floor((contextLength - (ranks - 1 - i) * granularity - start) / granularity);
      while (lo < hi) {
        const mid = Math.ceil((lo + hi) / 2);
        if (work(start, mid * granularity) <= w) lo = mid;
        else hi = mid - 1;
      }
      b.push(start + lo * granularity);
    }
    b.push(contextLength);
    return b;
  };
  let lo = 0;
  let hi = work(0, contextLength);
  for (let iter = 0; iter < 60; iter++) {
    const mid = (lo + hi) / 2;
    const b = cut(mid);
    const last = work(b[ranks - 1]!, contextLength - b[ranks - 1]!);
    if (last > mid) lo = mid;
    else hi = mid;
  }
  return cut(hi);
}

export function searchBalanced(
  c: CostCoefficients,
  shape: ModelShape,
  contextLength: number,
  ranks: number,
  options: SearchOptions = {},
): SearchResult {
  const started = performance.now();
  const scheme = options.scheme ?? 'runahead';
  const g = options.granularity ?? 1;
  checkCoefficients(c);
  checkInputs(contextLength, ranks, g);
  let evaluations = 0;
  const cost = (b: readonly number[]) => {
    evaluations++;
    return predict(c, shape, scheme, b).ttftMs;
  };
  const even = evenBoundaries(contextLength, ranks);
  const evenPredictedMs = cost(even);
  if (ranks === 1)
    return {
      boundaries: even,
      predictedMs: evenPredictedMs,
      evenPredictedMs,
      evaluations,
      searchMs: performance.now() - started,
    };

  let best = equalWorkBoundaries(c, contextLength, ranks, g);
  let bestCost = cost(best);
  const alignedEven = even.map((x, i) => (i === ranks ? x : Math.round(x / g) * g));
  if (alignedEven.every((x, i) => i === 0 || x - alignedEven[i - 1]! >= g)) {
    const e = cost(alignedEven);
    if (e < bestCost) [best, bestCost] = [alignedEven, e];
  }
  let step = Math.max(g, Math.round(contextLength / (4 * ranks) / g) * g);
  while (step >= g) {
    let moved = false;
    for (let i = 1; i < ranks; i++) {
      for (let j = i; j < ranks; j++) {
        for (const dir of [1, -1]) {
          // Boundaries i..j together; keep going in one direction while it pays.
          for (;;) {
            const d = dir * step;
            if (best[i]! + d - best[i - 1]! < g || best[j + 1]! - (best[j]! + d) < g) break;
            const candidate = best.map((x, k) => (k >= i && k <= j ? x + d : x));
            const candidateCost = cost(candidate);
            if (candidateCost >= bestCost) break;
            best = candidate;
            bestCost = candidateCost;
            moved = true;
          }
        }
      }
    }
    if (!moved) step = step === g ? 0 : Math.max(g, Math.floor(step / 2 / g) * g);
  }
  validateBoundaries(best, contextLength, ranks);
  return {
    boundaries: best,
    predictedMs: bestCost,
    evenPredictedMs,
    evaluations,
    searchMs: performance.now() - started,
  };
}
