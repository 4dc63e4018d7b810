import type { TaskError, TaskOptions } from './types.js';

/**
 * Delay before retry number `errors` (1 = first retry): exponential growth from
 * `backoffMs`, capped at `backoffMaxMs`, with "equal jitter": half of the
 * delay is fixed so retries really do back off, the other half is random so
 * that tasks failing together do not retry together.
 */
export function backoffDelayMs(
  errors: number,
  options: Pick<TaskOptions, 'backoffMs' | 'backoffMaxMs'>,
  random: () => number,
): number {
  if (options.backoffMs <= 0) return 0;
  const exp = Math.min(Math.max(errors - 1, 0), 40);
  const cap = Math.min(options.backoffMaxMs, options.backoffMs * 2 ** exp);
  const half = cap / 2;
  return Math.round(half + random() * half);
}

export type FailureDecision =
  { kind: 'retry'; retryAt: number } | { kind: 'fail'; error: TaskError };

/**
 * What happens to a run that ended with a handler error or a timeout.
 * `errorsBefore` counts the handler errors of earlier attempts. A permanent
 * error (or a missing handler) fails at once; otherwise the task is retried
 * until it has failed `maxAttempts` times.
 */
export function decideFailure(input: {
  errorsBefore: number;
  error: TaskError;
  options: Pick<TaskOptions, 'maxAttempts' | 'backoffMs' | 'backoffMaxMs'>;
  now: number;
  random: () => number;
}): FailureDecision {
  const { error, options } = input;
  if (error.kind === 'permanent' || error.kind === 'handler_not_found' || error.kind === 'poison') {
    return { kind: 'fail', error };
  }
  const errors = input.errorsBefore + 1;
  if (errors >= options.maxAttempts) return { kind: 'fail', error };
  return { kind: 'retry', retryAt: input.now + backoffDelayMs(errors, options, input.random) };
}

export type NodeFailureDecision = { kind: 'requeue' } | { kind: 'poison'; error: TaskError };

/**
 * A run's worker died. The task goes back to pending, unless it has now been
 * running on `maxNodeFailures` workers that died: then it is poison, failed so
 * that one bad input cannot take the whole fleet down.
 */
export function decideNodeFailure(input: {
  nodeFailuresBefore: number;
  options: Pick<TaskOptions, 'maxNodeFailures'>;
}): NodeFailureDecision {
  const failures = input.nodeFailuresBefore + 1;
  if (failures >= input.options.maxNodeFailures) {
    return {
      kind: 'poison',
      error: {
        kind: 'poison',
        message: `the task was running on ${failures} workers that died; failed as poison (maxNodeFailures=${input.options.maxNodeFailures})`,
      },
    };
  }
  return { kind: 'requeue' };
}
