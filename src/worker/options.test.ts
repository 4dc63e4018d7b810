import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RegroupError } from '../core/errors.js';
import {
  DEFAULT_WORKER_OPTIONS,
  reconnectDelayMs,
  resolveWorkerOptions,
  workerUrl,
} from './options.js';

const echo = (x: unknown) => x;

void test('coordinator URLs become WebSocket URLs at /v1/worker', () => {
  assert.equal(workerUrl('http://127.0.0.1:7700'), 'ws://127.0.0.1:7700/v1/worker');
  assert.equal(workerUrl('https://rg.example.com/'), 'wss://rg.example.com/v1/worker');
  assert.equal(workerUrl('https://example.com/regroup'), 'wss://example.com/regroup/v1/worker');
  assert.equal(workerUrl('ws://h:1/v1/worker'), 'ws://h:1/v1/worker');
  assert.throws(() => workerUrl('ftp://h'), /http, https, ws or wss/);
  assert.throws(() => workerUrl('nope'), /not a URL/);
});

void test('options resolve to defaults with every field set', () => {
  const r = resolveWorkerOptions({ url: 'http://h:1', handlers: { echo } });
  assert.deepEqual(r.urls, ['ws://h:1/v1/worker']);
  assert.equal(r.concurrency, DEFAULT_WORKER_OPTIONS.concurrency);
  assert.equal(r.drainTimeoutMs, 30_000);
  assert.equal(r.reconnectMinMs, 100);
  assert.equal(r.reconnectMaxMs, 1000);
  assert.equal(r.token, null);
  assert.match(r.name, /-\d+$/);
  assert.ok(Object.isFrozen(r) && Object.isFrozen(DEFAULT_WORKER_OPTIONS));
});

void test('bad options are refused with the field named', () => {
  const bad = (o: object, re: RegExp) =>
    assert.throws(
      () => resolveWorkerOptions({ url: 'http://h:1', handlers: { echo }, ...o }),
      (e: unknown) =>
        e instanceof RegroupError && e.code === 'validation_failed' && re.test(e.message),
    );
  bad({ handlers: {} }, /at least one handler/);
  bad({ handlers: { x: 1 } }, /handler x is not a function/);
  bad({ concurrency: 0 }, /concurrency/);
  bad({ url: [] }, /at least one coordinator/);
  bad({ reconnectMinMs: 500, reconnectMaxMs: 100 }, /reconnectMaxMs \(100\)/);
  bad({ labels: [''] }, /a label/);
});

void test('reconnect delays stay between min and max and grow with failures', () => {
  const o = { reconnectMinMs: 100, reconnectMaxMs: 5000 };
  fc.assert(
    fc.property(
      fc.nat(100),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      (n, r) => {
        const d = reconnectDelayMs(n, o, () => r);
        return d >= 100 && d <= 5000;
      },
    ),
  );
  assert.equal(
    reconnectDelayMs(0, o, () => 0.999),
    200,
  );
  assert.equal(
    reconnectDelayMs(3, o, () => 0.999),
    1599,
  );
  assert.equal(
    reconnectDelayMs(50, o, () => 1),
    5000,
  );
});
