/**
 * The store contract for what the index of runnable work and the schedule
 * timeout need (docs/design.md, "Dispatch" and "Why a group waits"):
 * pendingGroups, and the scheduleTimeouts op. Part of the one suite in
 * contract.ts, run against every store; kept apart only for length.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveTaskOptions } from '../../src/core/options.js';
import type { GroupPolicy, TaskError } from '../../src/core/types.js';
import type { NewGroup, Store } from '../../src/store/store.js';
import { type Make, using } from './contract-helpers.js';

const W = 'worker-1';
const ERR: TaskError = { kind: 'unschedulable', message: 'no worker offers handler "sqaure"' };

function group(
  id: string,
  n: number,
  extra: { policy?: GroupPolicy; open?: boolean; requires?: string[] } = {},
): NewGroup {
  return {
    id,
    handler: 'square',
    policy: extra.policy ?? 'collectAll',
    idempotencyKey: null,
    open: extra.open ?? false,
    options: resolveTaskOptions({ requires: extra.requires ?? [], scheduleTimeoutMs: 100 }),
    inputs: Array.from({ length: n }, (_, i) => i),
  };
}

/** Claims the first `n` ready tasks of the group for W. */
async function claim(store: Store, now: number, groupId: string, n: number): Promise<void> {
  const ready = await store.readyTasks([groupId], now, n);
  const out = await store.commitTick({
    now,
    claims: ready.map((r) => ({ taskId: r.taskId, workerId: W })),
  });
  assert.equal(out.claimed.length, n);
}

export function waitingRules(make: Make): void {
  void describe('pending groups and schedule timeouts', () => {
    void it(
      'pendingGroups: every live group with pending tasks, oldest first, whole (options too)',
      using(make, async ({ store, reopen }) => {
        await store.commitTick({ now: 1, createGroups: [group('a', 2, { requires: ['gpu'] })] });
        await store.commitTick({ now: 2, createGroups: [group('b', 1), group('empty', 0)] });
        await store.commitTick({ now: 3, createGroups: [group('c', 1)] });
        await store.commitTick({ now: 4, cancels: ['c'] });
        await claim(store, 5, 'b', 1);
        const got = await store.pendingGroups();
        assert.deepEqual(
          got.map((g) => g.id),
          ['a'],
        );
        assert.deepEqual(got[0]!.options.requires, ['gpu']);
        assert.equal(got[0]!.options.scheduleTimeoutMs, 100);
        assert.equal(got[0]!.pending, 2);
        // Counted from the store, so a restarted coordinator loads the same.
        const again = await reopen();
        assert.deepEqual(await again.pendingGroups(), got);
      }),
    );

    void it(
      'scheduleTimeouts: every pending task fails for good with the error, in input order; running ones go on',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', 4)] });
        await claim(store, 2, 'g', 1);
        const out = await store.commitTick({
          now: 3,
          scheduleTimeouts: [
            { groupId: 'g', error: ERR },
            { groupId: 'missing', error: ERR },
          ],
        });
        assert.deepEqual(out.scheduleTimeouts, [3, 0]);
        assert.deepEqual(out.revoked, []);
        const g = await store.getGroup('g');
        assert.ok(g);
        assert.deepEqual([g.state, g.pending, g.running, g.failed], ['sealed', 0, 1, 3]);
        assert.deepEqual(
          out.changedGroups.map((c) => [c.id, c.failed]),
          [['g', 3]],
        );
        const tasks = await store.listTasks('g', { limit: 10 });
        assert.deepEqual(
          tasks.map((t) => [t.state, t.error?.kind ?? null]),
          [
            ['running', null],
            ['failed', 'unschedulable'],
            ['failed', 'unschedulable'],
            ['failed', 'unschedulable'],
          ],
        );
        assert.equal(tasks[1]!.error?.message, ERR.message);
        const finished = await store.finishedTasks('g', 0, 10);
        assert.deepEqual(
          finished.map((t) => t.index),
          [1, 2, 3],
        );
        assert.deepEqual(await store.pendingGroups(), []);
        // Again: nothing pending, nothing happens.
        const twice = await store.commitTick({
          now: 4,
          scheduleTimeouts: [{ groupId: 'g', error: ERR }],
        });
        assert.deepEqual(twice.scheduleTimeouts, [0]);
        assert.deepEqual(twice.changedGroups, []);
      }),
    );

    void it(
      'scheduleTimeouts: a sealed group with nothing running is done; failFast cancels the running rest',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('sealed', 2), group('ff', 3, { policy: 'failFast', open: true })],
        });
        await claim(store, 2, 'ff', 1);
        const out = await store.commitTick({
          now: 3,
          scheduleTimeouts: [
            { groupId: 'sealed', error: ERR },
            { groupId: 'ff', error: ERR },
          ],
        });
        assert.deepEqual(out.scheduleTimeouts, [2, 2]);
        const sealed = await store.getGroup('sealed');
        assert.deepEqual([sealed?.state, sealed?.failed, sealed?.finishedAt], ['done', 2, 3]);
        const ff = await store.getGroup('ff');
        assert.deepEqual([ff?.state, ff?.failed, ff?.canceled, ff?.running], ['done', 2, 1, 0]);
        assert.equal(out.revoked.length, 1);
        assert.equal(out.revoked[0]!.workerId, W);
      }),
    );

    void it(
      'scheduleTimeouts: a canceled group is left as it is',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', 2)] });
        await store.commitTick({ now: 2, cancels: ['g'] });
        const out = await store.commitTick({
          now: 3,
          scheduleTimeouts: [{ groupId: 'g', error: ERR }],
        });
        assert.deepEqual(out.scheduleTimeouts, [0]);
        const g = await store.getGroup('g');
        assert.deepEqual([g?.state, g?.canceled, g?.failed], ['canceled', 2, 0]);
      }),
    );
  });
}
