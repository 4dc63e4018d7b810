/**
 * The HTTP API as data: every route the coordinator serves, with its
 * parameters, body, replies and error codes. openapi.ts turns this table into
 * an OpenAPI 3.1 document; a test holds it to the coordinator's route table
 * (src/coordinator/http-api.ts), so a route added there and not here fails.
 */
import Type, { type TSchema } from 'typebox';
import type { ErrorCode } from '../core/errors.js';
import * as H from './http.js';
import { DASHBOARD_MAX_STREAMS, DASHBOARD_RESERVED_STREAMS } from './limits.js';

export interface QueryParam {
  name: string;
  schema: TSchema;
  description: string;
  /** Default false. */
  required?: boolean;
}

export interface Reply {
  status: number;
  description: string;
  /** JSON reply schema; absent with `contentType` for a non-JSON reply. */
  schema?: TSchema;
  /** Default application/json. */
  contentType?: string;
}

/** The client API's operations (coordinator/api.ts has a handler for each). */
export type ApiOperation =
  | 'submit'
  | 'listGroups'
  | 'getGroup'
  | 'addTasks'
  | 'sealGroup'
  | 'cancelGroup'
  | 'retryGroup'
  | 'waitGroup'
  | 'listTasks'
  | 'finishedTasks'
  | 'listWorkers'
  | 'listEvents';

/** Every operation the coordinator serves: the API's, the probes' and the dashboard's. */
export type OperationId =
  | ApiOperation
  | 'health'
  | 'openapi'
  | 'ready'
  | 'metrics'
  | 'dashboard'
  | 'dashboardStream'
  | 'dashboardSnapshot'
  | 'dashboardTasks';

export interface Operation {
  method: 'get' | 'post';
  /** OpenAPI path: `{id}` for the group id. */
  path: string;
  operationId: OperationId;
  summary: string;
  description?: string;
  tag: 'groups' | 'fleet' | 'operations' | 'dashboard';
  /**
   * true: needs the client token (`Authorization: Bearer <token>`) when the
   * coordinator has one; false: never; 'dashboard': only with `--dashboard token`.
   */
  auth: boolean | 'dashboard';
  query?: QueryParam[];
  body?: {
    schema: TSchema;
    required: boolean;
    description: string;
    /** How a validation error names the body ("invalid submit request: ..."). */
    what: string;
    /** Largest body this operation takes; default the coordinator's maxBodyBytes. */
    maxBytes?: number;
  };
  replies: Reply[];
  /** Codes this operation itself can answer; openapi.ts adds the ones common to its kind. */
  errors: ErrorCode[];
}

/** Group ids in paths, as the router matches them. */
export const GROUP_ID = Type.String({ pattern: '^[A-Za-z0-9_-]{1,100}$' });

function int(name: string, min: number, max: number, def: number | null, what: string): QueryParam {
  const schema = Type.Integer({
    minimum: min,
    maximum: max,
    ...(def === null ? {} : { default: def }),
  });
  return { name, schema, description: what };
}

const MAX = Number.MAX_SAFE_INTEGER;

/** POST /v1/groups/:id/retry. */
const RetryReply = Type.Object({
  retried: Type.Integer({ minimum: 0, description: 'How many failed tasks went back to pending.' }),
  group: H.GroupView,
});

/** GET /readyz (coordinator/probes.ts). */
const ReadyReply = Type.Object({
  ready: Type.Boolean(),
  reason: Type.Optional(
    Type.Enum(['not_running', 'standby', 'store_unavailable'], { description: 'When not ready.' }),
  ),
  message: Type.Optional(Type.String({ description: 'When not ready: why.' })),
  role: Type.Enum(['leader', 'standby']),
  epoch: Type.Union([Type.Integer(), Type.Null()]),
  leader: Type.Union([Type.String(), Type.Null()]),
});

