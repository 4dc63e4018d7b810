import { RegroupError } from '../core/errors.js';
import type { TaskError } from '../core/types.js';
import type { TaskView } from '../protocol/http.js';

/** How one task of a group ended. */
export interface Outcome<R = unknown> {
  /** Position of the task's input in the group. */
  index: number;
  taskId: number;
  state: 'succeeded' | 'failed' | 'canceled';
  /** The handler's result, when succeeded. */
  value?: R;
  /** Why it failed, when failed (and when the coordinator gave a reason for a cancel). */
  error?: TaskError;
  /** Attempts made (the attempt of the last run). */
  attempt: number;
}

/** Turns a final TaskView into an Outcome; a task that is not final is a protocol error. */
export function toOutcome<R>(t: TaskView): Outcome<R> {
  if (t.state !== 'succeeded' && t.state !== 'failed' && t.state !== 'canceled') {
    throw new RegroupError(
      'internal',
      `the coordinator reported task ${t.taskId} (index ${t.index}) as ${t.state} in a finished group`,
    );
  }
  const o: Outcome<R> = { index: t.index, taskId: t.taskId, state: t.state, attempt: t.attempt };
  if (t.state === 'succeeded') o.value = t.value as R;
  // A task that succeeded after retries keeps its last error in the store; the outcome does not show it.
  if (t.error !== undefined && t.state !== 'succeeded') o.error = t.error;
  return o;
}

/** Rejection of `group.wait()` when any task failed or was canceled. */
export class GroupFailedError<R = unknown> extends RegroupError {
  /** Every task's outcome, in input order. */
  readonly outcomes: Outcome<R>[];
  readonly groupId: string;

  constructor(groupId: string, outcomes: Outcome<R>[]) {
    super('group_failed', describeFailures(groupId, outcomes));
    this.name = 'GroupFailedError';
    this.groupId = groupId;
    this.outcomes = outcomes;
  }
}

const NAMED = 3;

/** "group g1: 2 of 5 tasks failed, 1 canceled; first: #1 error: boom, #3 timeout: ..." */
export function describeFailures(groupId: string, outcomes: readonly Outcome[]): string {
  const bad = outcomes.filter((o) => o.state !== 'succeeded');
  const failed = bad.filter((o) => o.state === 'failed').length;
  const canceled = bad.length - failed;
  const first = bad.slice(0, NAMED).map((o) => {
    const why = o.error ? `${o.error.kind}: ${o.error.message}` : o.state;
    return `#${o.index} ${why}`;
  });
  const more = bad.length > NAMED ? `, and ${bad.length - NAMED} more` : '';
  return (
    `group ${groupId}: ${failed} of ${outcomes.length} tasks failed, ${canceled} canceled; ` +
    `first: ${first.join('; ')}${more}`
  );
}
