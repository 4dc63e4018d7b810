/**
 * The three reads that carry task results to clients (`GET .../tasks`,
 * `.../finished`, and the tasks `.../wait` inlines), as JSON text.
 *
 * Results are passed through, never parsed: the store hands each value over
 * as the JSON text it holds (TaskRecord.valueJson), and the reply is written
 * by splicing that text into the page. A page is bounded by bytes as well as
 * rows (TASK_PAGE_BYTES, docs/protocol.md "Paging by bytes"), so however
 * large a group's results add up to, one reply holds at most the budget, or
 * one result when a single result is larger: docs/operations.md states the
 * memory this costs the coordinator.
 *
 * The HTTP layer calls the functions here with parsed, validated query
 * parameters and sends the text they return as `application/json`.
 */
import type { TaskState } from '../core/types.js';
import type { GroupView } from '../protocol/http.js';
import { TASK_PAGE_BYTES } from '../protocol/limits.js';
import type { Store, TaskPage, TaskRecord } from '../store/store.js';

export interface TasksPageQuery {
  /** Tasks with an index greater than this; -1 from the first. */
  after: number;
  /** Most tasks in the page. */
  limit: number;
  state?: TaskState;
}

export interface FinishedQuery {
  /** Tasks with a finishing sequence greater than this; 0 from the first. */
  after: number;
  limit: number;
}

/**
 * The reply of `GET /v1/groups/:id/tasks`: `{ "tasks": [...], "next": n | null }`.
 * `next` is the last index of the page whenever more tasks may follow (the
 * page was cut by `limit` or by bytes), null once the page reached the end.
 * The caller has checked that the group exists.
 */
export async function tasksPageText(
  store: Store,
  groupId: string,
  q: TasksPageQuery,
  maxBytes: number = TASK_PAGE_BYTES,
): Promise<string> {
  const page = await store.taskPage(groupId, {
    after: q.after,
    limit: q.limit,
    maxBytes,
    ...(q.state === undefined ? {} : { state: q.state }),
  });
  return tasksReplyText(page, q.limit);
}

/**
 * The reply of `GET /v1/groups/:id/finished`: `{ "tasks", "cursor", "done" }`.
 * `group` must have been read BEFORE this call: `done` is reported only when
 * that group was done and the page reached the end, so every final task was
 * in this page or an earlier one. `empty` tells the long poll that nothing
 * finished after `after` yet (it waits, then calls again).
 */
export async function finishedPageText(
  store: Store,
  group: GroupView,
  q: FinishedQuery,
  maxBytes: number = TASK_PAGE_BYTES,
): Promise<{ text: string; empty: boolean }> {
  const page = await store.finishedPage(group.id, { afterSeq: q.after, limit: q.limit, maxBytes });
  return { text: finishedReplyText(page, group.done, q), empty: page.tasks.length === 0 };
}

/**
 * The reply of `GET /v1/groups/:id/wait?tasks=n`: the group view, with
 * `tasks` (every task, input order) when the group is done, has at most `n`
 * tasks, and their values and errors fit one page's byte budget. Otherwise the
 * view alone, and the client pages `/tasks`.
 */
export async function waitReplyText(
  store: Store,
  view: GroupView,
  n: number,
  maxBytes: number = TASK_PAGE_BYTES,
): Promise<string> {
  const viewText = JSON.stringify(view);
  if (!view.done || n <= 0 || view.total > n) return viewText;
  const page = await store.taskPage(view.id, { limit: Math.max(1, view.total), maxBytes });
  if (page.cut || page.tasks.length !== view.total) return viewText;
  return `${viewText.slice(0, -1)},"tasks":${tasksArrayText(page.tasks)}}`;
}

/** `{ "tasks": [...], "next": ... }` of a page read with `limit`. */
export function tasksReplyText(page: TaskPage, limit: number): string {
  const last = page.tasks.at(-1);
  const more = last !== undefined && (page.cut || page.tasks.length >= limit);
  return `{"tasks":${tasksArrayText(page.tasks)},"next":${more ? last.index : 'null'}}`;
}

/** `{ "tasks": [...], "cursor": ..., "done": ... }` of a finishing-order page. */
export function finishedReplyText(page: TaskPage, groupDone: boolean, q: FinishedQuery): string {
  const cursor = page.tasks.at(-1)?.seq ?? q.after;
  const done = groupDone && !page.cut && page.tasks.length < q.limit;
  return `{"tasks":${tasksArrayText(page.tasks)},"cursor":${cursor},"done":${done}}`;
}

function tasksArrayText(tasks: readonly TaskRecord[]): string {
  return `[${tasks.map(taskText).join(',')}]`;
}

/**
 * One task as TaskView JSON (src/protocol/http.ts): its fields, then `value`
 * and `error` spliced in as the raw JSON text the store holds. That text was
 * written by JSON.stringify when the result was committed, so it is JSON.
 */
export function taskText(t: TaskRecord): string {
  const { valueJson, errorJson, ...fields } = t;
  const head = JSON.stringify(fields);
  const value = valueJson === null ? '' : `,"value":${valueJson}`;
  const error = errorJson === null ? '' : `,"error":${errorJson}`;
  return `${head.slice(0, -1)}${value}${error}}`;
}
