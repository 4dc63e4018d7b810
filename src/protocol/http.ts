/**
 * The client API: HTTP/JSON under /v1. Bodies are validated against these
 * schemas; replies are the view types below. Errors are
 * `{ error: { code, message } }` with the status of the code (core/errors.ts).
 *
 *   POST /v1/groups                    submit (SubmitRequest) -> 201 GroupView (200 when the idempotency key existed)
 *   POST /v1/groups/:id/tasks          add to an open group (AddTasksRequest) -> 200 GroupView
 *   POST /v1/groups/:id/seal           -> 200 GroupView
 *   POST /v1/groups/:id/cancel         -> 200 CancelReply: the GroupView and `descendants`, the groups under it this cancel ended
 *   POST /v1/groups/:id/retry          {} (RetryRequest) -> 200 RetryReply: the group's failed tasks run again
 *   GET  /v1/groups                    ?limit&after&roots -> { groups: GroupView[], next: string|null } newest first (with `children`);
 *                                      ?parent=<id>&after=<child id>&limit -> { groups, next: string|null }: its children in creation order
 *   GET  /v1/groups/:id                -> GroupView (with `children`)
 *   GET  /v1/groups/:id/wait           ?timeoutMs (long poll, at most 60 s)&tasks=<n> -> GroupView (done or not);
 *                                      with tasks=n, a done group of at most n tasks whose results fit one page also carries `tasks: TaskView[]` in input order
 *   GET  /v1/groups/:id/tasks          ?after=<index>&limit&state -> { tasks: TaskView[], next: number|null } in input order
 *   GET  /v1/groups/:id/finished       ?after=<seq>&limit&waitMs -> { tasks: TaskView[], cursor: number, done: boolean } in finishing order
 *   (pages of tasks are bounded by bytes of results too, TASK_PAGE_BYTES: docs/protocol.md "Paging by bytes")
 *   GET  /v1/workers                   -> { workers: WorkerView[] }
 *   GET  /v1/events                    ?after=<seq>&limit -> { events: EventView[] }
 *   GET  /healthz                      -> { ok: true }
 *
 * openapi.ts makes the OpenAPI document (GET /openapi.json, docs/api.md) from
 * these schemas and the route table of openapi-routes.ts.
 */
import Type, { type Static } from 'typebox';
import { checker } from './validate.js';
import { ERROR_CODES, type ErrorCode, type WireError } from '../core/errors.js';
import { WAITING_CODES, type GroupWaiting } from '../core/waiting.js';
import { EVENT_TYPES } from '../core/events.js';
import {
  FAILURE_KINDS,
  GROUP_POLICIES,
  GROUP_STATES,
  TASK_STATES,
  WORKER_HEALTHS,
  type GroupInfo,
  type TaskError,
  type TaskOptions,
  type TaskState,
  type WorkerHealth,
} from '../core/types.js';

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
    heartbeatTimeoutMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 * 1000 })),
    maxNodeFailures: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    priority: Type.Optional(Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 })),
    requires: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 100 }),
    ),
    backoffMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 3600 * 1000 })),
    backoffMaxMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 24 * 3600 * 1000 })),
    scheduleTimeoutMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 7 * 24 * 3600 * 1000 })),
    maxConcurrency: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    concurrencyKey: Type.Optional(Type.String({ maxLength: 200, pattern: '^[A-Za-z0-9_.:/@-]*$' })),
    concurrencyKeyLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
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
    policy: Type.Optional(Type.Enum([...GROUP_POLICIES])),
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

/**
 * Retry runs a group's `failed` tasks again (the only kind retried for now;
 * the body is an object so that a filter can be added later). `{}` or no body.
 */
export const RetryRequest = Type.Object({}, { additionalProperties: false });
export type RetryRequest = Static<typeof RetryRequest>;
export const retryRequest = checker(RetryRequest);

