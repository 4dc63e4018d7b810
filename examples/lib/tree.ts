/**
 * What the examples' handlers share: the run log the tests read, and a
 * sleep. Their context is regroup's own TaskContext (docs/handlers.md).
 */
import { appendFileSync } from 'node:fs';
import type { TaskContext } from '../../src/index.js';

/**
 * When REGROUP_RUN_LOG names a file, appends one JSON line to it: which
 * process ran which attempt of which task, and what happened (a test reads
 * it to find the phases and to count runs). Does nothing otherwise.
 */
export function logRun(ctx: TaskContext, fields: Record<string, unknown>): void {
  const file = process.env['REGROUP_RUN_LOG'];
  if (!file) return;
  const line = {
    at: Date.now(),
    pid: process.pid,
    taskId: ctx.taskId,
    groupId: ctx.groupId,
    index: ctx.index,
    attempt: ctx.attempt,
    ...fields,
  };
  appendFileSync(file, JSON.stringify(line) + '\n');
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));