/** A row of the dashboard's task table (coordinator/dashboard): no input, no value. */
const DashboardTaskPage = Type.Object({
  tasks: Type.Array(
    Type.Object({
      index: Type.Integer(),
      taskId: Type.Integer(),
      state: H.TaskStateSchema,
      attempt: Type.Integer(),
      workerId: Type.Union([Type.String(), Type.Null()]),
      worker: Type.Union([Type.String(), Type.Null()], { description: "The worker's name." }),
      startedAt: Type.Union([Type.Integer(), Type.Null()]),
      finishedAt: Type.Union([Type.Integer(), Type.Null()]),
      durationMs: Type.Union([Type.Integer(), Type.Null()]),
      error: Type.Union([H.TaskErrorSchema, Type.Null()]),
    }),
  ),
  next: Type.Union([Type.Integer(), Type.Null()]),
  tree: Type.Object(
    {
      parent: Type.Union([
        Type.Object({ groupId: Type.String(), taskId: Type.Integer() }),
        Type.Null(),
      ]),
      children: Type.Integer({ minimum: 0, description: 'How many children the group has.' }),
      rows: Type.Array(
        Type.Object({
          id: Type.String(),
          handler: Type.String(),
          state: H.GroupStateSchema,
          total: Type.Integer(),
          pending: Type.Integer(),
          running: Type.Integer(),
          succeeded: Type.Integer(),
          failed: Type.Integer(),
          canceled: Type.Integer(),
          children: Type.Integer(),
        }),
        { description: 'Its first children, oldest first (at most 20).' },
      ),
    },
    { description: 'Where the group sits in a tree: who spawned it, and its first children.' },
  ),
});

const DASHBOARD =
  'For the dashboard page; the shape follows the page and is not a stable API. With `--dashboard token` it needs the client token; with `--dashboard off` it is 404.';
const group = (description: string): Reply => ({ status: 200, description, schema: H.GroupView });
const NO_BODY = {
  schema: H.EmptyRequest,
  required: false,
  description: 'No body, or `{}` with `Content-Type: application/json`.',
  what: 'request body',
  maxBytes: 4096,
};

