import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RegroupError } from './errors.js';
import { resolveTaskOptions } from './options.js';
import { DEFAULT_TASK_OPTIONS, type TaskOptions } from './types.js';

const SEED = 99;

void test('resolveTaskOptions: nothing given -> the defaults, every field set', () => {
  const expected = {
    maxAttempts: 3,
    timeoutMs: 0,
    heartbeatTimeoutMs: 0,
    maxNodeFailures: 3,
    priority: 0,
    requires: [],
    backoffMs: 200,
    backoffMaxMs: 30_000,
    scheduleTimeoutMs: 0,
    maxConcurrency: 0,
    concurrencyKey: '',
    concurrencyKeyLimit: 0,
  };
  assert.deepEqual(resolveTaskOptions(undefined), expected);
  assert.deepEqual(resolveTaskOptions({}), expected);
  assert.deepEqual(resolveTaskOptions({ maxAttempts: undefined, requires: undefined }), expected);
});

void test('resolveTaskOptions: does not share or change the frozen defaults', () => {
  assert.ok(Object.isFrozen(DEFAULT_TASK_OPTIONS));
  const snapshot = structuredClone(DEFAULT_TASK_OPTIONS);
  const r = resolveTaskOptions(undefined);
  assert.notEqual(r, DEFAULT_TASK_OPTIONS);
  assert.notEqual(r.requires, DEFAULT_TASK_OPTIONS.requires);
  r.requires.push('gpu');
  r.maxAttempts = 99;
  resolveTaskOptions({ requires: ['x', 'x'], priority: 5 }).requires.push('y');
  assert.deepEqual({ ...DEFAULT_TASK_OPTIONS }, snapshot);
  assert.deepEqual(resolveTaskOptions(undefined).requires, []);
});

void test('resolveTaskOptions: requires are deduplicated and sorted; the given array is not changed', () => {
  const given = { requires: ['gpu', 'eu', 'gpu', 'big', 'eu'] };
  const r = resolveTaskOptions(given);
  assert.deepEqual(r.requires, ['big', 'eu', 'gpu']);
  assert.deepEqual(given.requires, ['gpu', 'eu', 'gpu', 'big', 'eu']);
  assert.notEqual(r.requires, given.requires);
});

void test('resolveTaskOptions: a concurrencyKeyLimit without a concurrencyKey is refused', () => {
  assert.throws(
    () => resolveTaskOptions({ concurrencyKeyLimit: 5 }),
    (e: unknown) =>
      e instanceof RegroupError &&
      e.code === 'validation_failed' &&
      /give options.concurrencyKey too/.test(e.message),
  );
  assert.equal(
    resolveTaskOptions({ concurrencyKey: 'k', concurrencyKeyLimit: 5 }).concurrencyKeyLimit,
    5,
  );
});

void test('resolveTaskOptions: backoffMaxMs below backoffMs is refused as validation_failed', () => {
  const refused = (given: Partial<TaskOptions>) =>
    assert.throws(
      () => resolveTaskOptions(given),
      (e: unknown) =>
        e instanceof RegroupError &&
        e.code === 'validation_failed' &&
        e.status === 400 &&
        /backoffMaxMs/.test(e.message) &&
        /backoffMs/.test(e.message),
    );
  refused({ backoffMs: 1000, backoffMaxMs: 999 });
  refused({ backoffMaxMs: 100 }); // against the default backoffMs (200)
  refused({ backoffMs: 60_000 }); // against the default backoffMaxMs (30 s)
  assert.equal(resolveTaskOptions({ backoffMs: 500, backoffMaxMs: 500 }).backoffMaxMs, 500);
  assert.equal(resolveTaskOptions({ backoffMs: 0, backoffMaxMs: 0 }).backoffMs, 0);
});

void test('resolveTaskOptions: each given field wins, each missing one is the default', () => {
  const label = fc.constantFrom('gpu', 'eu', 'big', 'ssd');
  fc.assert(
    fc.property(
      fc
        .record(
          {
            maxAttempts: fc.integer({ min: 1, max: 1000 }),
            timeoutMs: fc.nat(1e6),
            heartbeatTimeoutMs: fc.nat(1e6),
            maxNodeFailures: fc.integer({ min: 1, max: 1000 }),
            priority: fc.integer({ min: -1e6, max: 1e6 }),
            requires: fc.array(label, { maxLength: 6 }),
            backoffMs: fc.nat(30_000),
            backoffMaxMs: fc.integer({ min: 30_000, max: 1e8 }),
            scheduleTimeoutMs: fc.nat(1e6),
            maxConcurrency: fc.nat(1e6),
            concurrencyKey: fc.constantFrom('openai', 'db:main'),
            concurrencyKeyLimit: fc.nat(1e6),
          },
          { requiredKeys: [], noNullPrototype: true },
        )
        // A key limit comes with its key.
        .map((g) =>
          g.concurrencyKeyLimit !== undefined && g.concurrencyKey === undefined
            ? { ...g, concurrencyKey: 'openai' }
            : g,
        ),
      (given) => {
        const snapshot = structuredClone(given);
        const r = resolveTaskOptions(given);
        assert.deepEqual(given, snapshot);
        assert.deepEqual(Object.keys(r).sort(), Object.keys(DEFAULT_TASK_OPTIONS).sort());
        for (const k of Object.keys(DEFAULT_TASK_OPTIONS) as (keyof TaskOptions)[]) {
          if (k === 'requires') continue;
          assert.equal(r[k], given[k] ?? DEFAULT_TASK_OPTIONS[k], k);
        }
        assert.deepEqual(r.requires, [...new Set(given.requires ?? [])].sort());
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

void test('resolveTaskOptions takes only the options themselves, never inherited names', () => {
  const given = JSON.parse(
    '{"__proto__": {"polluted": 1}, "toString": 5, "maxAttempts": 4}',
  ) as Partial<TaskOptions>;
  const o = resolveTaskOptions(given);
  assert.equal(o.maxAttempts, 4);
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.equal(Object.hasOwn(o, 'toString'), false);
  assert.equal((o as unknown as Record<string, unknown>)['polluted'], undefined);
});
