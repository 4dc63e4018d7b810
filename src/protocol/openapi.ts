/**
 * The OpenAPI 3.1 document of the HTTP API, made from the typebox schemas of
 * http.ts and the route table of openapi-routes.ts. Served at /openapi.json
 * and rendered into docs/openapi.json and docs/api.md by
 * scripts/openapi-docs.mjs.
 *
 * typebox 1.x schemas are JSON Schema already; its own keys (`~kind`,
 * `~optional`, ...) are not enumerable, so a JSON round trip leaves plain
 * JSON Schema. Named schemas become components, and every copy of one inside
 * another schema becomes a `$ref` to it.
 */
import type { TSchema } from 'typebox';
import { ERROR_CODES, type ErrorCode } from '../core/errors.js';
import * as H from './http.js';
import { GROUP_ID, OPERATIONS, type Operation, type Reply } from './openapi-routes.js';

export { OPERATIONS, type Operation } from './openapi-routes.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** The schemas the document names, under #/components/schemas. */
export const COMPONENTS: Readonly<Record<string, TSchema>> = {
  SubmitRequest: H.SubmitRequest,
  AddTasksRequest: H.AddTasksRequest,
  EmptyRequest: H.EmptyRequest,
  TaskOptionsInput: H.TaskOptionsInput,
  HandlerName: H.HandlerName,
  GroupView: H.GroupView,
  WaitReply: H.WaitReply,
  GroupList: H.GroupList,
  TaskView: H.TaskView,
  TaskPage: H.TaskPage,
  FinishedPage: H.FinishedPage,
  WorkerView: H.WorkerView,
  WorkerList: H.WorkerList,
  EventView: H.EventView,
  EventList: H.EventList,
  HealthReply: H.HealthReply,
  ErrorReply: H.ErrorReply,
  TaskOptions: H.TaskOptionsSchema,
  TaskError: H.TaskErrorSchema,
  TaskState: H.TaskStateSchema,
  GroupState: H.GroupStateSchema,
  GroupPolicy: H.GroupPolicySchema,
  WorkerHealth: H.WorkerHealthSchema,
};

/** Plain JSON: drops typebox's non-enumerable keys and anything that is not JSON. */
export function plain(schema: unknown): JsonObject {
  return JSON.parse(JSON.stringify(schema)) as JsonObject;
}

const REF = '#/components/schemas/';

/** Replaces every sub-schema equal to a named component by a `$ref` to it. */
function withRefs(node: JsonValue, byText: Map<string, string>, isRoot: boolean): JsonValue {
  if (node === null || typeof node !== 'object') return node;
  if (Array.isArray(node)) return node.map((x) => withRefs(x, byText, false));
  const name = isRoot ? undefined : byText.get(JSON.stringify(node));
  if (name !== undefined) return { $ref: REF + name };
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(node)) out[k] = withRefs(v, byText, false);
  return out;
}

/** Codes every operation of its kind can answer, besides its own. */
function commonErrors(op: Operation): ErrorCode[] {
  // The edge refuses a foreign Host or Origin before any route (docs/security.md).
  const codes: ErrorCode[] = ['forbidden_host', 'forbidden_origin'];
  if (op.query?.length) codes.push('validation_failed');
  if (op.body) {
    codes.push(
      'invalid_json',
      'validation_failed',
      'unsupported_media_type',
      'body_too_large',
      'too_deep',
      'request_timeout',
    );
  }
  if (op.auth === true) {
    codes.push('unauthorized', 'too_many_requests', 'not_leader', 'unavailable', 'shutting_down');
  }
  if (op.auth === 'dashboard') codes.push('unauthorized', 'too_many_requests');
  if (op.method === 'post') codes.push('storage_full');
  codes.push('internal');
  return codes;
}

/** Every error code the operation can answer, in the order of ERROR_CODES. */
export function errorCodes(op: Operation): ErrorCode[] {
  const all = new Set([...op.errors, ...commonErrors(op)]);
  return (Object.keys(ERROR_CODES) as ErrorCode[]).filter((c) => all.has(c));
}

