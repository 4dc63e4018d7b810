import { isFinal, type TaskState } from './types.js';

export interface FencedTask {
  state: TaskState;
  attempt: number;
  workerId: string | null;
}

export type FenceOutcome = 'ok' | 'already_final' | 'stale';

/**
 * The fencing rule. A report about run `(taskId, attempt)` from `workerId`
 * applies only while the task is running that very attempt on that very
 * worker. A final task answers `already_final`; anything else is `stale`
 * (an older attempt, another worker's lease, a task that went back to pending).
 * The same check is the authorization boundary: a worker can only report on
 * a run it holds.
 */
export function checkFence(task: FencedTask, attempt: number, workerId: string): FenceOutcome {
  if (isFinal(task.state)) return 'already_final';
  if (task.state === 'running' && task.attempt === attempt && task.workerId === workerId)
    return 'ok';
  return 'stale';
}

/** A run: one attempt of one task on one worker (the fencing token and its holder). */
export interface RunRef {
  taskId: number;
  attempt: number;
  workerId: string;
}

/**
 * The in-memory form of the fence: `lease` (the coordinator's cache of a
 * running task's lease, undefined when it has none) is held by exactly this
 * attempt on exactly this worker. Every report, reserve pump and reconcile
 * asks this, never the fields by hand.
 */
export function holdsLease<L extends { attempt: number; workerId: string }>(
  lease: L | undefined,
  attempt: number,
  workerId: string,
): lease is L {
  return lease !== undefined && lease.attempt === attempt && lease.workerId === workerId;
}
