import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  canRun,
  planDispatch,
  rotate,
  type Assignment,
  type Candidate,
  type WorkerCredit,
} from './dispatch.js';

const SEED = 424_242;
const check = <Ts>(p: fc.IProperty<Ts>) => fc.assert(p, { seed: SEED, numRuns: 400 });

const HANDLERS = ['a', 'b', 'c'];
const LABELS = ['gpu', 'big', 'eu'];

const worker = (
  workerId: string,
  free: number,
  handlers = ['a'],
  labels: string[] = [],
): WorkerCredit => ({ workerId, free, handlers: new Set(handlers), labels: new Set(labels) });
const cand = (taskId: number, groupId: string, handler = 'a', requires: string[] = []) => ({
  taskId,
  groupId,
  handler,
  requires,
});

// Random fleets: unique worker ids, free from -1 (over-committed) to 4.
const workersArb: fc.Arbitrary<WorkerCredit[]> = fc
  .array(
    fc.record({
      free: fc.integer({ min: -1, max: 4 }),
      handlers: fc.subarray(HANDLERS),
      labels: fc.subarray(LABELS),
    }),
    { maxLength: 5 },
  )
  .map((ws) =>
    ws.map((w, i) => ({
      workerId: `w${i}`,
      free: w.free,
      handlers: new Set(w.handlers),
      labels: new Set(w.labels),
    })),
  );
// Random candidate lists: unique task ids across all groups.
const groupsArb: fc.Arbitrary<Candidate[][]> = fc
  .array(
    fc.array(
      fc.record({
        handler: fc.constantFrom(...HANDLERS),
        requires: fc.subarray(LABELS, { maxLength: 2 }),
      }),
      { maxLength: 8 },
    ),
    { maxLength: 5 },
  )
  .map((gs) => {
    let id = 1;
    return gs.map((g, gi) => g.map((c) => ({ taskId: id++, groupId: `g${gi}`, ...c })));
  });

function freeAfter(workers: readonly WorkerCredit[], plan: Assignment[]): Map<string, number> {
  const left = new Map(workers.map((w) => [w.workerId, Math.max(w.free, 0)]));
  for (const a of plan) left.set(a.workerId, left.get(a.workerId)! - 1);
  return left;
}

void test('canRun: needs the handler and every required label', () => {
  const w = worker('w', 1, ['a', 'b'], ['gpu', 'eu']);
  assert.equal(canRun(w, cand(1, 'g', 'a')), true);
  assert.equal(canRun(w, cand(1, 'g', 'b', ['gpu', 'eu'])), true);
  assert.equal(canRun(w, cand(1, 'g', 'c')), false);
  assert.equal(canRun(w, cand(1, 'g', 'a', ['gpu', 'big'])), false);
});

void test('planDispatch: nothing to give when no worker has a free slot', () => {
  const groups = [[cand(1, 'g'), cand(2, 'g')]];
  assert.deepEqual(planDispatch(groups, []), []);
  assert.deepEqual(planDispatch(groups, [worker('w', 0), worker('v', -2)]), []);
  assert.deepEqual(planDispatch([], [worker('w', 3)]), []);
});

void test('planDispatch: groups are served round robin, one task per group per round', () => {
  const g1 = [cand(1, 'g1'), cand(2, 'g1'), cand(3, 'g1'), cand(4, 'g1')];
  const g2 = [cand(11, 'g2')];
  const g3 = [cand(21, 'g3'), cand(22, 'g3')];
  const plan = planDispatch([g1, g2, g3], [worker('w', 5)]);
  assert.deepEqual(
    plan.map((a) => a.taskId),
    [1, 11, 21, 2, 22],
  );
});

void test('planDispatch: the worker with the most free slots gets the task; ties go to the first', () => {
  const ws = [worker('w1', 1), worker('w2', 3), worker('w3', 3)];
  const plan = planDispatch([[cand(1, 'g'), cand(2, 'g'), cand(3, 'g'), cand(4, 'g')]], ws);
  assert.deepEqual(plan, [
    { taskId: 1, workerId: 'w2' },
    { taskId: 2, workerId: 'w3' },
    { taskId: 3, workerId: 'w2' },
    { taskId: 4, workerId: 'w3' },
  ]);
});

void test('planDispatch: a task to avoid a worker goes elsewhere when another can run it, else there', () => {
  const ws = [worker('w1', 5), worker('w2', 1), worker('w3', 1, ['b'])];
  const plan = planDispatch(
    [[{ ...cand(1, 'g'), avoid: 'w1' }, { ...cand(2, 'g'), avoid: 'w1' }, cand(3, 'g')]],
    ws,
  );
  // w1 has the most free slots, yet task 1 goes to w2 (w3 cannot run it); w2 is full for task 2.
  assert.deepEqual(plan, [
    { taskId: 1, workerId: 'w2' },
    { taskId: 2, workerId: 'w1' },
    { taskId: 3, workerId: 'w1' },
  ]);
});

void test('planDispatch: a task no free worker can run is skipped, later ones still go', () => {
  const ws = [worker('cpu', 2, ['a']), worker('gpu', 1, ['a'], ['gpu'])];
  const g = [
    cand(1, 'g', 'a', ['gpu']),
    cand(2, 'g', 'a', ['gpu']),
    cand(3, 'g', 'b'),
    cand(4, 'g'),
  ];
  assert.deepEqual(planDispatch([g], ws), [
    { taskId: 1, workerId: 'gpu' },
    { taskId: 4, workerId: 'cpu' },
  ]);
});

