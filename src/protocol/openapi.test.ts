/**
 * The OpenAPI document is well formed: the fields OpenAPI 3.1 requires, every
 * `$ref` resolves, every path parameter is declared, no typebox-only key
 * leaks, every component is a schema a validator compiles.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Compile } from 'typebox/compile';
import { ERROR_CODES } from '../core/errors.js';
import {
  COMPONENTS,
  OPERATIONS,
  errorCodes,
  openApi,
  openApiDocument,
  type JsonObject,
} from './openapi.js';

const doc = openApiDocument();
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

function obj(x: unknown, where: string): JsonObject {
  assert.ok(x !== null && typeof x === 'object' && !Array.isArray(x), `${where} is an object`);
  return x as JsonObject;
}

/** Every [path, value] pair of the document, depth first. */
function* walk(node: unknown, at = '#'): Generator<[string, unknown]> {
  yield [at, node];
  if (node === null || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node)) yield* walk(v, `${at}/${k}`);
}

function resolve(ref: string): unknown {
  assert.ok(ref.startsWith('#/'), `${ref} is a local reference`);
  let node: unknown = doc;
  for (const part of ref.slice(2).split('/')) {
    const key = part.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function operations(): [string, string, JsonObject][] {
  const out: [string, string, JsonObject][] = [];
  for (const [path, item] of Object.entries(obj(doc['paths'], 'paths'))) {
    for (const [method, op] of Object.entries(obj(item, path))) {
      assert.ok(METHODS.includes(method), `${path}: ${method} is an HTTP method`);
      out.push([path, method, obj(op, `${method} ${path}`)]);
    }
  }
  return out;
}

describe('OpenAPI document', () => {
  it('has the fields OpenAPI 3.1 requires', () => {
    assert.match(doc['openapi'] as string, /^3\.1\.\d+$/);
    const info = obj(doc['info'], 'info');
    assert.equal(typeof info['title'], 'string');
    assert.equal(typeof info['version'], 'string');
    const ids = new Set<string>();
    const ops = operations();
    assert.equal(ops.length, OPERATIONS.length);
    for (const [path, method, op] of ops) {
      const where = `${method.toUpperCase()} ${path}`;
      assert.ok(path.startsWith('/'), `${where}: path starts with /`);
      const id = op['operationId'] as string;
      assert.ok(!ids.has(id), `${where}: operationId ${id} is unique`);
      ids.add(id);
      const responses = obj(op['responses'], `${where} responses`);
      assert.ok(
        Object.keys(responses).some((s) => /^2\d\d$/.test(s)),
        `${where} has a 2xx response`,
      );
      for (const [status, r] of Object.entries(responses)) {
        assert.match(status, /^[1-5]\d\d$/, `${where}: status ${status}`);
        assert.equal(typeof obj(r, `${where} ${status}`)['description'], 'string');
      }
    }
  });

  it('resolves every $ref', () => {
    let refs = 0;
    for (const [at, node] of walk(doc)) {
      if (!at.endsWith('/$ref')) continue;
      refs++;
      assert.notEqual(resolve(String(node)), undefined, `${at}: ${String(node)} resolves`);
    }
    assert.ok(refs > 20, `the document uses its components (${refs} references)`);
  });

  it('declares every path parameter, and no other', () => {
    for (const [path, method, op] of operations()) {
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      const params = ((op['parameters'] ?? []) as JsonObject[]).map((p) =>
        p['$ref'] ? obj(resolve(p['$ref'] as string), 'parameter') : p,
      );
      const declared = params.filter((p) => p['in'] === 'path');
      assert.deepEqual(
        declared.map((p) => p['name']).sort(),
        [...inPath].sort(),
        `${method} ${path}: path parameters`,
      );
      for (const p of declared)
        assert.equal(p['required'], true, `${path}: ${p['name'] as string}`);
      for (const p of params) assert.ok(obj(p['schema'], `${path} ${p['name'] as string}`));
    }
  });

  it('holds plain JSON Schema: no typebox-only keys', () => {
    for (const [at] of walk(doc)) assert.doesNotMatch(at, /\/~/, `${at} is not typebox's`);
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc);
  });

  it('has components a validator compiles, and which accept a sample', () => {
    const schemas = obj(obj(doc['components'], 'components')['schemas'], 'schemas');
    assert.deepEqual(Object.keys(schemas), Object.keys(COMPONENTS));
    const check = (name: string, value: unknown): boolean =>
      Compile({ ...obj(schemas[name], name), components: doc['components'] }).Check(value);
    for (const name of Object.keys(schemas)) check(name, null);
    const error = { error: { code: 'group_not_found', message: 'no group with id g_x' } };
    assert.equal(check('ErrorReply', error), true);
    assert.equal(check('ErrorReply', { error: { code: 'nope', message: '' } }), false);
    const task = { taskId: 1, groupId: 'g', index: 0, state: 'failed', attempt: 2 };
    assert.equal(check('TaskView', { ...task, error: { kind: 'timeout', message: 'm' } }), true);
    assert.equal(check('TaskView', { ...task, state: 'lost' }), false);
  });

  it('gives every operation its error replies, by status', () => {
    const paths = obj(doc['paths'], 'paths');
    for (const op of OPERATIONS) {
      const o = obj(obj(paths[op.path], op.path)[op.method], `${op.method} ${op.path}`);
      const responses = obj(o['responses'], `${op.path} responses`);
      for (const code of errorCodes(op)) {
        const r = obj(responses[String(ERROR_CODES[code].status)], `${op.path} ${code}`);
        assert.ok((r['x-error-codes'] as string[]).includes(code), `${op.path} lists ${code}`);
      }
      assert.equal(errorCodes(op).includes('unauthorized'), op.auth !== false, `${op.path}: 401`);
      const token = [{ clientToken: [] }];
      const expected = op.auth === 'dashboard' ? [{}, ...token] : op.auth ? token : [];
      assert.deepEqual(o['security'], expected, `${op.path}: security`);
    }
  });

  it('is the same document every time', () => {
    assert.deepEqual(openApiDocument(), doc);
    assert.equal(openApi(), openApi());
  });
});
