/**
 * Ending a run that failed, the one way: decided in core (decideFailure),
 * queued as a fenced failure op, the fact recorded once it really happened.
 * The worker's `fail` report and the coordinator's own deadline both end here.
 */
import { fact } from '../core/events.js';
import { holdsLease } from '../core/fence.js';
import { decideFailure } from '../core/retry.js';
import type { TaskError } from '../core/types.js';
import type { RunOutcome } from '../store/store.js';
import type { Engine } from './engine.js';
import type { ResolvedCoordinatorOptions } from './options.js';

export function failRun(
  o: ResolvedCoordinatorOptions,
  engine: Engine,
  ref: { taskId: number; attempt: number; workerId: string },
  error: TaskError,
): Promise<RunOutcome> {
  const { taskId, attempt, workerId } = ref;
  const lease = engine.leases.get(taskId);
  let retryAt: number | null = null;
  if (holdsLease(lease, attempt, workerId)) {
    const d = decideFailure({
      errorsBefore: lease.errors,
      error,
      options: lease.options,
      now: o.now(),
      random: o.random,
    });
    if (d.kind === 'retry') retryAt = d.retryAt;
  }
  const op = { taskId, attempt, workerId, error, retryAt, nodeFailure: false };
  const scope = { workerId, groupId: lease?.groupId ?? null, taskId };
  const said = { attempt, kind: error.kind, error: error.message };
  // Recorded only when it really happened (a stale report changes nothing).
  return engine.request('failures', op, (outcome) => {
    if (outcome !== 'applied') return null;
    return retryAt === null
      ? fact('task.failed', said, scope)
      : fact('task.retried', { ...said, retryAt }, scope);
  });
}

/** Size of a value as the UTF-8 bytes of its JSON, the unit every limit is stated in. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? 'null', 'utf8');
}
