/** Rows as both stores return them (the columns are named alike), and their mapping to store types. */
import {
  DEFAULT_TASK_OPTIONS,
  type GroupInfo,
  type GroupPolicy,
  type GroupState,
  type TaskError,
  type TaskOptions,
  type TaskState,
} from '../core/types.js';
import type { EventView, TaskView } from '../protocol/http.js';
import type { Lease, TaskRecord, TaskSummary, WorkerRecord, WorkerRecordState } from './store.js';

export interface GroupRow {
  id: string;
  handler: string;
  state: GroupState;
  policy: GroupPolicy;
  idempotency_key: string | null;
  options: string;
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  canceled: number;
  created_at: number;
  sealed_at: number | null;
  finished_at: number | null;
  /** Migration 3: the spawning task's group and id (PostgreSQL returns the bigint id as text). */
  parent_group_id: string | null;
  parent_task_id: number | string | null;
}

export interface TaskRow {
  id: number;
  group_id: string;
  idx: number;
  state: TaskState;
  attempt: number;
  worker_id: string | null;
  errors: number;
  node_failures: number;
  run_at: number;
  priority: number;
  input: string;
  checkpoint: string | null;
  value: string | null;
  error: string | null;
  started_at: number | null;
  finished_at: number | null;
  finish_seq: number | null;
}

export interface WorkerRow {
  worker_id: string;
  name: string;
  token: string;
  state: WorkerRecordState;
  slots: number;
  labels: string;
  handlers: string;
  connected_at: number;
  seen_at: number;
}

export interface EventRow {
  seq: number;
  at: number;
  type: string;
  worker_id: string | null;
  group_id: string | null;
  task_id: number | null;
  data: string | null;
}

/** JSON text for a value; `undefined` (a handler that returned nothing) is stored as null. */
export function toJson(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

export function groupFromRow(r: GroupRow): GroupInfo {
  return {
    id: r.id,
    handler: r.handler,
    state: r.state,
    policy: r.policy,
    idempotencyKey: r.idempotency_key,
    createdAt: r.created_at,
    sealedAt: r.sealed_at,
    finishedAt: r.finished_at,
    options: optionsFromText(r.options),
    parent:
      r.parent_group_id === null || r.parent_task_id === null
        ? null
        : { groupId: r.parent_group_id, taskId: Number(r.parent_task_id) },
    total: r.total,
    pending: r.pending,
    running: r.running,
    succeeded: r.succeeded,
    failed: r.failed,
    canceled: r.canceled,
  };
}

/** The columns taskViewFromRow reads. */
export type TaskViewRow = Pick<
  TaskRow,
  | 'id'
  | 'group_id'
  | 'idx'
  | 'state'
  | 'attempt'
  | 'worker_id'
  | 'value'
  | 'error'
  | 'started_at'
  | 'finished_at'
  | 'finish_seq'
>;

export const TASK_VIEW_COLUMNS =
  'id, group_id, idx, state, attempt, worker_id, value, error, started_at, finished_at, finish_seq';

export function taskViewFromRow(r: TaskViewRow): TaskView {
  return taskViewFromRecord(taskRecordFromRow(r));
}

/** A task row as the paged reads return it: value and error stay JSON text. */
export function taskRecordFromRow(r: TaskViewRow): TaskRecord {
  return {
    taskId: r.id,
    groupId: r.group_id,
    index: r.idx,
    state: r.state,
    attempt: r.attempt,
    workerId: r.worker_id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    seq: r.finish_seq,
    valueJson: r.value,
    errorJson: r.error,
  };
}

/** A record with its value and error parsed: what listTasks returns, and what tests compare. */
export function taskViewFromRecord(r: TaskRecord): TaskView {
  const { valueJson, errorJson, ...rest } = r;
  const view: TaskView = rest;
  if (valueJson !== null) view.value = JSON.parse(valueJson);
  if (errorJson !== null) view.error = JSON.parse(errorJson) as TaskError;
  return view;
}

/** The columns of a task summary: every TaskView column but value. */
export const TASK_SUMMARY_COLUMNS =
  'id, group_id, idx, state, attempt, worker_id, error, started_at, finished_at, finish_seq';

export function taskSummaryFromRow(r: Omit<TaskViewRow, 'value'>): TaskSummary {
  // A row without its value is a task view without one.
  return taskViewFromRecord(taskRecordFromRow({ ...r, value: null }));
}

/**
 * The rows of a page, in order, that fit `maxBytes` given each row's bytes of
 * value and error text: the longest prefix within the budget, and at least
 * one row when there is one. `cut` when a row was left out for the budget
 * (so one more follows). Stops reading `rows` at the first row that does not
 * fit. SQLite and the model cut their pages with it; PostgreSQL does the same
 * arithmetic in SQL (postgres-sql.ts).
 */
export function withinBudget<T>(
  rows: Iterable<T>,
  bytesOf: (row: T) => number,
  maxBytes: number,
): { rows: T[]; cut: boolean } {
  const out: T[] = [];
  let total = 0;
  for (const row of rows) {
    total += bytesOf(row);
    if (out.length > 0 && total > maxBytes) return { rows: out, cut: true };
    out.push(row);
  }
  return { rows: out, cut: false };
}

export function workerFromRow(r: WorkerRow): WorkerRecord {
  return {
    workerId: r.worker_id,
    name: r.name,
    token: r.token,
    state: r.state,
    slots: r.slots,
    labels: JSON.parse(r.labels) as string[],
    handlers: JSON.parse(r.handlers) as string[],
    connectedAt: r.connected_at,
    seenAt: r.seen_at,
  };
}

export function eventFromRow(r: EventRow): EventView {
  const view: EventView = {
    seq: r.seq,
    at: r.at,
    type: r.type,
    workerId: r.worker_id,
    groupId: r.group_id,
    taskId: r.task_id,
  };
  if (r.data !== null) view.data = JSON.parse(r.data);
  return view;
}

/** A running lease as both stores read it (tasks joined with their group's handler and options). */
export interface LeaseRow {
  id: number;
  group_id: string;
  idx: number;
  attempt: number;
  worker_id: string;
  started_at: number;
  errors: number;
  node_failures: number;
  handler: string;
  options: string;
}

export function leaseFromRow(r: LeaseRow): Lease {
  return {
    taskId: r.id,
    groupId: r.group_id,
    index: r.idx,
    handler: r.handler,
    attempt: r.attempt,
    workerId: r.worker_id,
    startedAt: r.started_at,
    errors: r.errors,
    nodeFailures: r.node_failures,
    options: optionsFromText(r.options),
  };
}

/**
 * A group's options as stored: the JSON of the resolved options when the
 * group was created. An option added since (heartbeatTimeoutMs,
 * scheduleTimeoutMs) takes its default for the groups created before it.
 * Every read of stored options goes through here, in both stores.
 */
export function optionsFromText(text: string): TaskOptions {
  return { ...DEFAULT_TASK_OPTIONS, ...(JSON.parse(text) as Partial<TaskOptions>) };
}
