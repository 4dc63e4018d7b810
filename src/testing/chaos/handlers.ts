/**
 * The tasks of a fault run. Each result is a function of the input alone, so
 * the checker knows the right answer; some tasks fail on their first attempt
 * (deterministically) so retries are exercised too.
 */
import type { TaskContext } from '../../worker/index.js';

export interface ChaosInput {
  /** Group number and index: the task's identity in the run. */
  g: number;
  i: number;
  /** How long the task takes. */
  ms: number;
}

/** FNV-1a over the identity: cheap, deterministic, spread out. */
export function expectedValue(input: ChaosInput): string {
  let h = 0x811c9dc5;
  for (const c of `${input.g}:${input.i}`) {
    h ^= c.charCodeAt(0);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** One task in 20 throws on its first attempt. */
export function failsFirst(input: ChaosInput): boolean {
  return parseInt(expectedValue(input).slice(0, 4), 16) % 20 === 0;
}

/**
 * Sleeps `input.ms`, then answers. It never calls ctx.heartbeat nor saves a
 * checkpoint: the checker's ran_past_limit counts a heartbeatTimeoutMs from
 * the run's start, as for a run that shows no progress.
 */
export async function chaosTask(input: ChaosInput, ctx: TaskContext): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, input.ms);
    ctx.signal.addEventListener('abort', () => {
      clearTimeout(t);
      reject(ctx.signal.reason instanceof Error ? ctx.signal.reason : new Error('aborted'));
    });
  });
  if (ctx.attempt === 1 && failsFirst(input))
    throw new Error(`planned failure of ${input.g}:${input.i}`);
  return expectedValue(input);
}

export function expected(handler: string, input: unknown): unknown {
  if (handler !== 'chaosTask') return undefined;
  return expectedValue(input as ChaosInput);
}
