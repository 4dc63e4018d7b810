/**
 * The store contract for the adds of running tasks (ctx.add, the taskAdds
 * op; docs/design.md, "Trees: ctx.add"): fenced like a report, keyed by
 * (task, key) across attempts, counters moved in the same tick, and a group
 * that cannot be done while its adder runs. Part of the one suite in
 * contract.ts, run against every store; kept apart only for length.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveTaskOptions } from '../../src/core/options.js';
import type { NewGroup, Store, TaskAddOp, TaskAddOutcome } from '../../src/store/store.js';
import { type Make, using, mustGroup, claimOne } from './contract-helpers.js';

const W1 = 'worker-1';
const W2 = 'worker-2';

function group(id: string, inputs: unknown[], open = false): NewGroup {
  return {
    id,
    handler: 'crawl',
    policy: 'collectAll',
    idempotencyKey: null,
    open,
    options: resolveTaskOptions({}),
    inputs,
  };
}

function addOp(
  run: { taskId: number; attempt: number; workerId: string },
  key: string,
  inputs: unknown[],
): TaskAddOp {
  return { taskId: run.taskId, attempt: run.attempt, workerId: run.workerId, key, inputs };
}

async function add(store: Store, now: number, op: TaskAddOp): Promise<TaskAddOutcome> {
  const out = await store.commitTick({ now, taskAdds: [op] });
  assert.equal(out.taskAdds.length, 1);
  return out.taskAdds[0]!;
}

/** The group's task indexes in input order (0..total-1 when nothing is missing). */
async function indexesOf(store: Store, groupId: string): Promise<number[]> {
  return (await store.listTasks(groupId, { limit: 1000 })).map((t) => t.index);
}