void test('planDispatch: respects credit, capability, uniqueness and does not change its input', () => {
  check(
    fc.property(groupsArb, workersArb, (groups, workers) => {
      const before = structuredClone({ groups, workers });
      const plan = planDispatch(groups, workers);
      assert.deepEqual({ groups, workers }, before, 'input unchanged');

      const byTask = new Map(groups.flat().map((c) => [c.taskId, c]));
      const byWorker = new Map(workers.map((w) => [w.workerId, w]));
      const seen = new Set<number>();
      for (const a of plan) {
        assert.ok(!seen.has(a.taskId), `task ${a.taskId} assigned twice`);
        seen.add(a.taskId);
        const c = byTask.get(a.taskId);
        const w = byWorker.get(a.workerId);
        assert.ok(c && w, 'assignment names a known task and worker');
        assert.ok(canRun(w, c), `${a.workerId} can run task ${a.taskId}`);
      }
      for (const [id, left] of freeAfter(workers, plan)) {
        assert.ok(left >= 0, `${id} over its free slots`);
      }
    }),
  );
});

void test('planDispatch: maximal: a task is left only if no worker able to run it has a slot left', () => {
  check(
    fc.property(groupsArb, workersArb, (groups, workers) => {
      const plan = planDispatch(groups, workers);
      const assigned = new Set(plan.map((a) => a.taskId));
      const left = freeAfter(workers, plan);
      for (const c of groups.flat()) {
        if (assigned.has(c.taskId)) continue;
        for (const w of workers) {
          if (canRun(w, c)) {
            assert.equal(left.get(w.workerId), 0, `task ${c.taskId} left while ${w.workerId} free`);
          }
        }
      }
    }),
  );
});

void test('planDispatch: within a group, assignments follow the given order', () => {
  check(
    fc.property(groupsArb, workersArb, (groups, workers) => {
      const plan = planDispatch(groups, workers);
      for (const g of groups) {
        const index = new Map(g.map((c, i) => [c.taskId, i]));
        const order = plan.filter((a) => index.has(a.taskId)).map((a) => index.get(a.taskId)!);
        assert.deepEqual(
          order,
          [...order].sort((x, y) => x - y),
        );
      }
    }),
  );
});

// A fleet that can run everything: only credit limits the plan.
const uniform = fc
  .record({
    frees: fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 }),
    sizes: fc.array(fc.nat(12), { minLength: 1, maxLength: 6 }),
  })
  .map(({ frees, sizes }) => {
    let id = 1;
    return {
      workers: frees.map((f, i) => worker(`w${i}`, f)),
      groups: sizes.map((n, gi) => Array.from({ length: n }, () => cand(id++, `g${gi}`))),
    };
  });

void test('planDispatch: when every worker can run every task, each group gets a prefix', () => {
  check(
    fc.property(uniform, ({ workers, groups }) => {
      const plan = planDispatch(groups, workers);
      const ids = new Set(plan.map((a) => a.taskId));
      const totalFree = workers.reduce((s, w) => s + w.free, 0);
      assert.equal(plan.length, Math.min(totalFree, groups.flat().length));
      for (const g of groups) {
        const n = g.filter((c) => ids.has(c.taskId)).length;
        assert.deepEqual(
          g.slice(0, n).map((c) => ids.has(c.taskId)),
          Array<boolean>(n).fill(true),
        );
      }
    }),
  );
});

void test('planDispatch: fair: groups with plenty of tasks get within 1 of each other, earlier first', () => {
  check(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 6 }), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: 1, max: 6 }),
      (frees, nGroups) => {
        const workers = frees.map((f, i) => worker(`w${i}`, f));
        const totalFree = frees.reduce((s, f) => s + f, 0);
        let id = 1;
        const groups = Array.from({ length: nGroups }, (_, gi) =>
          Array.from({ length: totalFree + 1 }, () => cand(id++, `g${gi}`)),
        );
        const plan = planDispatch(groups, workers);
        const counts = groups.map((g) => {
          const mine = new Set(g.map((c) => c.taskId));
          return plan.filter((a) => mine.has(a.taskId)).length;
        });
        assert.equal(
          counts.reduce((s, n) => s + n, 0),
          totalFree,
        );
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `${counts}`);
        for (let i = 1; i < counts.length; i++)
          assert.ok(counts[i - 1]! >= counts[i]!, `${counts}`);
      },
    ),
  );
});

void test('rotate: examples', () => {
  assert.deepEqual(rotate([], 3), []);
  assert.deepEqual(rotate([1, 2, 3], 0), [1, 2, 3]);
  assert.deepEqual(rotate([1, 2, 3], 1), [2, 3, 1]);
  assert.deepEqual(rotate([1, 2, 3], 5), [3, 1, 2]);
  assert.deepEqual(rotate([1, 2, 3], -1), [3, 1, 2]);
  assert.deepEqual(rotate([1, 2, 3], -7), [3, 1, 2]);
});

void test('rotate: a rotation starting at k mod n, a new array, input unchanged', () => {
  check(
    fc.property(fc.array(fc.integer()), fc.integer({ min: -1000, max: 1000 }), (list, start) => {
      const copy = [...list];
      const r = rotate(list, start);
      assert.deepEqual(list, copy);
      assert.notEqual(r, list);
      assert.equal(r.length, list.length);
      const n = list.length;
      for (let i = 0; i < n; i++) {
        assert.equal(r[i], list[(((start + i) % n) + n) % n]);
      }
      assert.deepEqual(
        [...r].sort((a, b) => a - b),
        [...list].sort((a, b) => a - b),
      );
    }),
  );
});
