/**
 * The HTTP API as data: every route the coordinator serves, with its
 * parameters, body, replies and error codes. openapi.ts turns this table into
 * an OpenAPI 3.1 document; a test holds it to the coordinator's route table
 * (src/coordinator/http-api.ts), so a route added there and not here fails.
 */
import Type, { type TSchema } from 'typebox';
import type { ErrorCode } from '../core/errors.js';
import * as H from './http.js';

export interface QueryParam {
  name: string;
  schema: TSchema;
  description: string;
}

export interface Reply {
  status: number;
  description: string;
  /** JSON reply schema; absent with `contentType` for a non-JSON reply. */
  schema?: TSchema;
  /** Default application/json. */
  contentType?: string;
}

export interface Operation {
  method: 'get' | 'post';
  /** OpenAPI path: `{id}` for the group id. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: 'groups' | 'fleet' | 'operations';
  /** Needs the client token (`Authorization: Bearer <token>`) when the coordinator has one. */
  auth: boolean;
  query?: QueryParam[];
  body?: { schema: TSchema; required: boolean; description: string };
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
const group = (description: string): Reply => ({ status: 200, description, schema: H.GroupView });
const NO_BODY = {
  schema: H.EmptyRequest,
  required: false,
  description: 'No body, or `{}` with `Content-Type: application/json`.',
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
    replies: [{ status: 200, description: 'The OpenAPI document.', schema: Type.Object({}) }],
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
    body: { schema: H.SubmitRequest, required: true, description: 'The group to create.' },
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
    summary: 'List groups, newest first',
    auth: true,
    query: [
      int('limit', 1, 1000, 50, 'Most groups to return.'),
      int(
        'before',
        0,
        MAX,
        null,
        'Only groups with `createdAt < before`: the `createdAt` of the last group of the previous page.',
      ),
    ],
    replies: [{ status: 200, description: 'Groups, newest first.', schema: H.GroupList }],
    errors: [],
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
    body: { schema: H.AddTasksRequest, required: true, description: 'The inputs to append.' },
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
    summary: 'Cancel a group',
    description:
      'Pending and running tasks become canceled (running ones are revoked). A done or canceled group is answered as it is.',
    auth: true,
    body: NO_BODY,
    replies: [group('The group.')],
    errors: ['group_not_found'],
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
];
