import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ERROR_CODES,
  isErrorCode,
  PermanentError,
  RegroupError,
  type ErrorCode,
} from './errors.js';

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

void test('RegroupError: status and retryable come from the table for every code', () => {
  for (const code of CODES) {
    const e = new RegroupError(code, `m ${code}`);
    assert.ok(e instanceof Error && e instanceof RegroupError);
    assert.equal(e.name, 'RegroupError');
    assert.equal(e.code, code);
    assert.equal(e.message, `m ${code}`);
    assert.equal(e.status, ERROR_CODES[code].status, code);
    assert.equal(e.retryable, ERROR_CODES[code].retryable, code);
    assert.ok(e.status >= 400 && e.status <= 599, code);
    assert.equal(e.cause, undefined);
  }
});

void test('the table: spot checks of statuses and retryability', () => {
  const spots: [ErrorCode, number, boolean][] = [
    ['bad_request', 400, false],
    ['validation_failed', 400, false],
    ['unauthorized', 401, false],
    ['group_not_found', 404, false],
    ['body_too_large', 413, false],
    ['unsupported_media_type', 415, false],
    ['group_sealed', 409, false],
    ['stale_attempt', 409, false],
    ['internal', 500, false],
    ['unavailable', 503, true],
    ['not_leader', 503, true],
    ['storage_full', 507, true],
    ['timeout', 504, true],
    ['poison', 500, false],
    ['closed', 503, false],
  ];
  for (const [code, status, retryable] of spots) {
    assert.deepEqual(ERROR_CODES[code], { status, retryable }, code);
  }
});

void test('RegroupError: retryable can be overridden; cause is kept', () => {
  const cause = new Error('disk');
  const e = new RegroupError('unavailable', 'x', { cause, retryable: false });
  assert.equal(e.retryable, false);
  assert.equal(e.cause, cause);
  assert.equal(new RegroupError('bad_request', 'x', { retryable: true }).retryable, true);
  assert.equal(new RegroupError('unavailable', 'x', {}).retryable, true);
});

void test('toWire: { error: { code, message } } and nothing else', () => {
  const e = new RegroupError('group_sealed', 'group g1 is sealed', { cause: new Error('x') });
  assert.deepEqual(e.toWire(), { error: { code: 'group_sealed', message: 'group g1 is sealed' } });
  assert.deepEqual(JSON.parse(JSON.stringify(e.toWire())), e.toWire());
});

void test('fromWire: round trip for every code', () => {
  for (const code of CODES) {
    const back = RegroupError.fromWire(new RegroupError(code, `m ${code}`).toWire());
    assert.equal(back.code, code);
    assert.equal(back.message, `m ${code}`);
    assert.equal(back.status, ERROR_CODES[code].status);
  }
});

void test('fromWire: unknown codes become internal; a missing message uses the fallback', () => {
  const unknown = RegroupError.fromWire({ error: { code: 'teapot', message: 'short and stout' } });
  assert.equal(unknown.code, 'internal');
  assert.equal(unknown.status, 500);
  assert.equal(unknown.message, 'short and stout');
  // Inherited names are not codes.
  assert.equal(
    RegroupError.fromWire({ error: { code: 'toString', message: 'm' } }).code,
    'internal',
  );
  assert.equal(RegroupError.fromWire({ error: { code: 404, message: 'm' } }).code, 'internal');
  for (const body of [null, undefined, 'oops', 42, {}, { error: null }, { error: 'x' }]) {
    const e = RegroupError.fromWire(body);
    assert.equal(e.code, 'internal');
    assert.equal(e.message, 'unexpected reply');
  }
  assert.equal(
    RegroupError.fromWire({ error: { code: 'not_found' } }, 'HTTP 404').message,
    'HTTP 404',
  );
  const bad = RegroupError.fromWire({ error: { code: 'not_found', message: 7 } });
  assert.equal(bad.code, 'not_found');
  assert.equal(bad.message, 'unexpected reply');
});

void test('isErrorCode: own table keys only', () => {
  for (const code of CODES) assert.equal(isErrorCode(code), true);
  for (const x of [
    'toString',
    'constructor',
    '__proto__',
    'hasOwnProperty',
    '',
    'INTERNAL',
    500,
    null,
    undefined,
    {},
  ]) {
    assert.equal(isErrorCode(x), false, JSON.stringify(x) ?? 'undefined');
  }
});

void test('PermanentError: marks a handler failure that must not be retried', () => {
  const cause = new TypeError('nan');
  const e = new PermanentError('input is not a number', { cause });
  assert.ok(e instanceof Error);
  assert.ok(!(e instanceof RegroupError));
  assert.equal(e.permanent, true);
  assert.equal(e.name, 'PermanentError');
  assert.equal(e.message, 'input is not a number');
  assert.equal(e.cause, cause);
  assert.equal(new PermanentError('x').cause, undefined);
  assert.equal('cause' in new PermanentError('x'), false);
});