function errorReplies(op: Operation): JsonObject {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of errorCodes(op)) {
    const status = ERROR_CODES[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: JsonObject = {};
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    const reply: JsonObject = {
      description: `Error: ${codes.map((c) => '`' + c + '`').join(', ')}.`,
      'x-error-codes': codes,
      content: { 'application/json': { schema: { $ref: REF + 'ErrorReply' } } },
    };
    if (codes.includes('not_leader')) {
      reply['headers'] = {
        'regroup-leader': {
          description: "With not_leader: the leader's URL, when known.",
          schema: { type: 'string' },
        },
      };
    }
    out[String(status)] = reply;
  }
  return out;
}

function replyObject(r: Reply): JsonObject {
  const type = r.contentType ?? 'application/json';
  const schema: JsonValue = r.schema ? plain(r.schema) : { type: 'string' };
  return { description: r.description, content: { [type]: { schema } } };
}

function parameters(op: Operation): JsonObject[] {
  const params: JsonObject[] = [];
  for (const m of op.path.matchAll(/\{(\w+)\}/g)) {
    params.push({
      name: m[1]!,
      in: 'path',
      required: true,
      description: 'The group id.',
      schema: plain(GROUP_ID),
    });
  }
  for (const q of op.query ?? []) {
    params.push({
      name: q.name,
      in: 'query',
      required: q.required ?? false,
      description: q.description,
      schema: plain(q.schema),
    });
  }
  return params;
}

function security(op: Operation): JsonValue {
  // `{}` is "no token": the dashboard's data needs one only with --dashboard token.
  if (op.auth === 'dashboard') return [{}, { clientToken: [] }];
  return op.auth ? [{ clientToken: [] }] : [];
}

function operationObject(op: Operation): JsonObject {
  const o: JsonObject = { operationId: op.operationId, summary: op.summary, tags: [op.tag] };
  if (op.description) o['description'] = op.description;
  o['security'] = security(op);
  const params = parameters(op);
  if (params.length > 0) o['parameters'] = params;
  if (op.body) {
    o['requestBody'] = {
      required: op.body.required,
      description: op.body.description,
      content: { 'application/json': { schema: plain(op.body.schema) } },
    };
  }
  const responses: JsonObject = {};
  for (const r of op.replies) responses[String(r.status)] = replyObject(r);
  o['responses'] = { ...responses, ...errorReplies(op) };
  return o;
}

const DESCRIPTION = [
  'The client API of a regroup coordinator: HTTP/JSON under `/v1`, plus the operator routes.',
  'Request bodies are `application/json`; objects accept no unknown fields.',
  'Every error is `{ "error": { "code", "message" } }` with the HTTP status of its code (docs/errors.md).',
  'When the coordinator has a client token, `/v1` routes need `Authorization: Bearer <token>`.',
  'A standby coordinator answers them `503 not_leader` with the leader in the `regroup-leader` header.',
  'Workers speak JSON over a WebSocket at `/v1/worker`, described in docs/protocol.md, not here.',
].join('\n');

/** Builds the document. Pure: the same routes and schemas give the same document. */
export function openApiDocument(operations: readonly Operation[] = OPERATIONS): JsonObject {
  const byText = new Map<string, string>();
  for (const [name, schema] of Object.entries(COMPONENTS)) {
    byText.set(JSON.stringify(plain(schema)), name);
  }
  const schemas: JsonObject = {};
  for (const [name, schema] of Object.entries(COMPONENTS)) {
    schemas[name] = withRefs(plain(schema), byText, true);
  }
  const paths: JsonObject = {};
  for (const op of operations) {
    const item = (paths[op.path] ??= {}) as JsonObject;
    item[op.method] = withRefs(operationObject(op), byText, false);
  }
  return {
    openapi: '3.1.0',
    info: { title: 'regroup HTTP API', version: '1', description: DESCRIPTION },
    tags: [
      { name: 'groups', description: 'Submit groups of tasks, add, seal, cancel, wait, read.' },
      { name: 'fleet', description: 'Workers and the event log.' },
      { name: 'operations', description: 'Probes, metrics, this description; no token needed.' },
      { name: 'dashboard', description: 'The live dashboard and the data its page reads.' },
    ],
    security: [{ clientToken: [] }],
    paths,
    components: {
      schemas,
      securitySchemes: {
        clientToken: {
          type: 'http',
          scheme: 'bearer',
          description: 'The client token the coordinator was started with (docs/security.md).',
        },
      },
    },
  };
}

let cached: JsonObject | null = null;

/** The document of this build's routes, made once (GET /openapi.json). */
export function openApi(): JsonObject {
  return (cached ??= openApiDocument());
}
