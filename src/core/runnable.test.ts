import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { RunnableIndex, shapeKey, type IndexedGroup } from './runnable.js';
import {
  closest,
  list,
  MAX_LISTED,
  MAX_SUGGEST_FROM,
  unschedulableError,
  whyWaiting,
  type Offer,
} from './waiting.js';

const SEED = 424_242;

const group = (
  id: string,
  handler = 'a',
  requires: string[] = [],
  extra: Partial<Pick<IndexedGroup, 'state' | 'pending'>> & { scheduleTimeoutMs?: number } = {},
): IndexedGroup => ({
  id,
  handler,
  state: extra.state ?? 'sealed',
  pending: extra.pending ?? 1,
  options: { requires, scheduleTimeoutMs: extra.scheduleTimeoutMs ?? 0 },
});
const offer = (handlers: string[], labels: string[] = []): Offer => ({
  handlers: new Set(handlers),
  labels: new Set(labels),
});

void test('shapeKey: requires in any order make one shape; handler and labels cannot blur', () => {
  assert.equal(shapeKey('a', ['y', 'x']), shapeKey('a', ['x', 'y']));
  assert.notEqual(shapeKey('a', ['b']), shapeKey('a,b', []));
  assert.notEqual(shapeKey('a', []), shapeKey('b', []));
});

void test('pick: groups no worker can run are never read, however many and however old', () => {
  const ix = new RunnableIndex();
  for (let i = 0; i < 300; i++) ix.update(group(`gpu${i}`, 'a', ['gpu']));
  for (let i = 0; i < 300; i++) ix.update(group(`nobody${i}`, 'missing'));
  ix.update(group('victim', 'a'));
  const { ids, candidates } = ix.pick([offer(['a'])], 256);
  assert.deepEqual(ids, ['victim']);
  assert.equal(candidates, 1);
  // A worker with the label makes the gpu groups readable, oldest first.
  const withGpu = ix.pick([offer(['a'], ['gpu'])], 3);
  assert.deepEqual(withGpu.ids, ['gpu0', 'gpu1', 'gpu2']);
  assert.equal(withGpu.candidates, 301);
});

void test('pick/served: rotation reaches every runnable group within ceil(n / max) reads', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 1, max: 17 }), (n, max) => {
      const ix = new RunnableIndex();
      for (let i = 0; i < n; i++) ix.update(group(`g${i}`, i % 3 === 0 ? 'a' : 'b'));
      const seen = new Set<string>();
      const rounds = Math.ceil(n / max);
      for (let r = 0; r < rounds; r++) {
        const { ids } = ix.pick([offer(['a', 'b'])], max);
        assert.ok(ids.length <= max);
        for (const id of ids) seen.add(id);
        ix.served(ids);
      }
      assert.equal(seen.size, n);
    }),
    { seed: SEED, numRuns: 300 },
  );
});

void test('served: a group read but not served keeps its place at the front', () => {
  const ix = new RunnableIndex();
  for (const id of ['g0', 'g1', 'g2', 'g3']) ix.update(group(id));
  const first = ix.pick([offer(['a'])], 2).ids;
  assert.deepEqual(first, ['g0', 'g1']);
  ix.served(['g0']); // g1 had ready tasks but no slot was left for it
  assert.deepEqual(ix.pick([offer(['a'])], 2).ids, ['g1', 'g2']);
});

void test('update: a group leaves the index when nothing is pending or it is canceled, and can come back', () => {
  const ix = new RunnableIndex();
  ix.update(group('g'));
  assert.ok(ix.has('g'));
  ix.update(group('g', 'a', [], { pending: 0 }));
  assert.equal(ix.has('g'), false);
  ix.update(group('g'));
  ix.update(group('g', 'a', [], { state: 'canceled' }));
  assert.equal(ix.size, 0);
  ix.update(group('g', 'a', [], { state: 'open', pending: 3 }));
  assert.deepEqual(ix.pick([offer(['a'])], 10).ids, ['g']);
});

void test('judge: groups start waiting once, with the reason, and stop when a worker can run them', () => {
  const ix = new RunnableIndex();
  ix.update(group('g1', 'square', ['gpu']));
  const started = ix.judge([offer(['square'], ['cpu'])], 1000);
  assert.equal(started.length, 1);
  assert.equal(started[0]!.waiting?.code, 'no_label');
  assert.equal(started[0]!.waiting?.since, 1000);
  // Judged again, nothing changes: no second report, the same since.
  assert.deepEqual(ix.judge([offer(['square'], ['cpu'])], 2000), []);
  assert.equal(ix.waiting('g1')?.since, 1000);
  // A group added later waits from its own time.
  ix.update(group('g2', 'square', ['gpu']));
  const later = ix.judge([offer(['square'], ['cpu'])], 3000);
  assert.deepEqual(
    later.map((c) => [c.groupId, c.waiting?.since]),
    [['g2', 3000]],
  );
  // The reason follows the workers; since stays while it waits.
  assert.deepEqual(ix.judge([], 3500), []);
  assert.equal(ix.waiting('g1')?.code, 'no_worker');
  assert.equal(ix.waiting('g1')?.since, 1000);
  const ended = ix.judge([offer(['square'], ['gpu'])], 4000);
  assert.deepEqual(ended.map((c) => [c.groupId, c.waiting]).sort(), [
    ['g1', undefined],
    ['g2', undefined],
  ]);
  assert.equal(ix.waiting('g1'), undefined);
});

