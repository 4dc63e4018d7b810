import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { backoffDelayMs, decideFailure, decideNodeFailure } from './retry.js';
import type { FailureKind, TaskError } from './types.js';

// Fixed seed: the runs are the same on every machine; change it to explore.
const SEED = 20_240_611;
const check = <Ts>(p: fc.IProperty<Ts>) => fc.assert(p, { seed: SEED, numRuns: 500 });

/** A `random` that always answers r (r in [0, 1)). */
const fixed = (r: number) => () => r;
const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const backoff = fc
  .record({ backoffMs: fc.integer({ min: 1, max: 100_000 }), extra: fc.nat(10_000_000) })
  .map(({ backoffMs, extra }) => ({ backoffMs, backoffMaxMs: backoffMs + extra }));
const capOf = (errors: number, o: { backoffMs: number; backoffMaxMs: number }) =>
  Math.min(o.backoffMaxMs, o.backoffMs * 2 ** Math.max(errors - 1, 0));

void test('backoffDelayMs: examples with the default options (200 ms, cap 30 s)', () => {
  const o = { backoffMs: 200, backoffMaxMs: 30_000 };
  assert.equal(backoffDelayMs(1, o, fixed(0)), 100);
  assert.equal(backoffDelayMs(1, o, fixed(0.5)), 150);
  assert.equal(backoffDelayMs(1, o, fixed(0.999_999)), 200);
  assert.equal(backoffDelayMs(2, o, fixed(0)), 200);
  assert.equal(backoffDelayMs(3, o, fixed(0)), 400);
  assert.equal(backoffDelayMs(8, o, fixed(0)), 12_800);
  assert.equal(backoffDelayMs(9, o, fixed(0)), 15_000);
  assert.equal(backoffDelayMs(20, o, fixed(0)), 15_000);
  assert.equal(backoffDelayMs(20, o, fixed(0.999_999)), 30_000);
  // errors <= 0 is treated as the first retry; absurd counts do not overflow.
  assert.equal(backoffDelayMs(0, o, fixed(0)), 100);
  assert.equal(backoffDelayMs(-5, o, fixed(0)), 100);
  assert.equal(backoffDelayMs(1_000_000, o, fixed(0.999_999)), 30_000);
});

void test('backoffDelayMs: equal jitter stays within [cap/2, cap], never above backoffMaxMs', () => {
  check(
    fc.property(fc.integer({ min: -3, max: 200 }), backoff, unit, (errors, o, r) => {
      const cap = capOf(errors, o);
      const d = backoffDelayMs(errors, o, fixed(r));
      assert.ok(Number.isInteger(d), `${d} is a whole number of ms`);
      assert.ok(d >= cap / 2 && d <= cap, `${d} within [${cap / 2}, ${cap}]`);
      assert.ok(d <= o.backoffMaxMs, `${d} <= ${o.backoffMaxMs}`);
    }),
  );
});

void test('backoffDelayMs: the random half is really random (r=0 and r->1 are the two ends)', () => {
  check(
    fc.property(fc.integer({ min: 1, max: 60 }), backoff, (errors, o) => {
      const cap = capOf(errors, o);
      assert.equal(backoffDelayMs(errors, o, fixed(0)), Math.round(cap / 2));
      assert.equal(backoffDelayMs(errors, o, fixed(1 - 2 ** -40)), Math.round(cap));
    }),
  );
});

void test('backoffDelayMs: is 0 when backoffMs is 0, whatever else', () => {
  check(
    fc.property(fc.integer({ min: -3, max: 200 }), fc.nat(1e9), unit, (errors, max, r) => {
      assert.equal(backoffDelayMs(errors, { backoffMs: 0, backoffMaxMs: max }, fixed(r)), 0);
    }),
  );
});

void test('backoffDelayMs: the lower bound doubles each retry until the cap, then stays', () => {
  check(
    fc.property(fc.integer({ min: 1, max: 60 }), backoff, (errors, o) => {
      const lo = (n: number) => backoffDelayMs(n, o, fixed(0));
      const capNow = capOf(errors, o);
      if (2 * capNow <= o.backoffMaxMs) {
        // Exact doubling of the cap; the rounding of cap/2 may differ by at most 1.
        assert.ok(
          Math.abs(lo(errors + 1) - 2 * lo(errors)) <= 1,
          `${lo(errors)} -> ${lo(errors + 1)}`,
        );
      } else {
        assert.equal(lo(errors + 1), Math.round(o.backoffMaxMs / 2));
      }
      assert.ok(lo(errors + 1) >= lo(errors), 'never shrinks');
    }),
  );
});

