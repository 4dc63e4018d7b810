/**
 * The OpenAPI document (src/protocol/openapi.ts) against a real coordinator:
 * served at /openapi.json without a token; every route of the HTTP API
 * (http-api.ts) is in it; every operation in it is served and answers with a
 * documented status and a body its schema accepts (objects closed, so an
 * undocumented field fails too); the documented query parameter ranges are
 * the ones the server enforces.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import WebSocket from 'ws';
import { Compile } from 'typebox/compile';
import { Coordinator } from '../src/coordinator/index.js';
import { routeUrl } from '../src/coordinator/server.js';
import { WORKER_PATH } from '../src/protocol/constants.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from '../src/testing/procs.js';
import {
  OPERATIONS,
  openApiDocument,
  type JsonObject,
  type JsonValue,
  type Operation,
} from '../src/protocol/openapi.js';

const TOKEN = 'openapi-test-token';
const doc = openApiDocument();
const tmp = tempDir();
let coordinator: Coordinator;
let url: string;
let worker: WebSocket;
let groupId = '';

interface Answer {
  status: number;
  type: string;
  body: unknown;
}

/** One request; a reply that is not JSON is not read (an event stream never ends). */
async function call(
  method: string,
  path: string,
  opts: { token?: boolean; body?: string; type?: string } = {},
): Promise<Answer> {
  const ac = new AbortController();
  const headers: Record<string, string> = {};
  if (opts.token !== false) headers['authorization'] = `Bearer ${TOKEN}`;
  if (opts.type) headers['content-type'] = opts.type;
  const r = await fetch(url + path, {
    method,
    headers,
    signal: ac.signal,
    ...(opts.body === undefined ? {} : { body: opts.body }),
  });
  const type = (r.headers.get('content-type') ?? '').split(';')[0]!;
  if (type !== 'application/json') {
    ac.abort();
    return { status: r.status, type, body: null };
  }
  return { status: r.status, type, body: JSON.parse(await r.text()) };
}

/** The schema with every object closed: a reply field the document does not name fails. */
function closed(node: JsonValue): JsonValue {
  if (node === null || typeof node !== 'object') return node;
  if (Array.isArray(node)) return node.map(closed);
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(node)) out[k] = closed(v);
  if (out['properties'] !== undefined && out['additionalProperties'] === undefined)
    out['additionalProperties'] = false;
  return out;
}
const components = closed(doc['components'] as JsonObject);

function operationDoc(op: Operation): JsonObject {
  return ((doc['paths'] as JsonObject)[op.path] as JsonObject)[op.method] as JsonObject;
}

/** Asserts the answer's status is documented for op, and a JSON body matches its schema. */
function assertDocumented(op: Operation, a: Answer): void {
  const where = `${op.method.toUpperCase()} ${op.path}`;
  const r = (operationDoc(op)['responses'] as JsonObject)[String(a.status)] as
    JsonObject | undefined;
  assert.ok(r, `${where} answered ${a.status}, which the document does not list`);
  const content = r['content'] as JsonObject;
  assert.ok(content[a.type], `${where} ${a.status}: ${a.type} is documented`);
  if (a.type !== 'application/json') return;
  const schema = closed((content[a.type] as JsonObject)['schema'] as JsonObject) as JsonObject;
  const v = Compile({ ...schema, components });
  const first = v.Check(a.body) ? undefined : v.Errors(a.body)[0];
  assert.equal(first, undefined, `${where} ${a.status}: the reply matches the documented schema`);
}

function pathOf(op: Operation, id = groupId): string {
  return op.path.replace('{id}', id);
}