void test('expired: only waiting groups with a schedule timeout, once it ran out', () => {
  const ix = new RunnableIndex();
  ix.update(group('t', 'nope', [], { scheduleTimeoutMs: 500 }));
  ix.update(group('forever', 'nope'));
  ix.update(group('runs', 'a', [], { scheduleTimeoutMs: 10 }));
  ix.judge([offer(['a'])], 1000);
  assert.deepEqual(ix.expired(1200), { expired: [], next: 1500 });
  const out = ix.expired(1500);
  assert.deepEqual(
    out.expired.map((e) => [e.groupId, e.reason.code, e.scheduleTimeoutMs]),
    [['t', 'no_handler', 500]],
  );
  // Runnable again: the clock stops.
  ix.judge([offer(['a', 'nope'])], 1600);
  assert.deepEqual(ix.expired(9999), { expired: [], next: null });
});

void test('whyWaiting: each code, and a runnable shape has no reason', () => {
  assert.deepEqual(whyWaiting('square', [], []), {
    code: 'no_worker',
    message: 'no worker is connected',
  });
  const workers = [offer(['square', 'crunch'], ['cpu']), offer(['square'])];
  assert.deepEqual(whyWaiting('sqaure', [], workers), {
    code: 'no_handler',
    message:
      'no worker offers handler "sqaure" (did you mean "square"?); connected workers offer: crunch, square',
  });
  assert.deepEqual(whyWaiting('square', ['ssd', 'gpu'], workers), {
    code: 'no_label',
    message:
      'no connected worker offering "square" has labels gpu, ssd; workers offering it have: cpu',
  });
  assert.equal(whyWaiting('square', ['cpu'], workers), null);
  assert.equal(
    whyWaiting('x', ['gpu'], [offer(['x'])])?.message,
    'no connected worker offering "x" has labels gpu; workers offering it have: (no labels)',
  );
});

void test('list: sorted, distinct, capped with a count of the rest', () => {
  const names = Array.from({ length: MAX_LISTED + 3 }, (_, i) => `h${String(i).padStart(2, '0')}`);
  const s = list([...names].reverse().concat(names));
  assert.ok(s.startsWith('h00, h01, '));
  assert.ok(s.endsWith(`h${String(MAX_LISTED - 1).padStart(2, '0')} and 3 more`));
  assert.equal(list([]), '(none)');
});

void test('unschedulableError names what was missing and scheduleTimeoutMs', () => {
  const e = unschedulableError(
    { code: 'no_handler', message: 'no worker offers handler "q"' },
    250,
  );
  assert.equal(e.kind, 'unschedulable');
  assert.match(e.message, /250 ms \(scheduleTimeoutMs\)/);
  assert.match(e.message, /no worker offers handler "q"/);
});

void test('closest: the offered name a typo meant, or none when nothing is that near', () => {
  const offered = ['square', 'crunch', 'slowSquare', 'resize'];
  assert.equal(closest('sqaure', offered), 'square', 'two neighbours swapped: one edit');
  assert.equal(closest('squar', offered), 'square', 'one missing');
  assert.equal(closest('sqare2', offered), 'square', 'two edits in a longer name');
  assert.equal(closest('crnch', ['crunch', 'crunchy']), 'crunch', 'the nearest wins');
  assert.equal(
    closest('resize', ['resizer', 'resizes']),
    'resizer',
    'a tie: the first in sort order',
  );
  assert.equal(closest('thumbnail', offered), null);
  assert.equal(closest('ab', ['cd']), null, 'a short name allows one edit only');
  assert.equal(closest('x', []), null);
  const many = Array.from({ length: MAX_SUGGEST_FROM }, (_, i) => `handler${i}`);
  assert.equal(closest('handler42x', many), 'handler42');
  assert.equal(closest('handler42x', [...many, 'one more']), null, 'too many names: no guess');
  // Long names alike but for their end: each comparison is a band, not the whole table.
  const long = Array.from({ length: MAX_SUGGEST_FROM }, (_, i) => 'a'.repeat(190) + i);
  assert.equal(closest('a'.repeat(190) + '5x', long), 'a'.repeat(190) + '5');
});

void test('judge: the same workers judge only new shapes; new offers (a resume) are judged again', () => {
  const ix = new RunnableIndex();
  const w = { handlers: new Set(['a']), labels: new Set<string>() };
  ix.update(group('g1', 'b'));
  let changes = ix.judge([w], 10);
  assert.deepEqual(
    changes.map((c) => [c.groupId, c.waiting?.code]),
    [['g1', 'no_handler']],
  );
  assert.match(ix.waiting('g1')!.message, /connected workers offer: a$/);
  assert.deepEqual(ix.judge([w], 20), [], 'nothing changed, nothing said');
  // The same session resumes offering b: new sets, so the verdict is taken again.
  const resumed = { handlers: new Set(['a', 'b']), labels: new Set<string>() };
  changes = ix.judge([resumed], 30);
  assert.deepEqual(
    changes.map((c) => [c.groupId, c.waiting]),
    [['g1', undefined]],
  );
  assert.equal(ix.waiting('g1'), undefined);
  assert.deepEqual(ix.pick([resumed], 10).ids, ['g1']);
  // It goes: the group waits again, and pick skips it.
  changes = ix.judge([], 40);
  assert.deepEqual(
    changes.map((c) => [c.groupId, c.waiting?.code, c.waiting?.since]),
    [['g1', 'no_worker', 40]],
  );
  assert.deepEqual(ix.pick([], 10).ids, []);
});
