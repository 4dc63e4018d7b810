import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CapRoom } from './caps.js';

const task = (groupId: string, maxConcurrency: number, id = 0) => ({ groupId, maxConcurrency, id });

void test('a cap leaves room for cap - running tasks, in order; no cap takes all', () => {
  const running = new Map([['a', 1]]);
  const room = new CapRoom((g) => running.get(g) ?? 0);
  const ready = [
    task('a', 3, 1),
    task('a', 3, 2),
    task('a', 3, 3),
    task('b', 0, 4),
    task('b', 0, 5),
  ];
  assert.deepEqual(
    room.fit(ready).map((t) => t.id),
    [1, 2, 4, 5],
  );
});

void test('what one plan of a tick took counts against the next', () => {
  const room = new CapRoom(() => 0);
  room.took(['a', 'a']);
  assert.deepEqual(
    room.fit([task('a', 3, 1), task('a', 3, 2)]).map((t) => t.id),
    [1],
  );
  room.took(['a']);
  assert.deepEqual(room.fit([task('a', 3, 3)]), []);
});

void test('a group over its cap (a lower cap, leases restored) gets nothing, never a negative room', () => {
  const room = new CapRoom(() => 5);
  assert.deepEqual(room.fit([task('a', 2), task('a', 2)]), []);
});

void test('property: never more than the cap of a group leased and taken', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.nat(4)), { maxLength: 40 }),
      fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.nat(6)),
      (tasks, running) => {
        const caps: Record<string, number> = { a: 2, b: 0, c: 5 };
        const room = new CapRoom((g) => running[g] ?? 0);
        const ready = tasks.map(([g], i) => task(g, caps[g]!, i));
        const fitted = room.fit(ready);
        for (const g of ['a', 'c']) {
          const n = fitted.filter((t) => t.groupId === g).length;
          const want = ready.filter((t) => t.groupId === g).length;
          assert.equal(n, Math.min(want, Math.max(0, caps[g]! - (running[g] ?? 0))));
        }
        assert.equal(
          fitted.filter((t) => t.groupId === 'b').length,
          ready.filter((t) => t.groupId === 'b').length,
        );
      },
    ),
  );
});