function queryOf(op: Operation, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  for (const p of op.query ?? []) if (p.required) q.set(p.name, groupId);
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

before(async () => {
  coordinator = new Coordinator({
    store: new SqliteStore({ path: join(tmp.dir, 'openapi.db') }),
    port: 0,
    clientToken: TOKEN,
  });
  url = await coordinator.start();
  // A raw worker: task 0 succeeds, task 1 fails for good, so the replies hold values and errors.
  worker = new WebSocket(url.replace('http', 'ws') + '/v1/worker');
  worker.on('message', (d: Buffer) => {
    for (const m of JSON.parse(d.toString('utf8')) as Record<string, unknown>[]) {
      if (m['t'] !== 'run') continue;
      const run = { taskId: m['taskId'], attempt: m['attempt'] };
      const input = m['input'] as number;
      worker.send(
        JSON.stringify([
          m['index'] === 0
            ? { t: 'result', ...run, value: { square: input * input } }
            : { t: 'fail', ...run, error: { kind: 'permanent', message: 'odd', name: 'E' } },
        ]),
      );
    }
  });
  await new Promise((r) => worker.once('open', r));
  const hello = { t: 'hello', protocol: 1, name: 'w-openapi', handlers: ['sq'], slots: 2 };
  worker.send(JSON.stringify([{ ...hello, labels: ['gpu'] }]));
  const body = JSON.stringify({ handler: 'sq', inputs: [3, 5], idempotencyKey: 'openapi' });
  const sub = await call('POST', '/v1/groups', { body, type: 'application/json' });
  assert.equal(sub.status, 201);
  groupId = (sub.body as { id: string }).id;
  const waited = await call('GET', `/v1/groups/${groupId}/wait?timeoutMs=20000`);
  assert.equal((waited.body as { done: boolean }).done, true, 'the group is done');
});

after(async () => {
  worker.terminate();
  await coordinator.stop();
  tmp.cleanup();
});

describe('OpenAPI document on a real coordinator', () => {
  it('is served at GET /openapi.json, without the token the /v1 routes need', async () => {
    const served = await call('GET', '/openapi.json', { token: false });
    assert.equal(served.status, 200);
    assert.deepEqual(served.body, doc);
    const refused = await call('GET', '/v1/groups', { token: false });
    assert.equal(refused.status, 401);
    assertDocumented(
      OPERATIONS.find((o) => o.operationId === 'listGroups')!,
      refused,
    );
  });

  it('serves exactly the routes of the table (src/protocol/openapi-routes.ts), by construction', () => {
    const served = coordinator.routes;
    assert.ok(served.length >= OPERATIONS.length, 'the routes are read');
    for (const op of OPERATIONS) {
      const method = op.method.toUpperCase();
      assert.ok(
        served.some(
          (r) =>
            r.operationId === op.operationId && r.method === method && r.url === routeUrl(op.path),
        ),
        `${method} ${op.path} is documented but not served`,
      );
    }
    for (const r of served) {
      if (r.kind === 'not_allowed') continue; // answers 405 on a documented path
      if (r.kind === 'worker') {
        assert.equal(r.url, WORKER_PATH, 'the worker socket (docs/protocol.md)');
        continue;
      }
      const op = OPERATIONS.find((d) => d.operationId === r.operationId);
      assert.ok(op, `${r.method} ${r.url} is served but not in the OpenAPI document`);
      assert.equal(routeUrl(op.path), r.url);
      const method = op.method.toUpperCase();
      assert.ok(
        r.method === method || (r.method === 'HEAD' && method === 'GET'),
        `${r.method} ${r.url}`,
      );
    }
  });

  it('serves every documented operation, with a documented status and reply', async () => {
    for (const op of OPERATIONS) {
      // A body of the wrong type is refused before anything changes: the route exists.
      const a =
        op.method === 'post'
          ? await call('POST', pathOf(op), { body: 'x', type: 'text/plain' })
          : await call('GET', pathOf(op) + queryOf(op));
      if (op.method === 'post') assert.equal(a.status, 415, `${op.path} is served`);
      else assert.ok(a.status < 300, `GET ${op.path} answered ${a.status}`);
      assertDocumented(op, a);
    }
  });

  it('documents the error replies: an unknown group', async () => {
    for (const op of OPERATIONS.filter((o) => o.path.includes('{id}') && o.method === 'get')) {
      const a = await call('GET', pathOf(op, 'g_nosuchgroup'));
      assert.equal(a.status, 404, `${op.path}`);
      assert.equal((a.body as { error: { code: string } }).error.code, 'group_not_found');
      assertDocumented(op, a);
    }
  });

  it('documents the query parameter ranges the server enforces', async () => {
    for (const op of OPERATIONS.filter((o) => o.method === 'get')) {
      for (const p of op.query ?? []) {
        const s = p.schema as {
          type?: string;
          enum?: string[];
          minimum?: number;
          maximum?: number;
        };
        const where = `GET ${op.path}?${p.name}`;
        const bad: string[] = [];
        const good: string[] = [];
        if (s.type === 'integer') {
          bad.push(String(s.minimum! - 1), String(s.maximum! + 1), '1.5');
          good.push(String(s.minimum), String(s.maximum));
        } else if (s.enum) {
          bad.push('not-a-' + p.name);
          good.push(...s.enum);
        } else continue;
        for (const v of bad) {
          const a = await call('GET', pathOf(op) + queryOf(op, { [p.name]: v }));
          assert.equal(a.status, 400, `${where}=${v} is refused`);
          assertDocumented(op, a);
        }
        for (const v of good) {
          const a = await call('GET', pathOf(op) + queryOf(op, { [p.name]: v }));
          assert.ok(a.status < 300, `${where}=${v} is accepted (got ${a.status})`);
          assertDocumented(op, a);
        }
      }
    }
  });
});