/** The answer to a retry: how many failed tasks went back to pending, and the group after. */
export interface RetryReply {
  retried: number;
  group: GroupView;
}

export const EmptyRequest = Type.Object({}, { additionalProperties: false });
export const emptyRequest = checker(EmptyRequest);

// Replies. Schemas too, so that the OpenAPI document (openapi.ts) is made
// from the same source as the types; the coordinator does not validate them.
// Each mirrors a type of core/types.ts, and the checks at the end of this
// file fail the build when the two part.

export const TaskStateSchema = Type.Enum([...TASK_STATES]);
export const GroupStateSchema = Type.Enum([...GROUP_STATES], {
  description:
    'open: takes more tasks until sealed; sealed: no more tasks; done: sealed and every task final; canceled: canceled by a client.',
});
export const GroupPolicySchema = Type.Enum([...GROUP_POLICIES], {
  description: 'collectAll waits for every task; failFast cancels the rest at the first failure.',
});
export const WorkerHealthSchema = Type.Enum([...WORKER_HEALTHS]);

export const TaskErrorSchema = Type.Object(
  {
    kind: Type.Enum([...FAILURE_KINDS]),
    message: Type.String(),
    /** The error's class name on the worker, when there was one. */
    name: Type.Optional(Type.String()),
    stack: Type.Optional(
      Type.String({
        description:
          "Where the handler threw: the error's stack frames on the worker (without its first `Name: message` line), then a `caused by:` section per cause; at most 50 lines and 8 KiB, clipped with a marker line.",
      }),
    ),
  },
  { description: 'Why an attempt failed (the last error reported).' },
);

/** The resolved task options: every field set. */
export const TaskOptionsSchema = Type.Object(
  {
    maxAttempts: Type.Integer(),
    timeoutMs: Type.Integer(),
    heartbeatTimeoutMs: Type.Integer({
      description:
        'The handler shows progress (ctx.heartbeat() or a checkpoint) at least this often, or the coordinator ends the run as a timeout; 0 = not watched.',
    }),
    maxNodeFailures: Type.Integer(),
    priority: Type.Integer(),
    requires: Type.Array(Type.String()),
    backoffMs: Type.Integer(),
    backoffMaxMs: Type.Integer(),
    scheduleTimeoutMs: Type.Integer({
      description:
        'A group that no connected worker can run for this long has its pending tasks failed (kind unschedulable); 0 = wait forever.',
    }),
    maxConcurrency: Type.Integer({
      description:
        "Most of the group's tasks running at once; the others wait, pending (never failing for it). 0 = no cap.",
    }),
    concurrencyKey: Type.String({
      description:
        "A limit shared by every group naming this key: at most the key's limit of their tasks running at once, together. '' = none.",
    }),
    concurrencyKeyLimit: Type.Integer({
      description:
        "The key's limit this group proposes: used when the coordinator sets none for the key and this is the oldest group with pending work giving one. 0 = none.",
    }),
  },
  { description: 'The resolved task options of a group: every field set.' },
);

const NullableInt = Type.Union([Type.Integer(), Type.Null()]);
const NullableString = Type.Union([Type.String(), Type.Null()]);

/** Why a group's pending tasks wait (core/waiting.ts). */
export const GroupWaitingSchema = Type.Object(
  {
    code: Type.Enum([...WAITING_CODES], {
      description:
        'no_worker: no worker is connected; no_handler: no connected worker offers the handler; no_label: workers offer the handler, none has every required label.',
    }),
    message: Type.String({
      description: 'What is missing, and what the connected workers offer.',
    }),
    since: Type.Integer({
      description:
        'Since when (ms epoch) no connected worker could run the group; kept in memory: after a coordinator restart or a new leader, counted from the start of its term.',
    }),
  },
  {
    description:
      'Present while the group has pending tasks that no connected worker (alive or suspect, not draining) can run.',
  },
);

