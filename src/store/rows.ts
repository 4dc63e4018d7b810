/** Rows as both stores return them (the columns are named alike), and their mapping to store types. */
import type {
  GroupInfo,
  GroupPolicy,
  GroupState,
  TaskError,
  TaskOptions,
  TaskState,
} from '../core/types.js';
import type { EventView, TaskView } from '../protocol/http.js';
import type { Lease, WorkerRecord, WorkerRecordState } from './store.js';

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
    options: JSON.parse(r.options) as TaskOptions,
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
  const view: TaskView = {
    taskId: r.id,
    groupId: r.group_id,
    index: r.idx,
    state: r.state,
    attempt: r.attempt,
    workerId: r.worker_id,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    seq: r.finish_seq,
  };
  if (r.value !== null) view.value = JSON.parse(r.value);
  if (r.error !== null) view.error = JSON.parse(r.error) as TaskError;
  return view;
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
    options: JSON.parse(r.options) as TaskOptions,
  };
}
