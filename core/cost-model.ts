// The cost model of one rank and of the chain (PAPER.md, "Context-level load balancing").
//
// Per layer, for a rank whose chunk has c tokens and whose attention covers S keys:
//   project(c)   = p0 + p1·c                     Q/K/V projection (linear in the chunk)
//   attend(c, S) = a0 + a1·c + a2·c·S            attention (c queries × S keys) + o-proj + MLP
//   transfer(B)  = r0 + r1·B                     B bytes of K/V from one rank to the next
// The chain's dependency structure is what makes the split matter: rank i cannot attend at layer l
// before rank i−1 has sent it KV(l), and rank i−1 sends its own K/V only once it has both its
// projection and its predecessor's K/V. Rank i's keys are [0, e_i) in both schemes: TSP gathers all
// of [0, C) every layer but attends only the past and its own chunk (worker/chain/rank-run.ts feeds
// KvInbox's past; the later ranks' K/V are masked, never computed); one rank alone attends C×C.
//
// Each rank's outgoing link is a resource of its own, busy r1 ms per byte (r0 is latency: it delays
// the arrival, not the next layer). In KV-Runahead rank i's link carries all of [0, e_i) every layer:
// the predecessor's [0, s_i) cut-through as it arrives, then its own [s_i, e_i) once both its
// projection and the predecessor's last byte are there, in layer order behind what is still queued —
// so a middle rank's link moves far more than its own chunk, and a split that grows the early chunks
// loads every link. r1 is what a link achieves while its rank computes (the runs' own sends,
// core/calibration.ts), not an idle link's rate: the sender's cores are busy.
import type { ModeName } from './api/v1alpha1/runahead-job.ts';
import { z } from 'zod';

export const PROFILE_VERSION = 1;

export const CostCoefficientsSchema = z.object({
  /** [p0 ms, p1 ms/token] */
  project: z.tuple([z.number(), z.number()]),
  /** [a0 ms, a1 ms/token, a2 ms/(token·key)] */
  attend: z.tuple([z.number(), z.number(), z.number()]),
  /** [r0 ms, r1 ms/byte] */
  transfer: z.tuple([z.number(), z.number()]),
  /** Per run, outside the layers: release, embedding, head, first-token report. */
  fixedMs: z.number(),
});
export type CostCoefficients = z.infer<typeof CostCoefficientsSchema>;

/** A calibrated cost model for one model on one kind of hardware, stored as JSON. */
export const CostProfileSchema = z.object({
  version: z.literal(PROFILE_VERSION),
  model: z.string(),
  hardware: z.string(),
  ep: z.string(),
  dtype: z.string(),
  threadsPerRank: z.number().int().nonnegative(),
  numLayers: z.number().int().positive(),
  /** Bytes of K plus V for one token of one layer. */
  kvBytesPerToken: z.number().int().positive(),
  coefficients: CostCoefficientsSchema,
  fit: z
    .object({
      spans: z.number().int(),
      runs: z.number().int(),
      /** Root-mean-square relative error of the predicted TTFT over the calibration runs. */
      rmsRelativeError: z.number(),
      /** Where transfer[1] came from (core/calibration.ts TransferFit). */
      transfer: z
        .object({
          source: z.enum(['sends', 'link', 'ttft']),
          samples: z.number().int().nonnegative(),
          loadedGBps: z.number().positive().optional(),
          linkGBps: z.number().positive().optional(),
        })
        .optional(),
    })
    .optional(),
  createdAt: z.string().optional(),
  command: z.string().optional(),
});
export type CostProfile = z.infer<typeof CostProfileSchema>;

export class CostModelError extends Error {
  override readonly name = 'CostModelError';
}

/** The run's mode, as the cost model predicts it. */
export type Scheme = ModeName;

/** Refuse coefficients that would make predictions meaningless. */
export function checkCoefficients(c: CostCoefficients): void {
  const all: [string, number][] = [
    ...c.project.map((v, i): [string, number] => [`project[${i}]`, v]),
    ...c.attend.map((v, i): [string, number] => [`attend[${i}]`, v]),
    ...c.transfer.map((v, i): [string, number] => [`transfer[${i}]`, v]),
    ['fixedMs', c.fixedMs],
  ];
  for (const [name, v] of all) {
    if (!Number.isFinite(v))
      throw new CostModelError(`coefficient ${name} is ${v}; every coefficient must be a finite number`);
    if (v < 0) throw new CostModelError(`coefficient ${name} is ${v}; costs cannot be negative`);
  }
}