const err = (kind: FailureKind): TaskError => ({ kind, message: `a ${kind}` });
const neverCalled = () => {
  throw new Error('random must not be used for a final failure');
};

void test('decideFailure: permanent, handler_not_found and poison fail at once', () => {
  const kinds: FailureKind[] = ['permanent', 'handler_not_found', 'poison'];
  check(
    fc.property(
      fc.constantFrom(...kinds),
      fc.nat(50),
      fc.integer({ min: 1, max: 100 }),
      (kind, errorsBefore, maxAttempts) => {
        const error = err(kind);
        const d = decideFailure({
          errorsBefore,
          error,
          options: { maxAttempts, backoffMs: 200, backoffMaxMs: 30_000 },
          now: 1000,
          random: neverCalled,
        });
        assert.deepEqual(d, { kind: 'fail', error });
      },
    ),
  );
});

void test('decideFailure: errors and timeouts retry until the attempt budget is spent', () => {
  const options = { maxAttempts: 3, backoffMs: 200, backoffMaxMs: 30_000 };
  const at = (errorsBefore: number, kind: FailureKind = 'error') =>
    decideFailure({ errorsBefore, error: err(kind), options, now: 5000, random: fixed(0) });
  assert.deepEqual(at(0), { kind: 'retry', retryAt: 5100 });
  assert.deepEqual(at(1), { kind: 'retry', retryAt: 5200 });
  assert.deepEqual(at(2), { kind: 'fail', error: err('error') });
  assert.deepEqual(at(1, 'timeout'), { kind: 'retry', retryAt: 5200 });
  assert.deepEqual(at(2, 'timeout'), { kind: 'fail', error: err('timeout') });
  // maxAttempts 1: the first error is final.
  assert.equal(
    decideFailure({
      errorsBefore: 0,
      error: err('error'),
      options: { ...options, maxAttempts: 1 },
      now: 0,
      random: fixed(0),
    }).kind,
    'fail',
  );
});

void test('decideFailure: retry exactly while errorsBefore+1 < maxAttempts, at now + the backoff', () => {
  check(
    fc.property(
      fc.constantFrom<FailureKind>('error', 'timeout'),
      fc.nat(60),
      fc.integer({ min: 1, max: 60 }),
      backoff,
      fc.integer({ min: 0, max: 2 ** 45 }),
      unit,
      (kind, errorsBefore, maxAttempts, o, now, r) => {
        const error = err(kind);
        const d = decideFailure({
          errorsBefore,
          error,
          options: { maxAttempts, ...o },
          now,
          random: fixed(r),
        });
        if (errorsBefore + 1 >= maxAttempts) {
          assert.deepEqual(d, { kind: 'fail', error });
        } else {
          assert.equal(d.kind, 'retry');
          if (d.kind !== 'retry') return;
          assert.ok(d.retryAt >= now, `retryAt ${d.retryAt} before now ${now}`);
          assert.equal(d.retryAt, now + backoffDelayMs(errorsBefore + 1, o, fixed(r)));
        }
      },
    ),
  );
});

void test('decideNodeFailure: requeues, then poisons at the maxNodeFailures-th death', () => {
  const o = { maxNodeFailures: 3 };
  assert.deepEqual(decideNodeFailure({ nodeFailuresBefore: 0, options: o }), { kind: 'requeue' });
  assert.deepEqual(decideNodeFailure({ nodeFailuresBefore: 1, options: o }), { kind: 'requeue' });
  const d = decideNodeFailure({ nodeFailuresBefore: 2, options: o });
  assert.equal(d.kind, 'poison');
  if (d.kind !== 'poison') return;
  assert.equal(d.error.kind, 'poison');
  assert.match(d.error.message, /running on 3 workers that died/);
  assert.match(d.error.message, /maxNodeFailures=3/);
});

void test('decideNodeFailure: poison exactly when nodeFailuresBefore+1 >= maxNodeFailures', () => {
  check(
    fc.property(fc.nat(100), fc.integer({ min: 1, max: 100 }), (before, max) => {
      const d = decideNodeFailure({
        nodeFailuresBefore: before,
        options: { maxNodeFailures: max },
      });
      if (before + 1 < max) {
        assert.deepEqual(d, { kind: 'requeue' });
        return;
      }
      assert.equal(d.kind, 'poison');
      if (d.kind !== 'poison') return;
      assert.equal(d.error.kind, 'poison');
      assert.ok(d.error.message.includes(`${before + 1} workers`), d.error.message);
      assert.ok(d.error.message.includes(`maxNodeFailures=${max}`), d.error.message);
    }),
  );
});