export function taskAddRules(make: Make): void {
  void describe('adds of running tasks (taskAdds)', () => {
    void it(
      'a fenced add to a sealed group: the next indexes, pending at once, counters in the same tick',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root', 'other'])] });
        const c = await claimOne(store, 2, 'g');
        assert.equal((await mustGroup(store, 'g')).state, 'sealed');
        const out = await store.commitTick({
          now: 3,
          taskAdds: [addOp(c, '#0', [{ url: 'a' }, { url: 'b' }, { url: 'c' }])],
        });
        assert.deepEqual(out.taskAdds, [{ status: 'added', first: 2, count: 3 }]);
        const [changed] = out.changedGroups;
        assert.ok(changed);
        assert.deepEqual(
          [changed.id, changed.state, changed.total, changed.pending, changed.running],
          ['g', 'sealed', 5, 4, 1],
        );
        assert.deepEqual(await mustGroup(store, 'g'), changed);
        const tasks = await store.listTasks('g', { limit: 10 });
        assert.deepEqual(
          tasks.map((t) => [t.index, t.state]),
          [
            [0, 'running'],
            [1, 'pending'],
            [2, 'pending'],
            [3, 'pending'],
            [4, 'pending'],
          ],
        );
        // The new tasks run like any other: claimed with their input and the group's handler.
        const ready = await store.readyTasks(['g'], 4, 10);
        assert.equal(ready.length, 4);
        const claimed = await store.commitTick({
          now: 4,
          claims: ready.map((r) => ({ taskId: r.taskId, workerId: W2 })),
        });
        assert.deepEqual(
          claimed.claimed.map((x) => [x.index, x.input, x.handler]),
          [
            [1, 'other', 'crawl'],
            [2, { url: 'a' }, 'crawl'],
            [3, { url: 'b' }, 'crawl'],
            [4, { url: 'c' }, 'crawl'],
          ],
        );
        assert.deepEqual(await indexesOf(store, 'g'), [0, 1, 2, 3, 4]);
      }),
    );

    void it(
      'an open group takes them too, and a client add follows at the index after them',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'], true)] });
        const c = await claimOne(store, 2, 'g');
        const out = await store.commitTick({
          now: 3,
          addTasks: [{ groupId: 'g', offset: 1, inputs: ['client'] }],
          taskAdds: [addOp(c, 'k', ['child'])],
        });
        assert.equal(out.addTasks[0]?.status, 'added');
        assert.deepEqual(out.taskAdds, [{ status: 'added', first: 2, count: 1 }]);
        const out2 = await store.commitTick({
          now: 4,
          addTasks: [{ groupId: 'g', offset: 3, inputs: ['client 2'] }],
        });
        assert.equal(out2.addTasks[0]?.status, 'added');
        assert.equal((await mustGroup(store, 'g')).total, 4);
      }),
    );

    void it(
      'a sealed group still refuses a client add in the tick that takes a task add',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const c = await claimOne(store, 2, 'g');
        const out = await store.commitTick({
          now: 3,
          addTasks: [{ groupId: 'g', offset: null, inputs: ['client'] }],
          taskAdds: [addOp(c, '#0', ['child'])],
        });
        assert.equal(out.addTasks[0]?.status, 'sealed');
        assert.deepEqual(out.taskAdds, [{ status: 'added', first: 1, count: 1 }]);
        assert.equal((await mustGroup(store, 'g')).total, 2);
      }),
    );

    void it(
      'fenced: stale for another attempt, another worker, a pending or unknown task; already_final for a final one',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['a', 'b'])] });
        const c = await claimOne(store, 2, 'g');
        const pending = (await store.listTasks('g', { limit: 10 }))[1]!;
        for (const op of [
          { ...addOp(c, '#0', ['x']), attempt: 0 },
          { ...addOp(c, '#0', ['x']), attempt: 2 },
          { ...addOp(c, '#0', ['x']), workerId: W2 },
          { ...addOp(c, '#0', ['x']), taskId: pending.taskId, attempt: 0 },
          { ...addOp(c, '#0', ['x']), taskId: 987_654 },
        ]) {
          assert.deepEqual(await add(store, 3, op), { status: 'stale' }, JSON.stringify(op));
        }
        assert.equal((await mustGroup(store, 'g')).total, 2, 'nothing added');
        await store.commitTick({
          now: 4,
          commits: [{ taskId: c.taskId, attempt: 1, workerId: W1, value: 1 }],
        });
        assert.deepEqual(await add(store, 5, addOp(c, '#0', ['x'])), { status: 'already_final' });
        const g = await mustGroup(store, 'g');
        assert.deepEqual([g.total, g.succeeded, g.pending], [2, 1, 1]);
      }),
    );

    void it(
      'a stale attempt is refused even for a key its task used: only the current attempt adds',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const first = await claimOne(store, 2, 'g');
        assert.equal((await add(store, 3, addOp(first, '#0', ['a']))).status, 'added');
        await store.commitTick({
          now: 4,
          requeues: [{ ...first, nodeFailure: true, runAt: 4 }],
        });
        const second = await claimOne(store, 5, 'g', W2);
        assert.equal(second.attempt, 2);
        // The old attempt's late adds count for nothing, new key or old.
        assert.deepEqual(await add(store, 6, addOp(first, '#0', ['a'])), { status: 'stale' });
        assert.deepEqual(await add(store, 6, addOp(first, '#1', ['b'])), { status: 'stale' });
        assert.equal((await mustGroup(store, 'g')).total, 2);
      }),
    );

    void it(
      'idempotent across attempts: a repeated key answers the first add and adds nothing; a new key adds',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const first = await claimOne(store, 2, 'g');
        assert.deepEqual(await add(store, 3, addOp(first, '#0', ['a', 'b'])), {
          status: 'added',
          first: 1,
          count: 2,
        });
        // The worker dies after the add committed, before the result: the task runs again.
        await store.commitTick({ now: 4, requeues: [{ ...first, nodeFailure: true, runAt: 4 }] });
        const second = await claimOne(store, 5, 'g', W2);
        assert.equal(second.taskId, first.taskId);
        const out = await store.commitTick({
          now: 6,
          taskAdds: [addOp(second, '#0', ['a', 'b']), addOp(second, '#1', ['c'])],
        });
        assert.deepEqual(out.taskAdds, [
          { status: 'duplicate', first: 1, count: 2 },
          { status: 'added', first: 3, count: 1 },
        ]);
        const g = await mustGroup(store, 'g');
        assert.deepEqual([g.total, g.pending, g.running], [4, 3, 1]);
        // The same key under another task is another add.
        const other = await claimOne(store, 7, 'g');
        assert.equal(other.index, 1);
        assert.deepEqual(await add(store, 8, addOp(other, '#0', ['d'])), {
          status: 'added',
          first: 4,
          count: 1,
        });
      }),
    );

    void it(
      'a repeated key with another count is a conflict: the first add stands, nothing is added',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const c = await claimOne(store, 2, 'g');
        const out = await store.commitTick({
          now: 3,
          taskAdds: [
            addOp(c, 'page-7', ['a', 'b']),
            addOp(c, 'page-7', ['a', 'b', 'c']),
            addOp(c, 'page-7', ['z', 'y']),
          ],
        });
        assert.deepEqual(out.taskAdds, [
          { status: 'added', first: 1, count: 2 },
          { status: 'conflict', first: 1, count: 2 },
          // Same count, other inputs: the key is what counts (the inputs are not compared).
          { status: 'duplicate', first: 1, count: 2 },
        ]);
        assert.equal((await mustGroup(store, 'g')).total, 3);
      }),
    );

    void it(
      'an empty add is keyed like any other: first is the group size then, count 0, nothing changes',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const c = await claimOne(store, 2, 'g');
        const before = await mustGroup(store, 'g');
        const out = await store.commitTick({ now: 3, taskAdds: [addOp(c, '#0', [])] });
        assert.deepEqual(out.taskAdds, [{ status: 'added', first: 1, count: 0 }]);
        assert.deepEqual(out.changedGroups, []);
        assert.deepEqual(await mustGroup(store, 'g'), before);
        assert.deepEqual(await add(store, 4, addOp(c, '#0', ['a'])), {
          status: 'conflict',
          first: 1,
          count: 0,
        });
      }),
    );

    void it(
      'a canceled group refuses: its running task is final (already_final)',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['a']), group('h', ['b'])] });
        const a = await claimOne(store, 2, 'g');
        const b = await claimOne(store, 2, 'h');
        // Canceled in the same tick (cancels apply first) and in an earlier one.
        const out = await store.commitTick({
          now: 3,
          cancels: ['g'],
          taskAdds: [addOp(a, '#0', ['x'])],
        });
        assert.deepEqual(out.taskAdds, [{ status: 'already_final' }]);
        await store.commitTick({ now: 4, cancels: ['h'] });
        assert.deepEqual(await add(store, 5, addOp(b, '#0', ['x'])), { status: 'already_final' });
        for (const id of ['g', 'h']) {
          const g = await mustGroup(store, id);
          assert.deepEqual([g.state, g.total, g.canceled], ['canceled', 1, 1]);
        }
      }),
    );

    void it(
      'the group is not done until the adder ends: an add and its result in one tick apply in that order',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const c = await claimOne(store, 2, 'g');
        const out = await store.commitTick({
          now: 3,
          commits: [{ taskId: c.taskId, attempt: 1, workerId: W1, value: 'root done' }],
          taskAdds: [addOp(c, '#0', ['a', 'b'])],
        });
        assert.deepEqual(out.taskAdds, [{ status: 'added', first: 1, count: 2 }]);
        assert.deepEqual(out.commits, ['applied']);
        let g = await mustGroup(store, 'g');
        assert.deepEqual([g.state, g.total, g.succeeded, g.pending], ['sealed', 3, 1, 2]);
        for (let i = 0; i < 2; i++) {
          const child = await claimOne(store, 4 + i, 'g');
          const done = await store.commitTick({
            now: 4 + i,
            commits: [{ taskId: child.taskId, attempt: 1, workerId: W1, value: i }],
          });
          g = await mustGroup(store, 'g');
          assert.equal(g.state, i === 0 ? 'sealed' : 'done');
          assert.equal(done.changedGroups[0]?.state, g.state);
        }
        assert.equal(g.finishedAt, 5);
      }),
    );

    void it(
      'the keys survive a restart: a repeat after a reopen adds nothing',
      using(make, async (h) => {
        await h.store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const c = await claimOne(h.store, 2, 'g');
        assert.equal((await add(h.store, 3, addOp(c, '#0', ['a']))).status, 'added');
        const s2 = await h.reopen();
        assert.deepEqual(await add(s2, 4, addOp(c, '#0', ['a'])), {
          status: 'duplicate',
          first: 1,
          count: 1,
        });
        assert.equal((await mustGroup(s2, 'g')).total, 2);
      }),
    );
  });
}