export function projectMs(c: CostCoefficients, tokens: number): number {
  return c.project[0] + c.project[1] * tokens;
}

export function attendMs(c: CostCoefficients, tokens: number, keys: number): number {
  return c.attend[0] + c.attend[1] * tokens + c.attend[2] * tokens * keys;
}

export function transferMs(c: CostCoefficients, bytes: number): number {
  return bytes > 0 ? c.transfer[0] + c.transfer[1] * bytes : 0;
}

export interface Prediction {
  readonly ttftMs: number;
  /** When each rank finished its last layer, ms after release. */
  readonly rankFinishMs: readonly number[];
  /** Time each rank spent waiting for K/V, summed over layers. */
  readonly rankWaitMs: readonly number[];
}

export interface ModelShape {
  readonly numLayers: number;
  readonly kvBytesPerToken: number;
}

/** Predicted TTFT of one split under one scheme. `boundaries` must be valid (not checked here). */
export function predict(
  c: CostCoefficients,
  shape: ModelShape,
  scheme: Scheme,
  boundaries: readonly number[],
): Prediction {
  const n = boundaries.length - 1;
  const context = boundaries[n]!;
  const chunk = (i: number) => boundaries[i + 1]! - boundaries[i]!;
  const bytes = (tokens: number) => tokens * shape.kvBytesPerToken;
  if (scheme === 'single' || n === 1) {
    const perLayer = projectMs(c, context) + attendMs(c, context, context);
    const t = shape.numLayers * perLayer;
    return { ttftMs: c.fixedMs + t, rankFinishMs: [t], rankWaitMs: [0] };
  }
  const free = new Array<number>(n).fill(0);
  const wait = new Array<number>(n).fill(0);
  const projEnd = new Array<number>(n).fill(0);
  /** When each rank's outgoing link has sent everything of the previous layers. */
  const linkFree = new Array<number>(n).fill(0);
  const busy = (b: number) => c.transfer[1] * b;
  const latency = c.transfer[0];
  for (let l = 0; l < shape.numLayers; l++) {
    for (let i = 0; i < n; i++) projEnd[i] = free[i]! + projectMs(c, chunk(i));
    if (scheme === 'runahead') {
      // first / last: when the first and the last byte of [0, b_i) of this layer reach rank i.
      let first = -Infinity;
      let last = -Infinity;
      for (let i = 0; i < n; i++) {
        const start = i === 0 ? projEnd[0]! : Math.max(projEnd[i]!, last);
        wait[i]! += start - projEnd[i]!;
        free[i] = start + attendMs(c, chunk(i), boundaries[i + 1]!);
        if (i === n - 1) break;
        const s = boundaries[i]!;
        const fwdStart = s > 0 ? Math.max(linkFree[i]!, first) : linkFree[i]!;
        const fwdEnd = s > 0 ? Math.max(fwdStart + busy(bytes(s)), last) : fwdStart;
        const ownStart = Math.max(fwdEnd, projEnd[i]!, last);
        linkFree[i] = ownStart + busy(bytes(chunk(i)));
        first = (s > 0 ? fwdStart : ownStart) + latency;
        last = linkFree[i]! + latency;
      }
    } else {
      // TSP: every rank needs every other rank's K/V(l) (all-gather); rank j sends its chunk n−1
      // times, after its projection and after its link has sent the previous layer's.
      const arrive = projEnd.map((p, j) => {
        linkFree[j] = Math.max(p, linkFree[j]!) + busy(bytes((n - 1) * chunk(j)));
        return chunk(j) > 0 ? linkFree[j] + latency : p;
      });
      for (let i = 0; i < n; i++) {
        let ready = projEnd[i]!;
        for (let j = 0; j < n; j++) if (j !== i) ready = Math.max(ready, arrive[j]!);
        wait[i]! += ready - projEnd[i]!;
        free[i] = ready + attendMs(c, chunk(i), boundaries[i + 1]!);
      }
    }
  }
  return { ttftMs: c.fixedMs + free[n - 1]!, rankFinishMs: free, rankWaitMs: wait };
}