export const GroupView = Type.Object({
  id: Type.String(),
  handler: Type.String(),
  state: GroupStateSchema,
  policy: GroupPolicySchema,
  idempotencyKey: NullableString,
  /** Milliseconds since the epoch, as every time here. */
  createdAt: Type.Integer(),
  sealedAt: NullableInt,
  finishedAt: NullableInt,
  options: TaskOptionsSchema,
  parent: Type.Optional(
    Type.Union([Type.Object({ groupId: Type.String(), taskId: Type.Integer() }), Type.Null()], {
      description:
        'The task that spawned this group (ctx.spawn) and its group; null for a group a client submitted (always present in replies since schema 3).',
    }),
  ),
  total: Type.Integer({ minimum: 0 }),
  pending: Type.Integer({ minimum: 0 }),
  running: Type.Integer({ minimum: 0 }),
  succeeded: Type.Integer({ minimum: 0 }),
  failed: Type.Integer({ minimum: 0 }),
  canceled: Type.Integer({ minimum: 0 }),
  /** Sealed (or canceled) and nothing outstanding. */
  done: Type.Boolean({
    description: 'Sealed (or canceled) and nothing outstanding.',
  }),
  waiting: Type.Optional(GroupWaitingSchema),
  children: Type.Optional(
    Type.Integer({
      minimum: 0,
      description:
        "How many groups this group's tasks spawned (its children, any state; not theirs). In the replies of GET /v1/groups and GET /v1/groups/{id} only.",
    }),
  ),
});
export type GroupView = Static<typeof GroupView>;

/** POST /v1/groups/:id/cancel: the group after, and how many groups under it the cancel ended. */
export const CancelReply = Type.Object({
  ...GroupView.properties,
  descendants: Type.Integer({
    minimum: 0,
    description:
      'How many live groups under this one (spawned by its tasks, and so on down) this cancel canceled with it; 0 when none was live.',
  }),
});
export type CancelReply = Static<typeof CancelReply>;

export const TaskView = Type.Object({
  taskId: Type.Integer(),
  groupId: Type.String(),
  index: Type.Integer({ minimum: 0 }),
  state: TaskStateSchema,
  attempt: Type.Integer({ minimum: 0 }),
  value: Type.Optional(Type.Unknown({ description: 'The committed value (succeeded tasks).' })),
  error: Type.Optional(TaskErrorSchema),
  workerId: Type.Optional(NullableString),
  startedAt: Type.Optional(NullableInt),
  finishedAt: Type.Optional(NullableInt),
  /** Finishing order, for `/finished`. */
  seq: Type.Optional(
    Type.Union([Type.Integer(), Type.Null()], {
      description: 'Finishing sequence, set when the task became final.',
    }),
  ),
});
export type TaskView = Static<typeof TaskView>;

export const WorkerView = Type.Object({
  workerId: Type.String(),
  name: Type.String(),
  health: WorkerHealthSchema,
  connected: Type.Boolean(),
  slots: Type.Integer({ minimum: 0 }),
  running: Type.Integer({ minimum: 0 }),
  waiting: Type.Integer({
    minimum: 0,
    description:
      'Runs whose handler waits on a group it spawned, with its slot given back (not counted in running).',
  }),
  labels: Type.Array(Type.String()),
  handlers: Type.Array(Type.String()),
  lastSeenAgoMs: Type.Integer({ minimum: 0 }),
  tasksDone: Type.Integer({ minimum: 0 }),
});
export type WorkerView = Static<typeof WorkerView>;

export const EventView = Type.Object({
  seq: Type.Integer(),
  at: Type.Integer(),
  // A string, not an enum: a reader keeps working when a later version adds a type.
  type: Type.String({
    description: `One of ${EVENT_TYPES.join(', ')}. Each one's data: docs/design.md, "The event log".`,
  }),
  workerId: Type.Optional(NullableString),
  groupId: Type.Optional(NullableString),
  taskId: Type.Optional(NullableInt),
  data: Type.Optional(Type.Unknown()),
});
export type EventView = Static<typeof EventView>;

