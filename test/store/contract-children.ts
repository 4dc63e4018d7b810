/**
 * The store contract for reading a tree of groups (issue 14, "seen as a
 * tree"): a group's children in creation order, paged by the last child's
 * id; how many children groups have; only the clients' groups (roots); the
 * live groups split root/child. Part of the one suite in contract.ts, run
 * against every store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveTaskOptions } from '../../src/core/options.js';
import type { ClaimedTask, NewGroup, SpawnOp, Store } from '../../src/store/store.js';
import { type Make, using, claimOne } from './contract-helpers.js';

function group(id: string, inputs: unknown[]): NewGroup {
  return {
    id,
    handler: 'parent',
    policy: 'collectAll',
    idempotencyKey: null,
    open: false,
    options: resolveTaskOptions({ maxAttempts: 1 }),
    inputs,
  };
}

function spawnOp(run: ClaimedTask, key: string, id: string, inputs: unknown[] = [1]): SpawnOp {
  return {
    taskId: run.taskId,
    attempt: run.attempt,
    workerId: run.workerId,
    key,
    group: {
      id,
      handler: 'child',
      policy: 'collectAll',
      options: resolveTaskOptions({}),
      inputs,
    },
    keepChildren: false,
  };
}

/** Every child of `parent`, read `limit` at a time by the `after` cursor. */
async function allChildren(store: Store, parent: string, limit: number): Promise<string[]> {
  const out: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await store.listChildren(parent, {
      limit,
      ...(after === undefined ? {} : { after }),
    });
    assert.ok(page.length <= limit, `a page holds at most ${limit}`);
    out.push(...page.map((g) => g.id));
    if (page.length < limit) return out;
    after = page[page.length - 1]!.id;
  }
  assert.fail('the children did not end');
}

const ids = (gs: { id: string }[]): string[] => gs.map((g) => g.id);

