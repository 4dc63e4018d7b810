import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CapRoom } from './caps.js';

const task = (groupId: string, maxConcurrency: number, id = 0, concurrencyKey = '') => ({
  groupId,
  maxConcurrency,
  id,
  concurrencyKey,
});

/** Counts: groups' leases from `running`, keys' from `keys`, limits from `limits`. */
function counts(
  running: Record<string, number> = {},
  keys: Record<string, number> = {},
  limits: Record<string, number> = {},
) {
  return {
    group: (g: string) => running[g] ?? 0,
    key: (k: string) => keys[k] ?? 0,
    keyLimit: (k: string) => limits[k] ?? 0,
  };
}

void test('a cap leaves room for cap - running tasks, in order; no cap takes all', () => {
  const room = new CapRoom(counts({ a: 1 }));
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
  const room = new CapRoom(counts());
  room.took([task('a', 3), task('a', 3)]);
  assert.deepEqual(
    room.fit([task('a', 3, 1), task('a', 3, 2)]).map((t) => t.id),
    [1],
  );
  room.took([task('a', 3)]);
  assert.deepEqual(room.fit([task('a', 3, 3)]), []);
});

void test('a group over its cap (a lower cap, leases restored) gets nothing, never a negative room', () => {
  const room = new CapRoom(counts({ a: 5 }));
  assert.deepEqual(room.fit([task('a', 2), task('a', 2)]), []);
});

void test('property: never more than the cap of a group leased and taken', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.nat(4)), { maxLength: 40 }),
      fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.nat(6)),
      (tasks, running) => {
        const caps: Record<string, number> = { a: 2, b: 0, c: 5 };
        const room = new CapRoom(counts(running));
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

void test('a key limit holds across the groups naming it, with their own caps too', () => {
  // Key k: limit 3, 1 leased already. Group a (cap 1) and b (no cap) name it; c names none.
  const room = new CapRoom(counts({}, { k: 1 }, { k: 3 }));
  const ready = [
    task('a', 1, 1, 'k'),
    task('a', 1, 2, 'k'),
    task('b', 0, 3, 'k'),
    task('b', 0, 4, 'k'),
    task('c', 0, 5),
  ];
  // a: 1 (its cap); b: 1 (the key's room of 2, less a's); c: no key.
  assert.deepEqual(
    room.fit(ready).map((t) => t.id),
    [1, 3, 5],
  );
  room.took([task('a', 1, 1, 'k'), task('b', 0, 3, 'k')]);
  assert.deepEqual(
    room.fit([task('b', 0, 6, 'k')]),
    [],
    'the key is full for the rest of the tick',
  );
  // A key with no limit limits nothing.
  const open = new CapRoom(counts({}, { x: 100 }));
  assert.equal(open.fit([task('b', 0, 7, 'x')]).length, 1);
});
