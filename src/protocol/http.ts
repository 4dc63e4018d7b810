/**
 * The client API: HTTP/JSON under /v1. Bodies are validated against these
 * schemas; replies are the view types below. Errors are
 * `{ error: { code, message } }` with the status of the code (core/errors.ts).
 *
 *   POST /v1/groups                    submit (SubmitRequest) -> 201 GroupView (200 when the idempotency key existed)
 *   POST /v1/groups/:id/tasks          add to an open group (AddTasksRequest) -> 200 GroupView
 *   POST /v1/groups/:id/seal           -> 200 GroupView
 *   POST /v1/groups/:id/cancel         -> 200 GroupView
 *   GET  /v1/groups                    ?limit&before -> { groups: GroupView[] }
 *   GET  /v1/groups/:id                -> GroupView
 *   GET  /v1/groups/:id/wait           ?timeoutMs (long poll, at most 60 s)&tasks=<n> -> GroupView (done or not);
 *                                      with tasks=n, a done group of at most n tasks also carries `tasks: TaskView[]` in input order
 *   GET  /v1/groups/:id/tasks          ?after=<index>&limit&state -> { tasks: TaskView[], next: number|null } in input order
 *   GET  /v1/groups/:id/finished       ?after=<seq>&limit&waitMs -> { tasks: TaskView[], cursor: number, done: boolean } in finishing order
 *   GET  /v1/workers                   -> { workers: WorkerView[] }
 *   GET  /v1/events                    ?after=<seq>&limit -> { events: EventView[] }
 *   GET  /healthz                      -> { ok: true }
 */
import Type, { type Static } from 'typebox';
import { checker } from './validate.js';
import type { GroupInfo, TaskError, TaskState, WorkerHealth } from '../core/types.js';

/** Handler names are the worker module's export names. */
export const HandlerName = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: '^[A-Za-z_$][A-Za-z0-9_$]*$',
});

export const TaskOptionsInput = Type.Object(
  {
    maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 * 1000 })),
    maxNodeFailures: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    priority: Type.Optional(Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 })),
    requires: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 }),
    ),
    backoffMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 * 1000 })),
    backoffMaxMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 24 * 3600 * 1000 })),
  },
  { additionalProperties: false },
);
export type TaskOptionsInput = Static<typeof TaskOptionsInput>;

export const SubmitRequest = Type.Object(
  {
    handler: HandlerName,
    inputs: Type.Array(Type.Unknown()),
    /** Keep the group open for `add` until `seal`. Default false (sealed at once). */
    open: Type.Optional(Type.Boolean()),
    /** A second submit with the same key returns the first group instead of making another. */
    idempotencyKey: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    policy: Type.Optional(Type.Union([Type.Literal('collectAll'), Type.Literal('failFast')])),
    options: Type.Optional(TaskOptionsInput),
  },
  { additionalProperties: false },
);
export type SubmitRequest = Static<typeof SubmitRequest>;
export const submitRequest = checker(SubmitRequest);

export const AddTasksRequest = Type.Object(
  {
    inputs: Type.Array(Type.Unknown()),
    /**
     * Index the first input takes in the group. When given, a repeated request
     * (same offset, already applied) is answered without adding twice.
     */
    offset: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type AddTasksRequest = Static<typeof AddTasksRequest>;
export const addTasksRequest = checker(AddTasksRequest);

export const EmptyRequest = Type.Object({}, { additionalProperties: false });
export const emptyRequest = checker(EmptyRequest);

export interface GroupView extends GroupInfo {
  /** Sealed (or canceled) and nothing outstanding. */
  done: boolean;
}

export interface TaskView {
  taskId: number;
  groupId: string;
  index: number;
  state: TaskState;
  attempt: number;
  value?: unknown;
  error?: TaskError;
  workerId?: string | null;
  startedAt?: number | null;
  finishedAt?: number | null;
  /** Finishing order, for `/finished`. */
  seq?: number | null;
}

export interface WorkerView {
  workerId: string;
  name: string;
  health: WorkerHealth;
  connected: boolean;
  slots: number;
  running: number;
  labels: string[];
  handlers: string[];
  lastSeenAgoMs: number;
  tasksDone: number;
}

export interface EventView {
  seq: number;
  at: number;
  type: string;
  workerId?: string | null;
  groupId?: string | null;
  taskId?: number | null;
  data?: unknown;
}

export const LONG_POLL_MAX_MS = 60_000;
