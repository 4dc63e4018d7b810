import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { planDispatch, type WorkerCredit } from './dispatch.js';
import { RunnableIndex, shapeKey, type Credit, type IndexedGroup } from './runnable.js';
import {
  closest,
  list,
  MAX_LISTED,
  MAX_SUGGEST_FROM,
  unschedulableError,
  whyWaiting,
} from './waiting.js';

const SEED = 424_242;

const group = (
  id: string,
  handler = 'a',
  requires: string[] = [],
  extra: Partial<Pick<IndexedGroup, 'state' | 'pending'>> & {
    scheduleTimeoutMs?: number;
    priority?: number;
  } = {},
): IndexedGroup => ({
  id,
  handler,
  state: extra.state ?? 'sealed',
  pending: extra.pending ?? 1,
  options: {
    requires,
    scheduleTimeoutMs: extra.scheduleTimeoutMs ?? 0,
    priority: extra.priority ?? 0,
  },
});
/** A worker's offer, with `free` slots for pick. */
const offer = (handlers: string[], labels: string[] = [], free = 1): Credit => ({
  handlers: new Set(handlers),
  labels: new Set(labels),
  free,
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

void test('pick: an idle worker is given its group whatever the backlog another, busy worker can run', () => {
  // 300 old groups of handler a, runnable only by a worker with 2 free slots;
  // a new gpu group, runnable only by an idle worker. The 256 least recently
  // served groups are a's: the gpu group used to be read only once the a
  // worker had served the 45 ahead of it (every 23 ticks here; with 10,000
  // a groups, every 4,873), the idle worker idle in between.
  const ix = new RunnableIndex();
  for (let i = 0; i < 300; i++) ix.update(group(`a${i}`, 'a'));
  ix.update(group('gpu', 'gpu'));
  const busy = offer(['a'], [], 2);
  const idle = offer(['gpu'], [], 8);
  for (let tick = 0; tick < 20; tick++) {
    const { ids, candidates } = ix.pick([busy, idle], 256);
    assert.equal(candidates, 301);
    assert.equal(ids.length, 256, 'the window is still filled');
    assert.ok(ids.includes('gpu'), `tick ${tick}: the gpu group is read`);
    assert.equal(new Set(ids).size, 256);
    // The a worker serves the two at the front; the gpu group gets runs.
    ix.served([ids[0]!, ids[1]!, 'gpu']);
  }
  // Alone, the busy worker reads the a groups as before: least recently served first.
  const alone = ix.pick([busy], 4).ids;
  assert.deepEqual(alone, ['a40', 'a41', 'a42', 'a43']);
});

void test('pick + planDispatch: the idle worker has its slots filled at every tick', () => {
  // The engine's loop at the index level: read the picked groups (each has
  // more ready tasks than any worker has slots), plan, serve the ones given a run.
  const ix = new RunnableIndex();
  for (let i = 0; i < 300; i++) ix.update(group(`a${i}`, 'a'));
  ix.update(group('gpu', 'gpu', ['cuda']));
  const workers: WorkerCredit[] = [
    { workerId: 'w1', free: 1, handlers: new Set(['a']), labels: new Set() },
    { workerId: 'w2', free: 3, handlers: new Set(['gpu']), labels: new Set(['cuda']) },
  ];
  let taskId = 0;
  for (let tick = 0; tick < 30; tick++) {
    const { ids } = ix.pick(workers, 256);
    const lists = ids.map((id) => {
      const handler = id === 'gpu' ? 'gpu' : 'a';
      const requires = id === 'gpu' ? ['cuda'] : [];
      return Array.from({ length: 4 }, () => ({
        taskId: ++taskId,
        groupId: id,
        handler,
        requires,
      }));
    });
    const plan = planDispatch(lists, workers);
    const groupOf = new Map(lists.flat().map((c) => [c.taskId, c.groupId]));
    const perWorker = (w: string): number => plan.filter((a) => a.workerId === w).length;
    assert.deepEqual([perWorker('w1'), perWorker('w2')], [1, 3], `tick ${tick}`);
    ix.served(new Set(plan.map((a) => groupOf.get(a.taskId)!)));
  }
});

void test('pick: when the shares outgrow the window, each kind of worker gets one a round', () => {
  const ix = new RunnableIndex();
  for (let i = 0; i < 300; i++) ix.update(group(`a${i}`, 'a'));
  for (let i = 0; i < 5; i++) ix.update(group(`g${i}`, 'gpu'));
  const ids = ix.pick([offer(['a'], [], 10), offer(['gpu'], [], 10)], 4).ids;
  assert.deepEqual(ids, ['a0', 'a1', 'g0', 'g1']);
  // Two workers offering the same are one kind: their slots add up, and
  // they do not crowd out the other kind.
  const same = [offer(['a'], [], 1), offer(['a'], [], 1), offer(['a'], [], 1)];
  assert.deepEqual(ix.pick([...same, offer(['gpu'], [], 1)], 2).ids, ['a0', 'g0']);
});

void test('pick: a worker that runs both shapes takes from both by age; the one-shape worker keeps its share', () => {
  const ix = new RunnableIndex();
  for (let i = 0; i < 300; i++) ix.update(group(`a${i}`, 'a'));
  ix.update(group('g', 'gpu'));
  const both = offer(['a', 'gpu'], [], 2);
  const gpuOnly = offer(['gpu'], [], 1);
  // No room beyond the shares: both takes the two oldest (a's), gpuOnly the gpu group.
  assert.deepEqual(ix.pick([both, gpuOnly], 3).ids, ['a0', 'a1', 'g']);
  assert.deepEqual(ix.pick([gpuOnly, both], 2).ids, ['a0', 'g']);
  // Without the gpu-only worker, the gpu group waits its turn in age order.
  let turns = 0;
  while (!ix.pick([both], 2).ids.includes('g')) {
    ix.served(ix.pick([both], 2).ids);
    turns++;
  }
  assert.equal(turns, 150, 'read once the 300 older ones were served');
});

void test('pick: property: bounded, distinct, runnable, and every worker owed its free slots', () => {
  const handlers = ['a', 'b', 'c'];
  const labels = ['x', 'y'];
  const arbOffer = fc.record({
    handlers: fc.subarray(handlers, { minLength: 1 }),
    labels: fc.subarray(labels),
    free: fc.integer({ min: 0, max: 6 }),
  });
  const arbGroup = fc.record({
    handler: fc.constantFrom(...handlers, 'nobody'),
    requires: fc.subarray(labels),
  });
  fc.assert(
    fc.property(
      fc.array(arbOffer, { maxLength: 5 }),
      fc.array(arbGroup, { maxLength: 80 }),
      fc.integer({ min: 1, max: 40 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (ws, gs, max, serve) => {
        const ix = new RunnableIndex();
        const spec = new Map<string, { handler: string; requires: string[] }>();
        gs.forEach((g, i) => {
          ix.update(group(`g${i}`, g.handler, g.requires));
          spec.set(`g${i}`, g);
        });
        // Some groups were served before: the lines are not in submit order.
        const order = [...spec.keys()];
        const served = serve.filter((k) => k < order.length).map((k) => order[k]!);
        ix.served(served);
        const workers = ws.map((w) => offer(w.handlers, w.labels, w.free));
        const runs = (w: Credit, id: string): boolean => {
          const g = spec.get(id)!;
          return w.handlers.has(g.handler) && g.requires.every((l) => w.labels.has(l));
        };
        const free = workers.filter((w) => w.free > 0);
        const runnable = order.filter((id) => free.some((w) => runs(w, id)));
        const { ids, candidates } = ix.pick(workers, max);
        assert.equal(candidates, runnable.length);
        assert.equal(ids.length, Math.min(max, runnable.length), 'the window is filled');
        assert.equal(new Set(ids).size, ids.length);
        for (const id of ids) assert.ok(runnable.includes(id), `${id} is runnable`);
        // The line, least recently served first; the ids come in its order.
        const line = [...order];
        for (const id of served) line.push(...line.splice(line.indexOf(id), 1));
        const rank = new Map(line.map((id, i) => [id, i]));
        ids.slice(1).forEach((id, i) => assert.ok(rank.get(ids[i]!)! < rank.get(id)!));
        // When the shares fit in the window, each worker with free slots has
        // the least recently served groups it can run read, as many as its free slots.
        if (free.reduce((n, w) => n + w.free, 0) <= max) {
          for (const w of free) {
            const owed = line.filter((id) => runs(w, id)).slice(0, w.free);
            for (const id of owed) assert.ok(ids.includes(id), `${id} is read for ${w.free} free`);
          }
        }
        // One worker with free slots: the `max` least recently served, as before.
        if (free.length === 1) {
          assert.deepEqual(ids, line.filter((id) => runnable.includes(id)).slice(0, max));
        }
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
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
  assert.deepEqual(ix.pick([{ ...resumed, free: 1 }], 10).ids, ['g1']);
  // It goes: the group waits again, and pick skips it.
  changes = ix.judge([], 40);
  assert.deepEqual(
    changes.map((c) => [c.groupId, c.waiting?.code, c.waiting?.since]),
    [['g1', 'no_worker', 40]],
  );
  assert.deepEqual(ix.pick([], 10).ids, []);
});

void test('pick: a higher priority is read first across groups, whatever their place in line; equals take turns', () => {
  const idx = new RunnableIndex();
  for (let i = 0; i < 300; i++) idx.update(group(`low${i}`));
  idx.update(group('high', 'a', [], { priority: 5 }));
  idx.update(group('other-shape-high', 'b', [], { priority: 9 }));
  const w = [offer(['a', 'b'], [], 2)];
  // Submitted last, read first: the two high ones, highest first, before any of the 300.
  assert.deepEqual(idx.pick(w, 2).ids.sort(), ['high', 'other-shape-high']);
  idx.served(['high', 'other-shape-high']);
  // Served, they still come first: priority is not a turn (pick lists what it read by stamp).
  const again = idx.pick(w, 3).ids;
  assert.ok(again.includes('high') && again.includes('other-shape-high'), again.join());
  assert.equal(again.length, 3);
  // Among equals, the line: the least recently served first, round robin.
  const lows = new RunnableIndex();
  for (const id of ['l1', 'l2', 'l3']) lows.update(group(id));
  const one = [offer(['a'], [], 1)];
  const order: string[] = [];
  for (let i = 0; i < 6; i++) {
    const [id] = lows.pick(one, 1).ids;
    order.push(id!);
    lows.served([id!]);
  }
  assert.deepEqual(order, ['l1', 'l2', 'l3', 'l1', 'l2', 'l3']);
});
