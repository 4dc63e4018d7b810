import { prng } from '../wordcount/corpus.js';

/** `n` integers in [0, 1,000,000), the same for the same seed. */
export function randomNumbers(seed: number, n: number): number[] {
  const random = prng(seed);
  return Array.from({ length: n }, () => Math.floor(random() * 1_000_000));
}