export const OPERATIONS: readonly Operation[] = [
  {
    method: 'get',
    path: '/healthz',
    operationId: 'health',
    tag: 'operations',
    summary: 'Liveness and role',
    description:
      'No token needed, on every coordinator, leader or standby. The status is always 200.',
    auth: false,
    replies: [
      { status: 200, description: 'Alive; the role of this coordinator.', schema: H.HealthReply },
    ],
    errors: [],
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    tag: 'operations',
    summary: 'This document',
    description: 'The OpenAPI 3.1 description of the HTTP API. No token needed.',
    auth: false,
    replies: [
      {
        status: 200,
        description: 'This OpenAPI document.',
        schema: Type.Object({}, { additionalProperties: true }),
      },
    ],
    errors: [],
  },
  {
    method: 'post',
    path: '/v1/groups',
    operationId: 'submit',
    tag: 'groups',
    summary: 'Submit a group',
    description:
      'Creates a group of tasks, one per input, with indexes 0..n-1. A second submit with the same `idempotencyKey` and handler returns the first group, unchanged (200).',
    auth: true,
    body: {
      schema: H.SubmitRequest,
      required: true,
      description: 'The group to create.',
      what: 'submit request',
    },
    replies: [
      { status: 201, description: 'The new group.', schema: H.GroupView },
      group('The existing group of this idempotency key.'),
    ],
    errors: ['too_many_tasks', 'input_too_large', 'idempotency_conflict'],
  },
  {
    method: 'get',
    path: '/v1/groups',
    operationId: 'listGroups',
    tag: 'groups',
    summary: "List groups, newest first; or a group's children",
    description:
      "Without `parent`: every group (or with `roots=true` only the groups clients submitted), newest first, paged by `after` (the reply's `next`: the id of the last group of the page; `before`, a createdAt, also pages but skips groups created in the same millisecond as the last of a page). With `parent`: that group's children (the groups its tasks spawned, any state), oldest first in the order they were created, paged by `after` (the reply's `next`); `before` and `roots` do not go with it. Each group carries `children`, how many groups its own tasks spawned.",
    auth: true,
    query: [
      int('limit', 1, 1000, 50, 'Most groups to return.'),
      int(
        'before',
        0,
        MAX,
        null,
        'Only groups with `createdAt < before`. Coarse: groups created in the same millisecond as the last of the previous page are skipped; page with `after` instead.',
      ),
      {
        name: 'roots',
        schema: Type.Enum(['true', 'false']),
        description: 'true: only the groups a client submitted (no parent). Default false.',
      },
      {
        name: 'parent',
        schema: GROUP_ID,
        description: "List this group's children instead, in creation order.",
      },
      {
        name: 'after',
        schema: GROUP_ID,
        description:
          'The groups listed after this one: the `next` of the previous page. Without `parent`: a group id (newest first, so older groups, and those of the same millisecond created before it); with `parent`: a child of that group (the children created after it). Not with `before`.',
      },
    ],
    replies: [
      {
        status: 200,
        description: "Groups, newest first; with `parent`, that group's children, oldest first.",
        schema: H.GroupList,
      },
    ],
    errors: ['group_not_found'],
  },
  {
    method: 'get',
    path: '/v1/groups/{id}',
    operationId: 'getGroup',
    tag: 'groups',
    summary: 'A group',
    auth: true,
    replies: [group('The group.')],
    errors: ['group_not_found'],
  },
  {
    method: 'post',
    path: '/v1/groups/{id}/tasks',
    operationId: 'addTasks',
    tag: 'groups',
    summary: 'Add tasks to an open group',
    description:
      'With `offset`, a request already applied is answered 200 without adding twice; an offset that does not follow the group is 409 offset_mismatch.',
    auth: true,
    body: {
      schema: H.AddTasksRequest,
      required: true,
      description: 'The inputs to append.',
      what: 'add request',
    },
    replies: [group('The group after the add.')],
    errors: [
      'group_not_found',
      'group_sealed',
      'group_canceled',
      'offset_mismatch',
      'too_many_tasks',
      'input_too_large',
    ],
  },
  {
    method: 'post',
    path: '/v1/groups/{id}/seal',
    operationId: 'sealGroup',
    tag: 'groups',
    summary: 'Seal a group: no more tasks',
    description: 'Sealing a group that is not open changes nothing and is not an error.',
    auth: true,
    body: NO_BODY,
    replies: [group('The group.')],
    errors: ['group_not_found'],
  },
  {
    method: 'post',
    path: '/v1/groups/{id}/cancel',
    operationId: 'cancelGroup',
    tag: 'groups',
    summary: 'Cancel a group and the groups under it',
    description:
      'Pending and running tasks become canceled (running ones are revoked), and so do those of every live group under it (spawned by its tasks, and so on down), in the same commit; `descendants` says how many such groups it canceled. A done or canceled group is answered as it is (its live descendants, if any, are canceled).',
    auth: true,
    body: NO_BODY,
    replies: [
      {
        status: 200,
        description: 'The group, and how many groups under it were canceled.',
        schema: H.CancelReply,
      },
    ],
    errors: ['group_not_found'],
  },
  {
    method: 'post',
    path: '/v1/groups/{id}/retry',
    operationId: 'retryGroup',
    tag: 'groups',
    summary: "Run a group's failed tasks again",
    description:
      'Every failed task goes back to pending with a fresh attempt budget; a done group is sealed again. A canceled group is refused.',
    auth: true,
    body: { ...NO_BODY, what: 'retry request' },
    replies: [
      { status: 200, description: 'How many were retried, and the group.', schema: RetryReply },
    ],
    errors: ['group_not_found', 'group_canceled'],
  },
  {
    method: 'get',
    path: '/v1/groups/{id}/wait',
    operationId: 'waitGroup',
    tag: 'groups',
    summary: 'Wait for a group to be done (long poll)',
    description:
      'Answers when the group is done or `timeoutMs` has passed, always 200: check `done`.',
    auth: true,
    query: [
      int('timeoutMs', 0, H.LONG_POLL_MAX_MS, 30_000, 'How long to wait, in milliseconds.'),
      int('tasks', 0, 10_000, 0, 'A done group of at most this many tasks comes with its tasks.'),
    ],
    replies: [{ status: 200, description: 'The group, done or not.', schema: H.WaitReply }],
    errors: ['group_not_found'],
  },
  {
    method: 'get',
    path: '/v1/groups/{id}/tasks',
    operationId: 'listTasks',
    tag: 'groups',
    summary: "A group's tasks, in input order",
    auth: true,
    query: [
      int(
        'after',
        -1,
        MAX,
        -1,
        'Only tasks with `index > after`: the `next` of the previous page.',
      ),
      int('limit', 1, 10_000, 1000, 'Most tasks to return.'),
      { name: 'state', schema: H.TaskStateSchema, description: 'Only tasks in this state.' },
    ],
    replies: [{ status: 200, description: 'A page of tasks.', schema: H.TaskPage }],
    errors: ['group_not_found'],
  },
  {
    method: 'get',
    path: '/v1/groups/{id}/finished',
    operationId: 'finishedTasks',
    tag: 'groups',
    summary: "A group's final tasks, in finishing order",
    description: 'When none is there yet and the group is not done, waits up to `waitMs` for one.',
    auth: true,
    query: [
      int('after', 0, MAX, 0, 'Only tasks with `seq > after`: the `cursor` of the previous page.'),
      int('limit', 1, 10_000, 1000, 'Most tasks to return.'),
      int(
        'waitMs',
        0,
        H.LONG_POLL_MAX_MS,
        0,
        'How long to wait for a final task, in milliseconds.',
      ),
    ],
    replies: [{ status: 200, description: 'A page of final tasks.', schema: H.FinishedPage }],
    errors: ['group_not_found'],
  },
  {
    method: 'get',
    path: '/v1/workers',
    operationId: 'listWorkers',
    tag: 'fleet',
    summary: 'The worker sessions the coordinator holds',
    auth: true,
    replies: [{ status: 200, description: 'Workers not dead and not left.', schema: H.WorkerList }],
    errors: [],
  },
  {
    method: 'get',
    path: '/v1/events',
    operationId: 'listEvents',
    tag: 'fleet',
    summary: 'The event log, oldest first',
    auth: true,
    query: [
      int('after', 0, MAX, 0, 'Only events with `seq > after`.'),
      int('limit', 1, 1000, 100, 'Most events to return.'),
    ],
    replies: [{ status: 200, description: 'Events.', schema: H.EventList }],
    errors: [],
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    tag: 'operations',
    summary: 'Readiness: leading, with a store that answers',
    description: '200 when this coordinator leads and its store answers a read; 503 otherwise.',
    auth: false,
    replies: [
      { status: 200, description: 'Ready.', schema: ReadyReply },
      {
        status: 503,
        description: 'Not ready (`ready: false`, with the reason).',
        schema: ReadyReply,
      },
    ],
    errors: [],
  },
  {
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    tag: 'operations',
    summary: 'Prometheus metrics',
    description: 'The Prometheus text format; the metrics are listed in docs/operations.md.',
    auth: false,
    replies: [{ status: 200, description: 'Metrics.', contentType: 'text/plain' }],
    errors: [],
  },
  {
    method: 'get',
    path: '/',
    operationId: 'dashboard',
    tag: 'dashboard',
    summary: 'The live dashboard (HTML)',
    description: 'Served without a token; with `--dashboard token` the page asks for it.',
    auth: false,
    replies: [{ status: 200, description: 'The page.', contentType: 'text/html' }],
    errors: ['not_found'],
  },
  {
    method: 'get',
    path: '/dashboard/stream',
    operationId: 'dashboardStream',
    tag: 'dashboard',
    summary: "The dashboard's live state (server-sent events)",
    description: `A \`snapshot\` event, then \`update\` events. At most ${DASHBOARD_MAX_STREAMS} streams at once per coordinator, the last ${DASHBOARD_RESERVED_STREAMS} only for requests with the client token (\`too_many_requests\` beyond). ${DASHBOARD}`,
    auth: 'dashboard',
    replies: [{ status: 200, description: 'The event stream.', contentType: 'text/event-stream' }],
    errors: ['not_found', 'too_many_requests'],
  },
  {
    method: 'get',
    path: '/dashboard/snapshot',
    operationId: 'dashboardSnapshot',
    tag: 'dashboard',
    summary: "The dashboard's state, once",
    description: DASHBOARD,
    auth: 'dashboard',
    replies: [
      {
        status: 200,
        description: 'The state the stream starts with.',
        schema: Type.Object({}, { additionalProperties: true }),
      },
    ],
    errors: ['not_found'],
  },
  {
    method: 'get',
    path: '/dashboard/tasks',
    operationId: 'dashboardTasks',
    tag: 'dashboard',
    summary: "A page of a group's task table",
    description: DASHBOARD,
    auth: 'dashboard',
    query: [
      { name: 'group', schema: GROUP_ID, description: 'The group id.', required: true },
      { name: 'state', schema: H.TaskStateSchema, description: 'Only tasks in this state.' },
      int(
        'after',
        -1,
        MAX,
        -1,
        'Only tasks with `index > after`: the `next` of the previous page.',
      ),
      int('limit', 1, 500, 50, 'Most tasks to return.'),
    ],
    replies: [{ status: 200, description: 'A page of task rows.', schema: DashboardTaskPage }],
    errors: ['group_not_found'],
  },
];