export function childrenRules(make: Make): void {
  void describe('reading the tree (children, roots, live counts)', () => {
    void it(
      "a group's children in creation order, paged by the last child's id, ties of createdAt included; grandchildren are their parent's",
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('root', ['a', 'b'])] });
        const a = await claimOne(store, 2, 'root');
        const b = await claimOne(store, 2, 'root', 'worker-2');
        // Five children in one tick (one createdAt), from two tasks, keys out of id order.
        await store.commitTick({
          now: 3,
          spawns: [
            spawnOp(a, 'k1', 'c-z'),
            spawnOp(b, 'k1', 'c-a'),
            spawnOp(a, 'k2', 'c-m'),
            spawnOp(a, 'k3', 'c-b'),
            spawnOp(b, 'k2', 'c-y'),
          ],
        });
        // Then one more later, and a grandchild under c-z.
        await store.commitTick({ now: 4, spawns: [spawnOp(b, 'k3', 'c-late')] });
        const z = await claimOne(store, 5, 'c-z');
        await store.commitTick({ now: 6, spawns: [spawnOp(z, '#0', 'grand')] });
        const order = ['c-z', 'c-a', 'c-m', 'c-b', 'c-y', 'c-late'];
        for (const limit of [1, 2, 4, 6, 100])
          assert.deepEqual(await allChildren(store, 'root', limit), order, `pages of ${limit}`);
        const page = await store.listChildren('root', { limit: 2, after: 'c-m' });
        assert.deepEqual(ids(page), ['c-b', 'c-y']);
        // Whole views, with their parent.
        assert.equal(page[0]!.state, 'sealed');
        assert.equal(page[0]!.total, 1);
        assert.deepEqual(page[0]!.parent, { groupId: 'root', taskId: a.taskId });
        assert.deepEqual(ids(await store.listChildren('c-z', { limit: 10 })), ['grand']);
        assert.deepEqual(await store.listChildren('grand', { limit: 10 }), []);
        // A cursor that is not a child of the group (unknown, a grandchild, the group itself): nothing.
        for (const after of ['nope', 'grand', 'root'])
          assert.deepEqual(await store.listChildren('root', { limit: 10, after }), [], after);
        assert.deepEqual(await store.listChildren('nope', { limit: 10 }), []);
        // Children of any state are listed: a canceled child stays in its place.
        await store.commitTick({ now: 7, cancels: ['c-a'] });
        assert.deepEqual(await allChildren(store, 'root', 3), order);
      }),
    );

    void it(
      'counts the children of several groups at once (direct children only, any state)',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('p', ['x']), group('q', ['y']), group('lone', ['z'])],
        });
        const p = await claimOne(store, 2, 'p');
        const q = await claimOne(store, 2, 'q');
        await store.commitTick({
          now: 3,
          spawns: [spawnOp(p, '#0', 'p1'), spawnOp(p, '#1', 'p2', []), spawnOp(q, '#0', 'q1')],
        });
        const q1 = await claimOne(store, 4, 'q1');
        await store.commitTick({ now: 5, spawns: [spawnOp(q1, '#0', 'q1a')] });
        await store.commitTick({ now: 6, cancels: ['p1'] });
        const n = await store.countChildren(['p', 'q', 'lone', 'q1', 'nope', 'p']);
        assert.deepEqual([...n.entries()].sort(), [
          ['p', 2],
          ['q', 1],
          ['q1', 1],
        ]);
        assert.equal((await store.countChildren([])).size, 0);
      }),
    );

    void it(
      "lists only the clients' groups (roots) newest first, paged by createdAt; the live groups split root/child",
      using(make, async ({ store }) => {
        assert.deepEqual(await store.countLiveGroups(), { root: 0, child: 0 });
        await store.commitTick({ now: 1, createGroups: [group('r1', ['x', 'y'])] });
        await store.commitTick({ now: 2, createGroups: [group('r2', ['x'])] });
        const t = await claimOne(store, 3, 'r1');
        await store.commitTick({
          now: 4,
          spawns: [spawnOp(t, '#0', 'k1'), spawnOp(t, '#1', 'k2'), spawnOp(t, '#2', 'k3', [])],
        });
        await store.commitTick({ now: 5, createGroups: [group('r3', [])] });
        // Every group, newest first; then the roots only.
        const all = await store.listGroups({ limit: 10 });
        assert.deepEqual(ids(all), ['r3', 'k3', 'k2', 'k1', 'r2', 'r1']);
        assert.deepEqual(ids(await store.listGroups({ limit: 10, roots: true })), [
          'r3',
          'r2',
          'r1',
        ]);
        assert.deepEqual(ids(await store.listGroups({ limit: 1, roots: true, before: 5 })), ['r2']);
        assert.deepEqual(ids(await store.listGroups({ limit: 10, roots: false, before: 5 })), [
          'k3',
          'k2',
          'k1',
          'r2',
          'r1',
        ]);
        // after: exact, where before skips: k1..k3 share a millisecond.
        assert.deepEqual(ids(await store.listGroups({ limit: 2, after: 'r3' })), ['k3', 'k2']);
        assert.deepEqual(ids(await store.listGroups({ limit: 2, after: 'k2' })), ['k1', 'r2']);
        assert.deepEqual(ids(await store.listGroups({ limit: 2, after: 'r2' })), ['r1']);
        assert.deepEqual(ids(await store.listGroups({ limit: 2, roots: true, after: 'r3' })), [
          'r2',
          'r1',
        ]);
        assert.deepEqual(ids(await store.listGroups({ limit: 2, after: 'nope' })), []);
        // Live: r1, r2 (sealed, tasks to do) and k1, k2; r3 and k3 are empty, so done.
        assert.deepEqual(await store.countLiveGroups(), { root: 2, child: 2 });
        await store.commitTick({ now: 6, cancels: ['k1'] });
        assert.deepEqual(await store.countLiveGroups(), { root: 2, child: 1 });
        // Canceling the root ends its live descendants with it.
        await store.commitTick({ now: 7, cancels: ['r1'] });
        assert.deepEqual(await store.countLiveGroups(), { root: 1, child: 0 });
      }),
    );
  });
}
