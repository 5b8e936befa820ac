// Context partitions: N+1 increasing token offsets b_0 = 0 < b_1 < … < b_N = C; rank i owns
// [b_i, b_{i+1}). Pure functions, shared by the worker, the launcher and the operator.

export class PartitionError extends Error {
  override readonly name = 'PartitionError';
}

export type Boundaries = readonly number[];

/** Check that `b` is a valid partition of `contextLength` tokens among `ranks` ranks. */
export function validateBoundaries(b: Boundaries, contextLength: number, ranks: number): void {
  if (!Number.isInteger(ranks) || ranks < 1)
    throw new PartitionError(`ranks must be a positive integer, got ${ranks}`);
  if (!Number.isInteger(contextLength) || contextLength < ranks) {
    throw new PartitionError(
      `the context (${contextLength} tokens) must have at least one token per rank (${ranks} ranks)`,
    );
  }
  if (b.length !== ranks + 1) {
    throw new PartitionError(
      `a split for ${ranks} ranks needs ${ranks + 1} boundaries, got ${b.length} (${b.join(',')})`,
    );
  }
  if (b[0] !== 0) throw new PartitionError(`the first boundary must be 0, got ${b[0]}`);
  if (b[ranks] !== contextLength) {
    throw new PartitionError(
      `the last boundary must be the context length ${contextLength}, got ${b[ranks]}`,
    );
  }
  for (let i = 0; i < ranks; i++) {
    const lo = b[i]!;
    const hi = b[i + 1]!;
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi <= lo) {
      throw new PartitionError(`boundaries must be increasing integers: rank ${i} would own [${lo}, ${hi})`);
    }
  }
}

/**
 * Equal chunks; when C is not a multiple of N the first C mod N ranks get one token more (earlier
 * ranks attend over shorter prefixes, so extra work belongs there).
 */
export function evenBoundaries(contextLength: number, ranks: number): number[] {
  if (!Number.isInteger(ranks) || ranks < 1)
    throw new PartitionError(`ranks must be a positive integer, got ${ranks}`);
  if (!Number.isInteger(contextLength) || contextLength < ranks) {
    throw new PartitionError(
      `the context (${contextLength} tokens) must have at least one token per rank (${ranks} ranks)`,
    );
  }
  const base = Math.floor(contextLength / ranks);
  const extra = contextLength % ranks;
  const b = [0];
  for (let i = 0; i < ranks; i++) b.push(b[i]! + base + (i < extra ? 1 : 0));
  return b;
}

/** Parse `--split 0,5000,8200,10000`. */
export function parseSplit(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map(Number);
  const bad = parts.find((p, i) => p === '' || !Number.isInteger(values[i]) || values[i]! < 0);
  if (bad !== undefined)
    throw new PartitionError(`--split must be comma-separated non-negative integers, got "${text}"`);
  return values;
}

export function chunkLengths(b: Boundaries): number[] {
  return b.slice(1).map((end, i) => end - b[i]!);
}
