/**
 * Handlers of `regroup demo`. `tile` does a visible amount of work (20 to
 * 200 ms) and returns a value the demo can check: the number of primes below
 * `limit`, computed the slow way, plus a checksum of the tile's index.
 */
import type { TaskContext } from '../worker/index.js';

export interface TileInput {
  index: number;
  ms: number;
  limit: number;
}

export interface TileResult {
  index: number;
  primes: number;
  checksum: number;
}

export function countPrimes(limit: number): number {
  let count = 0;
  for (let n = 2; n < limit; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) {
      if (n % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

export function checksum(index: number): number {
  return (index * 2654435761) % 4294967296;
}

export async function tile(input: TileInput, ctx: TaskContext): Promise<TileResult> {
  const primes = countPrimes(input.limit);
  // The rest of the tile's time is waiting (as real tasks wait on I/O); abort-aware.
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, input.ms);
    ctx.signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error('aborted'));
    });
  });
  return { index: input.index, primes, checksum: checksum(input.index) };
}
