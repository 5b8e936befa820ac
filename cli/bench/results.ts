// The JSON a benchmark writes (--json-out): where and how it ran, and every measured point with
// the run whose TTFT was the median. `runahead calibrate` reads it back.
import { z } from 'zod';
import { MODES } from '../../core/api/v1alpha1/runahead-job.ts';

const SpanSchema = z.object({
  rank: z.number(),
  kind: z.string(),
  layer: z.number(),
  start: z.number(),
  end: z.number(),
});

export const MeasuredPointSchema = z.object({
  context: z.number().int(),
  mode: z.string(),
  ranks: z.number().int(),
  ttft: z.object({ median: z.number(), min: z.number(), max: z.number(), runs: z.number() }),
  median: z.object({
    mode: z.enum(MODES),
    boundaries: z.array(z.number().int()).readonly(),
    ttftMs: z.number(),
    timeline: z.array(SpanSchema).readonly(),
  }),
});

export const BenchResultsSchema = z.object({
  version: z.literal(1),
  command: z.string(),
  machine: z.string(),
  model: z.string(),
  dtype: z.enum(['float32', 'float16']),
  ep: z.string(),
  threadsPerRank: z.number().int(),
  points: z.array(MeasuredPointSchema),
});
export type BenchResults = z.infer<typeof BenchResultsSchema>;
