/**
 * The handler context the examples use: regroup's TaskContext with
 * ctx.spawn (docs/handlers.md). Also the run log the tests read.
 */
import { appendFileSync } from 'node:fs';
import type { TaskContext } from '../../src/index.js';

/** The handle of a child group (ctx.spawn's answer). */
export interface ChildGroup {
  readonly id: string;
  wait(): Promise<unknown[]>;
}

export interface SpawnOptions {
  key?: string;
  policy?: 'collectAll' | 'failFast';
  keepChildren?: boolean;
}

export type TreeContext = TaskContext & {
  spawn(handler: string, inputs: readonly unknown[], options?: SpawnOptions): Promise<ChildGroup>;
};

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
