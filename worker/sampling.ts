/** Index of the largest value (the first one on ties, as torch.argmax). */
export function argmax(values: ArrayLike<number>): number {
  if (values.length === 0) throw new Error('argmax of an empty array');
  let best = 0;
  let bestValue = values[0] as number;
  for (let i = 1; i < values.length; i++) {
    const v = values[i] as number;
    if (v > bestValue) {
      best = i;
      bestValue = v;
    }
  }
  return best;
}