/**
 * GET /v1/groups/:id/wait: the group; with `tasks=n`, a done group of at most
 * n tasks whose results fit one page (TASK_PAGE_BYTES) carries them.
 */
export const WaitReply = Type.Object({
  ...GroupView.properties,
  tasks: Type.Optional(
    Type.Array(TaskView, { description: 'Every task in input order (with tasks=n only).' }),
  ),
});
export type WaitReply = Static<typeof WaitReply>;

export const GroupList = Type.Object({
  groups: Type.Array(GroupView),
  next: Type.Optional(
    Type.Union([Type.String(), Type.Null()], {
      description:
        'The `after` of the next page (the id of the last group of this one), null at the end.',
    }),
  ),
});
export type GroupList = Static<typeof GroupList>;

/**
 * A page of `/tasks`. Pages are bounded by bytes of results as well as by
 * `limit`: `next` is set whenever more may follow, so a short page may have
 * one; only `next: null` ends the listing. (The OpenAPI description of `next`
 * below still says "not full": to be updated with the generated docs.)
 */
export const TaskPage = Type.Object({
  tasks: Type.Array(TaskView),
  next: Type.Union([Type.Integer(), Type.Null()], {
    description:
      'The index to pass as `after` for the next page, set whenever more tasks may follow (the page was cut by `limit` or by its byte budget); null at the end.',
  }),
});
export type TaskPage = Static<typeof TaskPage>;

/** A page of `/finished`; a short page is not the end, only `done` is. */
export const FinishedPage = Type.Object({
  tasks: Type.Array(TaskView),
  cursor: Type.Integer({ description: 'The seq to pass as `after` next time.' }),
  done: Type.Boolean({ description: 'The group is done and this page reached its end.' }),
});
export type FinishedPage = Static<typeof FinishedPage>;

export const WorkerList = Type.Object({ workers: Type.Array(WorkerView) });
export type WorkerList = Static<typeof WorkerList>;

export const EventList = Type.Object({ events: Type.Array(EventView) });
export type EventList = Static<typeof EventList>;

/** GET /healthz, answered by the coordinator itself (coordinator.ts), leader or standby. */
export const HealthReply = Type.Object({
  ok: Type.Literal(true),
  role: Type.Enum(['leader', 'standby']),
  epoch: Type.Union([Type.Integer(), Type.Null()], {
    description: "The leader's epoch; null when unknown, and always with SQLite.",
  }),
  leader: Type.Union([Type.String(), Type.Null()], {
    description: "The leader's advertised URL; null when no live leader is known.",
  }),
});
export type HealthReply = Static<typeof HealthReply>;

/** Every error reply: `{ error: { code, message } }`, with the HTTP status of the code. */
export const ErrorReply = Type.Object({
  error: Type.Object({
    code: Type.Enum(Object.keys(ERROR_CODES) as ErrorCode[], {
      description: 'A stable code from docs/errors.md; the status follows from it.',
    }),
    message: Type.String({ description: 'What went wrong and what to do about it.' }),
  }),
});
export type ErrorReply = Static<typeof ErrorReply>;

export const LONG_POLL_MAX_MS = 60_000;

// The replies' types must stay the core types they mirror: these fail the build when they part.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Holds<T extends true> = T;
export type _RepliesMirrorCore = [
  Holds<Same<GroupView, GroupInfo & { done: boolean; waiting?: GroupWaiting; children?: number }>>,
  Holds<Same<Static<typeof TaskStateSchema>, TaskState>>,
  Holds<Same<Static<typeof WorkerHealthSchema>, WorkerHealth>>,
  Holds<Same<Static<typeof TaskErrorSchema>, TaskError>>,
  Holds<Same<Static<typeof TaskOptionsSchema>, TaskOptions>>,
  Holds<Same<ErrorReply['error'], WireError & { code: ErrorCode }>>,
];
