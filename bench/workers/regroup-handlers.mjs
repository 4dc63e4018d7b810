// Handlers of the regroup workers of the benchmark (`regroup worker --handlers <this file>`).
import { hold as holdTask } from './hold.mjs';

/** Does nothing. */
export async function noop() {
  return null;
}

/** Holds its slot until the benchmark releases it: input { key }. */
export async function hold(input, ctx) {
  return holdTask(input.key, ctx.attempt, ctx.signal);
}
