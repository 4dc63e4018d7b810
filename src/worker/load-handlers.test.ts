import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RegroupError } from '../core/errors.js';
import { loadHandlers } from './load-handlers.js';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));

void test('loads every exported function of a .js module', async () => {
  const h = await loadHandlers(fixture('handlers-basic.js'));
  assert.deepEqual(Object.keys(h).sort(), ['double', 'greet']);
  assert.equal(await h.double?.(21, undefined as never), 42);
  assert.equal(await h.greet?.({ name: 'ada' }, undefined as never), 'hello ada');
});

void test('loads a .ts module through tsx, with the functions of a default object', async () => {
  const h = await loadHandlers(fixture('handlers-typed.ts'));
  assert.deepEqual(Object.keys(h).sort(), ['shout', 'sum']);
  assert.equal(await h.sum?.({ a: 2, b: 3 }, undefined as never), 5);
  assert.equal(await h.shout?.('hey', undefined as never), 'HEY');
});

void test('a CommonJS module gives the functions of module.exports', async () => {
  const h = await loadHandlers(fixture('handlers-commonjs.cjs'));
  assert.deepEqual(Object.keys(h), ['triple']);
});

void test('a path relative to the working directory works', async () => {
  const h = await loadHandlers('test/fixtures/handlers-basic.js');
  assert.ok(h.double);
});

void test('a missing module or one without functions is a clear bad_request', async () => {
  await assert.rejects(loadHandlers('test/fixtures/no-such-module.js'), (e: unknown) => {
    assert.ok(e instanceof RegroupError);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /not found.*no-such-module\.js/);
    return true;
  });
  await assert.rejects(loadHandlers(fixture('handlers-none.js')), (e: unknown) => {
    assert.ok(e instanceof RegroupError);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /exports no function/);
    return true;
  });
});
