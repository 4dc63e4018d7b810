/**
 * The store contract for the child groups of running tasks (ctx.spawn, the
 * spawns op; docs/design.md, "Trees: ctx.spawn"): fenced like a report,
 * keyed by (task, key) across attempts, the parent recorded, a cancel that
 * cascades down the tree, and a final failure that ends the children it did
 * not keep. Part of the one suite in contract.ts, run against every store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveTaskOptions } from '../../src/core/options.js';
import type { NewGroup, SpawnOp, SpawnOutcome, Store } from '../../src/store/store.js';
import { type Make, using, mustGroup, claimOne } from './contract-helpers.js';

const W1 = 'worker-1';
const W2 = 'worker-2';

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

function spawnOp(
  run: { taskId: number; attempt: number; workerId: string },
  key: string,
  id: string,
  inputs: unknown[],
  more: { handler?: string; keepChildren?: boolean } = {},
): SpawnOp {
  return {
    taskId: run.taskId,
    attempt: run.attempt,
    workerId: run.workerId,
    key,
    group: {
      id,
      handler: more.handler ?? 'child',
      policy: 'collectAll',
      options: resolveTaskOptions({}),
      inputs,
    },
    keepChildren: more.keepChildren ?? false,
  };
}

async function spawn(store: Store, now: number, op: SpawnOp): Promise<SpawnOutcome> {
  const out = await store.commitTick({ now, spawns: [op] });
  assert.equal(out.spawns.length, 1);
  return out.spawns[0]!;
}

const statusOf = (o: SpawnOutcome): string => o.status;
const groupIdOf = (o: SpawnOutcome): string | undefined => ('group' in o ? o.group.id : undefined);

export function spawnRules(make: Make): void {
  void describe('child groups of running tasks (spawns)', () => {
    void it(
      'a fenced spawn: a sealed child with its tasks pending, the parent recorded; a repeat of the key is that group',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const c = await claimOne(store, 2, 'g');
        const out = await spawn(store, 3, spawnOp(c, '#0', 'c1', [1, 2, 3]));
        assert.equal(out.status, 'created');
        const child = await mustGroup(store, 'c1');
        assert.equal(child.state, 'sealed');
        assert.equal(child.handler, 'child');
        assert.equal(child.total, 3);
        assert.equal(child.pending, 3);
        assert.equal(child.idempotencyKey, null);
        assert.deepEqual(child.parent, { groupId: 'g', taskId: c.taskId });
        assert.equal((await mustGroup(store, 'g')).parent, null);
        // The same key again (another id offered): the first group, nothing new.
        const again = await spawn(store, 4, spawnOp(c, '#0', 'c1-again', [1, 2, 3]));
        assert.equal(again.status, 'existing');
        assert.equal(groupIdOf(again), 'c1');
        assert.equal(await store.getGroup('c1-again'), null);
        // Another handler under the key: a conflict, nothing new.
        const other = await spawn(store, 5, spawnOp(c, '#0', 'c1-x', [1], { handler: 'x' }));
        assert.equal(other.status, 'conflict');
        assert.equal(groupIdOf(other), 'c1');
        // Another key: another group. Both in one tick: the second sees the first.
        const two = await store.commitTick({
          now: 6,
          spawns: [spawnOp(c, 'mine', 'c2', []), spawnOp(c, 'mine', 'c3', [])],
        });
        assert.deepEqual(two.spawns.map(statusOf), ['created', 'existing']);
        assert.deepEqual(two.spawns.map(groupIdOf), ['c2', 'c2']);
        // An empty child is done at once.
        assert.equal((await mustGroup(store, 'c2')).state, 'done');
      }),
    );

    void it(
      "fenced across attempts: a stale attempt creates nothing; the next attempt finds the first attempt's group under the key",
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['root'])] });
        const c1 = await claimOne(store, 2, 'g');
        assert.equal((await spawn(store, 3, spawnOp(c1, '#0', 'first', [1]))).status, 'created');
        // The worker dies: the run goes back to pending, and runs again elsewhere.
        const requeue = {
          taskId: c1.taskId,
          attempt: 1,
          workerId: W1,
          nodeFailure: true,
          runAt: 0,
        };
        await store.commitTick({ now: 4, requeues: [requeue] });
        assert.equal((await spawn(store, 5, spawnOp(c1, '#1', 'nope', [1]))).status, 'stale');
        assert.equal(await store.getGroup('nope'), null);
        const c2 = await claimOne(store, 6, 'g', W2);
        assert.equal(c2.attempt, 2);
        // The old attempt, still talking: stale, even with the new attempt running.
        assert.equal((await spawn(store, 7, spawnOp(c1, '#0', 'old', [1]))).status, 'stale');
        const again = await spawn(store, 8, spawnOp(c2, '#0', 'second', [1]));
        assert.equal(again.status, 'existing');
        assert.equal(groupIdOf(again), 'first');
        assert.equal(await store.getGroup('second'), null);
        // A task that is final spawns nothing.
        await store.commitTick({
          now: 9,
          commits: [{ taskId: c2.taskId, attempt: 2, workerId: W2, value: 1 }],
        });
        const late = await spawn(store, 10, spawnOp(c2, '#5', 'late', [1]));
        assert.equal(late.status, 'already_final');
        assert.equal(await store.getGroup('late'), null);
      }),
    );

    void it(
      'a cancel cascades through three levels in the same tick: every live descendant canceled, its running tasks revoked',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('root', ['r'])] });
        const r = await claimOne(store, 2, 'root');
        await spawn(store, 3, spawnOp(r, '#0', 'child', [1, 2]));
        const c = await claimOne(store, 4, 'child');
        await spawn(store, 5, spawnOp(c, '#0', 'grandchild', [1, 2]));
        const gc = await claimOne(store, 6, 'grandchild', W2);
        const out = await store.commitTick({ now: 7, cancels: ['root'] });
        const [o] = out.cancels;
        assert.ok(o && o.status === 'canceled');
        assert.equal(o.changed, true);
        assert.equal(o.descendants, 2);
        for (const id of ['root', 'child', 'grandchild']) {
          const g = await mustGroup(store, id);
          assert.equal(g.state, 'canceled', id);
          assert.equal(g.pending + g.running, 0, id);
        }
        const revoked = out.revoked.map((x) => x.taskId).sort((a, b) => a - b);
        assert.deepEqual(
          revoked,
          [r.taskId, c.taskId, gc.taskId].sort((a, b) => a - b),
        );
        const changed = new Set(out.changedGroups.map((g) => g.id));
        assert.deepEqual([...changed].sort(), ['child', 'grandchild', 'root']);
        // Again: nothing left to cancel.
        const twice = await store.commitTick({ now: 8, cancels: ['root'] });
        assert.deepEqual(twice.cancels, [
          {
            status: 'canceled',
            group: await mustGroup(store, 'root'),
            changed: false,
            descendants: 0,
          },
        ]);
      }),
    );

    void it(
      'canceling a child cancels its own descendants, not its parent',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('root', ['r'])] });
        const r = await claimOne(store, 2, 'root');
        await spawn(store, 3, spawnOp(r, '#0', 'child', [1]));
        const c = await claimOne(store, 4, 'child');
        await spawn(store, 5, spawnOp(c, '#0', 'grandchild', [1]));
        const out = await store.commitTick({ now: 6, cancels: ['child'] });
        assert.ok(out.cancels[0]?.status === 'canceled' && out.cancels[0].descendants === 1);
        assert.equal((await mustGroup(store, 'grandchild')).state, 'canceled');
        const root = await mustGroup(store, 'root');
        assert.equal(root.state, 'sealed');
        assert.equal(root.running, 1);
      }),
    );

    void it(
      'a parent that fails for good cancels the children it did not keep (and theirs); a retry does not',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('root', ['r'])] });
        const r = await claimOne(store, 2, 'root');
        await store.commitTick({
          now: 3,
          spawns: [
            spawnOp(r, '#0', 'dropped', [1]),
            spawnOp(r, '#1', 'kept', [1], { keepChildren: true }),
          ],
        });
        const d = await claimOne(store, 4, 'dropped');
        await spawn(store, 5, spawnOp(d, '#0', 'below', [1]));
        const error = { kind: 'permanent' as const, message: 'boom' };
        const out = await store.commitTick({
          now: 6,
          failures: [
            {
              taskId: r.taskId,
              attempt: 1,
              workerId: W1,
              error,
              retryAt: null,
              nodeFailure: false,
            },
          ],
        });
        assert.deepEqual(out.failures, ['applied']);
        assert.equal((await mustGroup(store, 'root')).state, 'done');
        assert.equal((await mustGroup(store, 'dropped')).state, 'canceled');
        assert.equal((await mustGroup(store, 'below')).state, 'canceled');
        assert.equal((await mustGroup(store, 'kept')).state, 'sealed');
        assert.deepEqual(
          out.revoked.map((x) => x.taskId),
          [d.taskId],
        );
      }),
    );

    void it(
      'failFast: the siblings it cancels end the children they did not keep (and theirs)',
      using(make, async ({ store }) => {
        const ff = { ...group('root', ['a', 'b']), policy: 'failFast' as const };
        await store.commitTick({ now: 1, createGroups: [ff] });
        const a = await claimOne(store, 2, 'root');
        const b = await claimOne(store, 2, 'root', W2);
        await store.commitTick({
          now: 3,
          spawns: [
            spawnOp(a, '#0', 'a-child', [1]),
            spawnOp(a, '#1', 'a-kept', [1], { keepChildren: true }),
          ],
        });
        const ac = await claimOne(store, 4, 'a-child');
        await spawn(store, 5, spawnOp(ac, '#0', 'a-grandchild', [1]));
        const error = { kind: 'permanent' as const, message: 'boom' };
        const out = await store.commitTick({
          now: 6,
          failures: [
            {
              taskId: b.taskId,
              attempt: 1,
              workerId: W2,
              error,
              retryAt: null,
              nodeFailure: false,
            },
          ],
        });
        assert.deepEqual(out.failures, ['applied']);
        assert.equal((await mustGroup(store, 'root')).state, 'done');
        assert.equal((await mustGroup(store, 'a-child')).state, 'canceled');
        assert.equal((await mustGroup(store, 'a-grandchild')).state, 'canceled');
        assert.equal((await mustGroup(store, 'a-kept')).state, 'sealed');
        const revoked = out.revoked.map((x) => x.taskId).sort((x, y) => x - y);
        assert.deepEqual(
          revoked,
          [a.taskId, ac.taskId].sort((x, y) => x - y),
        );
      }),
    );
  });
}
