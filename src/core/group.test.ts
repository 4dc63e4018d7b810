import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { countsConsistent, isGroupDone, nextGroupState, outstanding } from './group.js';
import type { GroupCounts, GroupState } from './types.js';

const SEED = 1234;
const check = <Ts>(p: fc.IProperty<Ts>) => fc.assert(p, { seed: SEED, numRuns: 400 });

const STATES: GroupState[] = ['open', 'sealed', 'done', 'canceled'];
const counts: fc.Arbitrary<GroupCounts> = fc
  .record({
    pending: fc.nat(5),
    running: fc.nat(5),
    succeeded: fc.nat(5),
    failed: fc.nat(5),
    canceled: fc.nat(5),
  })
  .map((p) => ({ ...p, total: p.pending + p.running + p.succeeded + p.failed + p.canceled }));
const c = (pending: number, running: number, succeeded = 0, failed = 0, canceled = 0) => ({
  total: pending + running + succeeded + failed + canceled,
  pending,
  running,
  succeeded,
  failed,
  canceled,
});

void test('outstanding counts pending and running tasks only', () => {
  assert.equal(outstanding(c(2, 3, 4, 5, 6)), 5);
  assert.equal(outstanding(c(0, 0, 4, 5, 6)), 0);
});

void test('isGroupDone: examples', () => {
  assert.equal(isGroupDone('sealed', c(0, 0, 3, 1, 1)), true);
  assert.equal(isGroupDone('sealed', c(0, 0)), true); // sealed and empty
  assert.equal(isGroupDone('sealed', c(1, 0, 3)), false);
  assert.equal(isGroupDone('sealed', c(0, 1, 3)), false);
  assert.equal(isGroupDone('open', c(0, 0, 3)), false);
  assert.equal(isGroupDone('open', c(0, 0)), false);
  assert.equal(isGroupDone('canceled', c(0, 0, 1, 0, 2)), true);
  assert.equal(isGroupDone('done', c(0, 0, 2)), true);
});

void test('isGroupDone: exactly when sealed with nothing outstanding, or canceled/done; never open', () => {
  check(
    fc.property(fc.constantFrom(...STATES), counts, (state, k) => {
      const want =
        state === 'canceled' ||
        state === 'done' ||
        (state === 'sealed' && k.pending === 0 && k.running === 0);
      assert.equal(isGroupDone(state, k), want);
      if (state === 'open') assert.equal(isGroupDone(state, k), false);
    }),
  );
});

void test('nextGroupState: only a sealed group with nothing outstanding moves, to done', () => {
  assert.equal(nextGroupState('sealed', c(0, 0, 2, 1)), 'done');
  assert.equal(nextGroupState('sealed', c(0, 1, 2, 1)), 'sealed');
  assert.equal(nextGroupState('open', c(0, 0, 2)), 'open');
  assert.equal(nextGroupState('canceled', c(0, 0, 0, 0, 3)), 'canceled');
  assert.equal(nextGroupState('done', c(0, 0, 3)), 'done');
  check(
    fc.property(fc.constantFrom(...STATES), counts, (state, k) => {
      const next = nextGroupState(state, k);
      if (state === 'sealed' && outstanding(k) === 0) assert.equal(next, 'done');
      else assert.equal(next, state);
      // Idempotent, and agrees with isGroupDone for the states it can move.
      assert.equal(nextGroupState(next, k), next);
      if (state === 'open' || state === 'sealed') {
        assert.equal(next === 'done', isGroupDone(state, k));
      }
    }),
  );
});

void test('countsConsistent: true exactly when the parts are whole, non-negative and add up', () => {
  assert.equal(countsConsistent(c(1, 2, 3, 4, 5)), true);
  assert.equal(countsConsistent(c(0, 0)), true);
  assert.equal(countsConsistent({ ...c(1, 2, 3), total: 7 }), false);
  assert.equal(countsConsistent({ ...c(1, 2, 3), total: 5 }), false);
  assert.equal(countsConsistent({ ...c(3, 0), pending: -1, running: 4 }), false);
  assert.equal(countsConsistent({ ...c(1, 1), pending: 0.5, running: 1.5 }), false);
  assert.equal(countsConsistent({ ...c(1, 1), failed: Number.NaN }), false);
  check(
    fc.property(
      counts,
      fc.constantFrom<keyof GroupCounts>(
        'total',
        'pending',
        'running',
        'succeeded',
        'failed',
        'canceled',
      ),
      fc.integer({ min: -3, max: 3 }).filter((d) => d !== 0),
      (k, field, delta) => {
        assert.equal(countsConsistent(k), true);
        assert.equal(countsConsistent({ ...k, [field]: k[field] + delta }), false);
      },
    ),
  );
});
