/**
 * The store contract: every Store implementation runs this suite (see
 * sqlite.test.ts and postgres.test.ts here). It checks the rules written in
 * src/store/store.ts, one `it` per rule, and ends with a property test that
 * runs random ticks through the store and through the in-memory reference
 * model (model.ts) and compares every answer. Test code: it lives under
 * test/, out of the published package.
 *
 * This file is longer than our usual ~300 lines on purpose: one suite in one
 * place is easier to keep in step with store.ts than several.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { countsConsistent, outstanding } from '../../src/core/group.js';
import { resolveTaskOptions } from '../../src/core/options.js';
import { DEFAULT_TASK_OPTIONS, isFinal, type TaskOptions } from '../../src/core/types.js';
import type { TaskView } from '../../src/protocol/http.js';
import type {
  ClaimedTask,
  NewGroup,
  ReadyTask,
  Store,
  TaskPage,
  Tick,
  TickOutcome,
  WorkerRecord,
} from '../../src/store/store.js';
import { taskViewFromRecord } from '../../src/store/rows.js';
import { taskAddRules } from './contract-adds.js';
import { spawnRules } from './contract-spawns.js';
import { childrenRules } from './contract-children.js';
import { pageRules } from './contract-pages.js';
import { waitingRules } from './contract-waiting.js';
import { ModelStore } from './model.js';
import { type Make, using, mustGroup } from './contract-helpers.js';

export interface StoreHarness {
  /** An open store on an empty database. */
  store: Store;
  /**
   * Closes the current store and returns a new, open one on the same database
   * (a coordinator restart). Durability tests use it.
   */
  reopen: () => Promise<Store>;
  /** Closes whatever store is open and removes the database. */
  cleanup: () => Promise<void>;
  /**
   * Overwrites a group's stored options with this JSON text, as an older
   * regroup wrote them (before some option existed). Stores that keep no
   * text (the model) leave it out.
   */
  writeOptionsText?: (groupId: string, text: string) => Promise<void>;
}

const W1 = 'worker-1';
const W2 = 'worker-2';

function group(
  id: string,
  inputs: unknown[],
  extra: Partial<Omit<NewGroup, 'options'>> & { options?: Partial<TaskOptions> } = {},
): NewGroup {
  return {
    id,
    handler: extra.handler ?? 'square',
    policy: extra.policy ?? 'collectAll',
    idempotencyKey: extra.idempotencyKey ?? null,
    open: extra.open ?? false,
    options: resolveTaskOptions(extra.options),
    inputs,
  };
}

function worker(workerId: string, state: WorkerRecord['state'], at: number): WorkerRecord {
  return {
    workerId,
    name: `node-${workerId}`,
    token: `tok-${workerId}`,
    state,
    slots: 4,
    labels: ['gpu'],
    handlers: ['square'],
    connectedAt: at,
    seenAt: at,
  };
}

function only<T>(xs: T[]): T {
  assert.equal(xs.length, 1, `expected exactly one element, got ${xs.length}`);
  return xs[0] as T;
}

/**
 * `groupId` (one group alone in the store, with pending tasks) has `options`
 * in every read that carries them: getGroup, listGroups, pendingGroups,
 * readyTasks (priority, requires), a claim, and recover's lease of it. Claims
 * one of its tasks.
 */
async function optionsEverywhere(
  store: Store,
  groupId: string,
  options: TaskOptions,
): Promise<void> {
  assert.deepEqual((await mustGroup(store, groupId)).options, options, 'getGroup');
  assert.deepEqual(only(await store.listGroups({ limit: 10 })).options, options, 'listGroups');
  assert.deepEqual(only(await store.pendingGroups()).options, options, 'pendingGroups');
  const ready = await store.readyTasks([groupId], 1_000, 10);
  assert.ok(ready.length > 0, 'readyTasks');
  for (const r of ready)
    assert.deepEqual([r.priority, r.requires], [options.priority, options.requires]);
  const claimed = only(await claim(store, 1_000, groupId, W1, 1));
  assert.deepEqual(claimed.options, options, 'claimed');
  const lease = (await store.recover()).leases.find((l) => l.taskId === claimed.taskId);
  assert.deepEqual(lease?.options, options, 'recover');
}

/** The ids of the groups with pending tasks, oldest first. */
async function pendingIds(store: Store): Promise<string[]> {
  return (await store.pendingGroups()).map((g) => g.id);
}

async function tasksOf(store: Store, groupId: string): Promise<TaskView[]> {
  return store.listTasks(groupId, { limit: 100_000 });
}

async function task(store: Store, groupId: string, index: number): Promise<TaskView> {
  return only(await store.listTasks(groupId, { after: index - 1, limit: 1 }));
}

/** Claims up to `n` ready tasks of the group for `workerId` in dispatch order. */
async function claim(
  store: Store,
  now: number,
  groupId: string,
  workerId: string,
  n = 1_000_000,
): Promise<ClaimedTask[]> {
  const ready = await store.readyTasks([groupId], now, n);
  const out = await store.commitTick({
    now,
    claims: ready.map((r) => ({ taskId: r.taskId, workerId })),
  });
  return out.claimed;
}

/** Runs `body` against a fresh store and always cleans up. */
export function storeContract(name: string, make: Make): void {
  void describe(`store contract: ${name}`, () => {
    groupRules(make);
    claimRules(make);
    fenceRules(make);
    failureRules(make);
    cancelRules(make);
    retryRules(make);
    taskAddRules(make);
    spawnRules(make);
    childrenRules(make);
    readRules(make);
    pageRules(make);
    waitingRules(make);
    durabilityRules(make);
    propertyRules(make);
  });
}

function groupRules(make: Make): void {
  void describe('groups', () => {
    void it(
      'creates a sealed group with its tasks pending in input order',
      using(make, async ({ store }) => {
        const out = await store.commitTick({ now: 100, createGroups: [group('g1', [1, 2, 3])] });
        const created = only(out.createGroups);
        assert.equal(created.status, 'created');
        assert.equal(created.group.state, 'sealed');
        assert.equal(created.group.sealedAt, 100);
        assert.equal(created.group.createdAt, 100);
        assert.equal(created.group.total, 3);
        assert.equal(created.group.pending, 3);
        assert.deepEqual(
          out.changedGroups.map((g) => g.id),
          ['g1'],
        );
        const g = await mustGroup(store, 'g1');
        assert.deepEqual(g, created.group);
        assert.deepEqual(g.options, resolveTaskOptions(undefined));
        const tasks = await tasksOf(store, 'g1');
        assert.deepEqual(
          tasks.map((t) => [t.index, t.state, t.attempt]),
          [
            [0, 'pending', 0],
            [1, 'pending', 0],
            [2, 'pending', 0],
          ],
        );
        assert.equal(new Set(tasks.map((t) => t.taskId)).size, 3);
        assert.equal(await store.getGroup('nope'), null);
      }),
    );

    void it(
      'task options round-trip whole (heartbeatTimeoutMs and scheduleTimeoutMs too) through every read and a reopen',
      using(make, async (h) => {
        const options = resolveTaskOptions({
          maxAttempts: 7,
          timeoutMs: 1500,
          heartbeatTimeoutMs: 2500,
          maxNodeFailures: 4,
          priority: 3,
          requires: ['x', 'gpu'],
          backoffMs: 10,
          backoffMaxMs: 20,
          scheduleTimeoutMs: 30_000,
          maxConcurrency: 5,
          concurrencyKey: 'openai',
          concurrencyKeyLimit: 4,
        });
        // Every field is off its default, so a field a store drops or defaults shows.
        for (const [k, v] of Object.entries(DEFAULT_TASK_OPTIONS))
          assert.notDeepEqual(options[k as keyof TaskOptions], v, k);
        const out = await h.store.commitTick({
          now: 1,
          createGroups: [{ ...group('g', [0, 1, 2]), options }],
        });
        assert.deepEqual(only(out.createGroups).group.options, options, 'created');
        await optionsEverywhere(h.store, 'g', options);
        const s2 = await h.reopen();
        await optionsEverywhere(s2, 'g', options);
      }),
    );

    void it(
      'options stored before an option existed read with its default (heartbeatTimeoutMs, scheduleTimeoutMs, maxConcurrency)',
      using(make, async (h) => {
        if (!h.writeOptionsText) return; // the model keeps objects, not text
        const given = { maxAttempts: 7, timeoutMs: 1500, priority: 3, requires: ['gpu'] };
        const options = resolveTaskOptions(given);
        await h.store.commitTick({ now: 1, createGroups: [{ ...group('g', [0, 1, 2]), options }] });
        // An older regroup's row: every option of the time, none of those added since.
        const {
          heartbeatTimeoutMs: _h,
          scheduleTimeoutMs: _s,
          maxConcurrency: _m,
          concurrencyKey: _k,
          concurrencyKeyLimit: _l,
          ...old
        } = options;
        await h.writeOptionsText('g', JSON.stringify(old));
        const s2 = await h.reopen(); // nothing cached from before the rewrite
        await optionsEverywhere(s2, 'g', {
          ...options,
          heartbeatTimeoutMs: DEFAULT_TASK_OPTIONS.heartbeatTimeoutMs,
          scheduleTimeoutMs: DEFAULT_TASK_OPTIONS.scheduleTimeoutMs,
          maxConcurrency: DEFAULT_TASK_OPTIONS.maxConcurrency,
          concurrencyKey: DEFAULT_TASK_OPTIONS.concurrencyKey,
          concurrencyKeyLimit: DEFAULT_TASK_OPTIONS.concurrencyKeyLimit,
        });
      }),
    );

    void it(
      'an empty sealed group is done at once; an empty open group stays open',
      using(make, async ({ store }) => {
        const out = await store.commitTick({
          now: 5,
          createGroups: [group('sealed', []), group('open', [], { open: true })],
        });
        const [sealed, open] = out.createGroups;
        assert.equal(sealed?.group.state, 'done');
        assert.equal(sealed?.group.finishedAt, 5);
        assert.equal(open?.group.state, 'open');
        assert.equal(open?.group.sealedAt, null);
        assert.equal((await mustGroup(store, 'sealed')).state, 'done');
        assert.equal((await mustGroup(store, 'open')).state, 'open');
      }),
    );

    void it(
      'an idempotency key returns the existing group, or conflict for another handler',
      using(make, async ({ store }) => {
        const first = await store.commitTick({
          now: 1,
          createGroups: [group('a', [1], { idempotencyKey: 'k' })],
        });
        assert.equal(first.createGroups[0]?.status, 'created');
        const again = await store.commitTick({
          now: 2,
          createGroups: [
            group('b', [1, 2], { idempotencyKey: 'k' }),
            group('c', [1], { idempotencyKey: 'k', handler: 'other' }),
            group('d', [1], { idempotencyKey: 'k2' }),
            group('e', [1], { idempotencyKey: 'k2' }),
          ],
        });
        assert.deepEqual(
          again.createGroups.map((o) => [o.status, o.group.id]),
          [
            ['existing', 'a'],
            ['conflict', 'a'],
            ['created', 'd'],
            ['existing', 'd'],
          ],
        );
        assert.equal(again.createGroups[0]?.group.total, 1);
        assert.equal(await store.getGroup('b'), null);
        assert.equal(await store.getGroup('c'), null);
        assert.equal(await store.getGroup('e'), null);
        assert.equal((await mustGroup(store, 'a')).total, 1);
        assert.deepEqual(
          again.changedGroups.map((g) => g.id),
          ['d'],
        );
      }),
    );

    void it(
      'adds tasks to an open group by offset: added, duplicate, offset_mismatch, sealed, not_found',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['a'], { open: true })] });
        const out = await store.commitTick({
          now: 2,
          addTasks: [
            { groupId: 'g', offset: null, inputs: ['b'] },
            { groupId: 'g', offset: 2, inputs: ['c', 'd'] },
            { groupId: 'g', offset: 2, inputs: ['c', 'd'] },
            { groupId: 'g', offset: 1, inputs: ['b'] },
            { groupId: 'g', offset: 3, inputs: ['x'] },
            { groupId: 'g', offset: 5, inputs: ['x'] },
            { groupId: 'g', offset: 3, inputs: ['d', 'e'] },
            { groupId: 'nope', offset: null, inputs: ['x'] },
          ],
        });
        assert.deepEqual(
          out.addTasks.map((o) => o.status),
          [
            'added',
            'added',
            'duplicate',
            'duplicate',
            'duplicate',
            'offset_mismatch',
            'offset_mismatch',
            'not_found',
          ],
        );
        const added = out.addTasks[1];
        assert.ok(added?.status === 'added');
        assert.equal(added.group.total, 4);
        const tasks = await tasksOf(store, 'g');
        assert.deepEqual(
          tasks.map((t) => t.index),
          [0, 1, 2, 3],
        );
        const g = await mustGroup(store, 'g');
        assert.equal(g.state, 'open');
        assert.equal(g.pending, 4);

        const sealed = await store.commitTick({
          now: 3,
          seals: ['g'],
          addTasks: [
            { groupId: 'g', offset: null, inputs: ['late'] },
            { groupId: 'g', offset: 4, inputs: ['late'] },
          ],
        });
        // addTasks comes before seals in a tick.
        assert.deepEqual(
          sealed.addTasks.map((o) => o.status),
          ['added', 'duplicate'],
        );
        const after = await store.commitTick({
          now: 4,
          addTasks: [
            { groupId: 'g', offset: null, inputs: ['x'] },
            { groupId: 'g', offset: 5, inputs: ['x'] },
            { groupId: 'g', offset: 2, inputs: ['c', 'd'] },
          ],
        });
        assert.deepEqual(
          after.addTasks.map((o) => o.status),
          ['sealed', 'sealed', 'duplicate'],
        );
        assert.equal((await mustGroup(store, 'g')).total, 5);
      }),
    );

    void it(
      'seal moves an open group to sealed, or to done when nothing is outstanding',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('a', [1], { open: true }), group('b', [], { open: true })],
        });
        const out = await store.commitTick({ now: 7, seals: ['a', 'b', 'nope'] });
        assert.deepEqual(
          out.seals.map((s) => (s.status === 'sealed' ? [s.status, s.group.state] : [s.status])),
          [['sealed', 'sealed'], ['sealed', 'done'], ['not_found']],
        );
        const a = await mustGroup(store, 'a');
        assert.equal(a.sealedAt, 7);
        assert.equal(a.finishedAt, null);
        const b = await mustGroup(store, 'b');
        assert.equal(b.finishedAt, 7);

        const [c] = await claim(store, 8, 'a', W1);
        assert.ok(c);
        const done = await store.commitTick({
          now: 9,
          commits: [{ taskId: c.taskId, attempt: 1, workerId: W1, value: 1 }],
        });
        assert.equal(only(done.changedGroups).state, 'done');
        assert.equal((await mustGroup(store, 'a')).finishedAt, 9);
        const resealed = await store.commitTick({ now: 10, seals: ['a'] });
        assert.equal(resealed.seals[0]?.status, 'sealed');
        assert.deepEqual(resealed.changedGroups, []);
        assert.equal((await mustGroup(store, 'a')).state, 'done');
      }),
    );

    void it(
      'an open group is never done, even with every task final',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', [1], { open: true })] });
        const [c] = await claim(store, 2, 'g', W1);
        assert.ok(c);
        await store.commitTick({
          now: 3,
          commits: [{ taskId: c.taskId, attempt: 1, workerId: W1, value: 1 }],
        });
        const g = await mustGroup(store, 'g');
        assert.equal(g.state, 'open');
        assert.equal(outstanding(g), 0);
      }),
    );
  });
}

function claimRules(make: Make): void {
  void describe('claims', () => {
    void it(
      'claims only pending tasks: attempt + 1, lease fields, counters move',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [
            group('g', [{ n: 1 }, { n: 2 }], { options: { maxAttempts: 5, requires: ['gpu'] } }),
          ],
        });
        const [t0, t1] = await tasksOf(store, 'g');
        assert.ok(t0 && t1);
        const out = await store.commitTick({
          now: 10,
          claims: [
            { taskId: t0.taskId, workerId: W1 },
            { taskId: t0.taskId, workerId: W2 },
            { taskId: 999_999, workerId: W1 },
          ],
        });
        const c = only(out.claimed);
        assert.deepEqual(c, {
          taskId: t0.taskId,
          groupId: 'g',
          index: 0,
          handler: 'square',
          attempt: 1,
          workerId: W1,
          startedAt: 10,
          errors: 0,
          nodeFailures: 0,
          options: resolveTaskOptions({ maxAttempts: 5, requires: ['gpu'] }),
          input: { n: 1 },
          checkpoint: undefined,
        });
        const g = only(out.changedGroups);
        assert.equal(g.pending, 1);
        assert.equal(g.running, 1);
        const again = await store.commitTick({
          now: 11,
          claims: [{ taskId: t0.taskId, workerId: W2 }],
        });
        assert.deepEqual(again.claimed, []);
        assert.deepEqual(again.changedGroups, []);
        const v = await task(store, 'g', 0);
        assert.equal(v.state, 'running');
        assert.equal(v.workerId, W1);
        assert.equal(v.attempt, 1);
        assert.equal(v.startedAt, 10);
        const ready = await store.readyTasks(['g'], 11, 10);
        assert.deepEqual(
          ready.map((r) => r.taskId),
          [t1.taskId],
        );
        assert.deepEqual(ready[0]?.requires, ['gpu']);
      }),
    );

    void it(
      'claimNew: a store that takes it claims only what the plan picked of the tasks this tick inserted',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('old', ['o'], { open: true })] });
        const seen: ReadyTask[] = [];
        const out = await store.commitTick({
          now: 5,
          createGroups: [group('g', ['a', 'b', 'c'], { options: { requires: ['gpu'] } })],
          addTasks: [{ groupId: 'old', offset: null, inputs: ['p'] }],
          claimNew: {
            max: 3,
            plan: (tasks) => {
              seen.push(...tasks);
              // Two of the three offered; the add to old (fourth insert) is beyond max.
              return [
                { taskId: tasks[1]!.taskId, workerId: W1 },
                { taskId: tasks[2]!.taskId, workerId: W2 },
              ];
            },
          },
        });
        const created = out.createGroups[0];
        assert.equal(created?.status, 'created');
        if (seen.length === 0) {
          // This store does not claim new tasks in their own tick: nothing is running.
          assert.deepEqual(out.claimed, []);
          assert.equal((await mustGroup(store, 'g')).pending, 3);
          return;
        }
        const g = await tasksOf(store, 'g');
        assert.deepEqual(
          seen.map((t) => [t.groupId, t.handler, t.requires, t.priority]),
          [
            ['g', 'square', ['gpu'], 0],
            ['g', 'square', ['gpu'], 0],
            ['g', 'square', ['gpu'], 0],
          ],
          'at most max tasks, in the order inserted',
        );
        assert.deepEqual(
          seen.map((t) => t.taskId),
          g.map((t) => t.taskId),
        );
        assert.deepEqual(
          out.claimed.map((c) => [c.groupId, c.index, c.workerId, c.attempt, c.input]),
          [
            ['g', 1, W1, 1, 'b'],
            ['g', 2, W2, 1, 'c'],
          ],
        );
        const gi = await mustGroup(store, 'g');
        assert.deepEqual([gi.pending, gi.running], [1, 2]);
        assert.deepEqual(
          out.changedGroups.find((x) => x.id === 'g'),
          gi,
          'changedGroups carries the counters after the claims',
        );
        assert.equal((await task(store, 'g', 1)).state, 'running');
        assert.equal((await mustGroup(store, 'old')).pending, 2);
      }),
    );

    void it(
      'claims only ready tasks: a retry waits out its runAt',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['x'])] });
        const c = only(await claim(store, 2, 'g', W1));
        await store.commitTick({
          now: 3,
          failures: [
            {
              taskId: c.taskId,
              attempt: 1,
              workerId: W1,
              error: { kind: 'error', message: 'boom' },
              retryAt: 500,
              nodeFailure: false,
            },
          ],
        });
        assert.deepEqual(await store.readyTasks(['g'], 499, 10), []);
        assert.equal(await store.nextRunAt(3), 500);
        assert.equal(await store.nextRunAt(500), null);
        const early = await store.commitTick({
          now: 499,
          claims: [{ taskId: c.taskId, workerId: W1 }],
        });
        assert.deepEqual(early.claimed, []);
        const late = only(await claim(store, 500, 'g', W2));
        assert.equal(late.attempt, 2);
        assert.equal(late.errors, 1);
        assert.equal(late.workerId, W2);
      }),
    );

    void it(
      'readyTasks gives each group in priority then index order, at most perGroup each',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('low', [0, 1, 2, 3]), group('none', [])],
        });
        await store.commitTick({
          now: 2,
          createGroups: [group('high', [0, 1, 2], { options: { priority: 5 } })],
        });
        const ready = await store.readyTasks(['high', 'low', 'missing', 'none'], 2, 2);
        assert.deepEqual(
          ready.map((r) => [r.groupId, r.priority, r.handler]),
          [
            ['high', 5, 'square'],
            ['high', 5, 'square'],
            ['low', 0, 'square'],
            ['low', 0, 'square'],
          ],
        );
        const low = await tasksOf(store, 'low');
        assert.deepEqual(
          ready.slice(2).map((r) => r.taskId),
          low.slice(0, 2).map((t) => t.taskId),
        );
        assert.deepEqual(await pendingIds(store), ['low', 'high']);
        await claim(store, 3, 'low', W1);
        assert.deepEqual(await pendingIds(store), ['high']);
      }),
    );
  });
}

type RunKind = 'commit' | 'fail' | 'requeue' | 'checkpoint';

/** One fenced op of each kind about (taskId, attempt, workerId). */
function runOp(kind: RunKind, taskId: number, attempt: number, workerId: string): Tick {
  const now = 1000;
  const f = { taskId, attempt, workerId };
  switch (kind) {
    case 'commit':
      return { now, commits: [{ ...f, value: 'v' }] };
    case 'fail':
      return {
        now,
        failures: [
          { ...f, error: { kind: 'error', message: 'x' }, retryAt: null, nodeFailure: false },
        ],
      };
    case 'requeue':
      return { now, requeues: [{ ...f, nodeFailure: true, runAt: now }] };
    case 'checkpoint':
      return { now, checkpoints: [{ ...f, state: { at: 1 } }] };
  }
}

function runOutcome(kind: RunKind, out: TickOutcome): string | undefined {
  const list = {
    commit: out.commits,
    fail: out.failures,
    requeue: out.requeues,
    checkpoint: out.checkpoints,
  }[kind];
  return only(list);
}

function fenceRules(make: Make): void {
  void describe('fencing', () => {
    for (const kind of ['commit', 'fail', 'requeue', 'checkpoint'] as const) {
      void it(
        `${kind}: stale for another attempt, another worker, a pending or unknown task; already_final for a final task`,
        using(make, async ({ store }) => {
          await store.commitTick({ now: 1, createGroups: [group('g', ['a', 'b'])] });
          const c = only(await claim(store, 2, 'g', W1, 1));
          const before = await tasksOf(store, 'g');
          for (const [attempt, w] of [
            [0, W1],
            [2, W1],
            [1, W2],
          ] as const) {
            assert.equal(
              runOutcome(kind, await store.commitTick(runOp(kind, c.taskId, attempt, w))),
              'stale',
            );
          }
          const pending = before[1];
          assert.ok(pending);
          assert.equal(
            runOutcome(kind, await store.commitTick(runOp(kind, pending.taskId, 0, W1))),
            'stale',
          );
          assert.equal(
            runOutcome(kind, await store.commitTick(runOp(kind, 987_654, 1, W1))),
            'stale',
          );
          assert.deepEqual(await tasksOf(store, 'g'), before, 'nothing changed');

          assert.equal(
            runOutcome(kind, await store.commitTick(runOp(kind, c.taskId, 1, W1))),
            'applied',
          );
          if (kind === 'requeue' || kind === 'checkpoint') {
            // Bring the task to a final state to check already_final.
            await store.commitTick({ now: 1001, cancels: ['g'] });
          }
          const final = await tasksOf(store, 'g');
          assert.ok(final.every((t) => isFinal(t.state) || t.index === 1));
          for (const [attempt, w] of [
            [1, W1],
            [2, W1],
            [1, W2],
          ] as const) {
            const out = await store.commitTick(runOp(kind, c.taskId, attempt, w));
            assert.equal(runOutcome(kind, out), 'already_final');
            assert.deepEqual(out.changedGroups, []);
          }
          assert.deepEqual(await tasksOf(store, 'g'), final, 'a final task never changes');
        }),
      );
    }

    void it(
      'the first commit wins and keeps its value',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', [3])] });
        const c = only(await claim(store, 2, 'g', W1));
        const out = await store.commitTick({
          now: 3,
          commits: [
            { taskId: c.taskId, attempt: 1, workerId: W1, value: { sq: 9 } },
            { taskId: c.taskId, attempt: 1, workerId: W1, value: 'second' },
          ],
        });
        assert.deepEqual(out.commits, ['applied', 'already_final']);
        const g = only(out.changedGroups);
        assert.equal(g.succeeded, 1);
        assert.equal(g.state, 'done');
        const v = await task(store, 'g', 0);
        assert.equal(v.state, 'succeeded');
        assert.deepEqual(v.value, { sq: 9 });
        assert.equal(v.finishedAt, 3);
        assert.equal(v.workerId, W1);
        assert.equal(typeof v.seq, 'number');
        assert.equal(v.error, undefined);
      }),
    );

    void it(
      'a commit of undefined or null is stored as null',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', [1, 2])] });
        const [a, b] = await claim(store, 2, 'g', W1);
        assert.ok(a && b);
        await store.commitTick({
          now: 3,
          commits: [
            { taskId: a.taskId, attempt: 1, workerId: W1, value: undefined },
            { taskId: b.taskId, attempt: 1, workerId: W1, value: null },
          ],
        });
        const tasks = await tasksOf(store, 'g');
        assert.deepEqual(
          tasks.map((t) => t.value),
          [null, null],
        );
      }),
    );
  });
}

function failureRules(make: Make): void {
  void describe('failures, requeues and checkpoints', () => {
    void it(
      'a failure with retryAt goes back to pending keeping the error; without, it is final',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['x', 'y'])] });
        const c = only(await claim(store, 2, 'g', W1, 1));
        const err = { kind: 'error' as const, message: 'boom', name: 'TypeError' };
        const retry = await store.commitTick({
          now: 3,
          failures: [
            {
              taskId: c.taskId,
              attempt: 1,
              workerId: W1,
              error: err,
              retryAt: 3,
              nodeFailure: false,
            },
          ],
        });
        assert.deepEqual(retry.failures, ['applied']);
        const g = only(retry.changedGroups);
        assert.deepEqual([g.pending, g.running, g.failed], [2, 0, 0]);
        const v = await task(store, 'g', 0);
        assert.equal(v.state, 'pending');
        assert.equal(v.workerId, null);
        assert.deepEqual(v.error, err);
        assert.equal(v.seq, null);

        const c2 = only(await claim(store, 4, 'g', W2, 1));
        assert.equal(c2.taskId, c.taskId);
        assert.equal(c2.attempt, 2);
        assert.equal(c2.errors, 1);
        const final = await store.commitTick({
          now: 5,
          failures: [
            {
              taskId: c.taskId,
              attempt: 2,
              workerId: W2,
              error: { kind: 'permanent', message: 'no' },
              retryAt: null,
              nodeFailure: false,
            },
          ],
        });
        assert.deepEqual(final.failures, ['applied']);
        const g2 = only(final.changedGroups);
        assert.deepEqual([g2.pending, g2.running, g2.failed, g2.state], [1, 0, 1, 'sealed']);
        const f = await task(store, 'g', 0);
        assert.equal(f.state, 'failed');
        assert.deepEqual(f.error, { kind: 'permanent', message: 'no' });
        assert.equal(f.finishedAt, 5);
        assert.equal(typeof f.seq, 'number');
        assert.equal((await task(store, 'g', 1)).state, 'pending', 'collectAll keeps the others');
      }),
    );

    void it(
      'a success after a retried failure clears the error: a succeeded task has none',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['x'])] });
        const c = only(await claim(store, 2, 'g', W1, 1));
        const error = { kind: 'error' as const, message: 'boom' };
        await store.commitTick({
          now: 3,
          failures: [
            { taskId: c.taskId, attempt: 1, workerId: W1, error, retryAt: 3, nodeFailure: false },
          ],
        });
        assert.deepEqual((await task(store, 'g', 0)).error, error, 'kept while it is retried');
        const c2 = only(await claim(store, 4, 'g', W2, 1));
        await store.commitTick({
          now: 5,
          commits: [{ taskId: c2.taskId, attempt: 2, workerId: W2, value: 7 }],
        });
        const t = await task(store, 'g', 0);
        assert.deepEqual([t.state, t.value, t.error], ['succeeded', 7, undefined]);
      }),
    );

    void it(
      'node failures are counted apart from handler errors',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['x'])] });
        let c = only(await claim(store, 2, 'g', W1));
        await store.commitTick({
          now: 3,
          requeues: [
            { taskId: c.taskId, attempt: c.attempt, workerId: W1, nodeFailure: true, runAt: 3 },
          ],
        });
        c = only(await claim(store, 4, 'g', W1));
        assert.deepEqual([c.attempt, c.errors, c.nodeFailures], [2, 0, 1]);
        await store.commitTick({
          now: 5,
          requeues: [
            { taskId: c.taskId, attempt: c.attempt, workerId: W1, nodeFailure: false, runAt: 5 },
          ],
        });
        c = only(await claim(store, 6, 'g', W1));
        assert.deepEqual([c.attempt, c.errors, c.nodeFailures], [3, 0, 1]);
        await store.commitTick({
          now: 7,
          failures: [
            {
              taskId: c.taskId,
              attempt: c.attempt,
              workerId: W1,
              error: { kind: 'error', message: 'died' },
              retryAt: 7,
              nodeFailure: true,
            },
          ],
        });
        c = only(await claim(store, 8, 'g', W1));
        assert.deepEqual([c.attempt, c.errors, c.nodeFailures], [4, 0, 2]);
        await store.commitTick({
          now: 9,
          failures: [
            {
              taskId: c.taskId,
              attempt: c.attempt,
              workerId: W1,
              error: { kind: 'error', message: 'bug' },
              retryAt: 9,
              nodeFailure: false,
            },
          ],
        });
        c = only(await claim(store, 10, 'g', W1));
        assert.deepEqual([c.attempt, c.errors, c.nodeFailures], [5, 1, 2]);
        const { leases } = await store.recover();
        assert.deepEqual(
          leases.map((l) => [l.taskId, l.attempt, l.errors, l.nodeFailures]),
          [[c.taskId, 5, 1, 2]],
        );
      }),
    );

    void it(
      'a checkpoint is handed to the next attempt',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['x'])] });
        const c = only(await claim(store, 2, 'g', W1));
        const out = await store.commitTick({
          now: 3,
          checkpoints: [
            { taskId: c.taskId, attempt: 1, workerId: W1, state: { done: 10 } },
            { taskId: c.taskId, attempt: 1, workerId: W2, state: { done: 99 } },
          ],
          requeues: [{ taskId: c.taskId, attempt: 1, workerId: W1, nodeFailure: false, runAt: 0 }],
        });
        // requeues come before checkpoints in a tick: the checkpoint is stale.
        assert.deepEqual(out.checkpoints, ['stale', 'stale']);
        const c2 = only(await claim(store, 4, 'g', W1));
        assert.equal(c2.checkpoint, undefined);
        await store.commitTick({
          now: 5,
          checkpoints: [{ taskId: c.taskId, attempt: 2, workerId: W1, state: { done: 10 } }],
        });
        await store.commitTick({
          now: 6,
          requeues: [{ taskId: c.taskId, attempt: 2, workerId: W1, nodeFailure: true, runAt: 6 }],
        });
        const c3 = only(await claim(store, 7, 'g', W2));
        assert.deepEqual(c3.checkpoint, { done: 10 });
        assert.equal(c3.attempt, 3);
      }),
    );

    void it(
      'failFast: the first final failure cancels the rest and revokes running runs',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('ff', [0, 1, 2, 3, 4], { policy: 'failFast' }), group('other', [0])],
        });
        const [a, b, c] = await claim(store, 2, 'ff', W1, 3);
        assert.ok(a && b && c);
        const out = await store.commitTick({
          now: 3,
          commits: [{ taskId: a.taskId, attempt: 1, workerId: W1, value: 0 }],
          failures: [
            {
              taskId: b.taskId,
              attempt: 1,
              workerId: W1,
              error: { kind: 'permanent', message: 'bad' },
              retryAt: null,
              nodeFailure: false,
            },
            {
              taskId: c.taskId,
              attempt: 1,
              workerId: W1,
              error: { kind: 'error', message: 'late' },
              retryAt: null,
              nodeFailure: false,
            },
          ],
        });
        assert.deepEqual(out.failures, ['applied', 'already_final']);
        assert.deepEqual(out.revoked, [{ taskId: c.taskId, attempt: 1, workerId: W1 }]);
        const g = only(out.changedGroups);
        assert.deepEqual(
          [g.state, g.succeeded, g.failed, g.canceled, g.pending, g.running],
          ['done', 1, 1, 3, 0, 0],
        );
        assert.equal(g.finishedAt, 3);
        const states = (await tasksOf(store, 'ff')).map((t) => t.state);
        assert.deepEqual(states, ['succeeded', 'failed', 'canceled', 'canceled', 'canceled']);
        assert.equal((await mustGroup(store, 'other')).pending, 1, 'other groups untouched');
        assert.deepEqual(await store.readyTasks(['ff'], 10, 10), []);
      }),
    );

    void it(
      'failFast on an open group seals it, so it is done',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('ff', [0, 1], { policy: 'failFast', open: true })],
        });
        const c = only(await claim(store, 2, 'ff', W1, 1));
        const out = await store.commitTick({
          now: 3,
          failures: [
            {
              taskId: c.taskId,
              attempt: 1,
              workerId: W1,
              error: { kind: 'poison', message: 'killed 3 nodes' },
              retryAt: null,
              nodeFailure: true,
            },
          ],
        });
        const g = only(out.changedGroups);
        assert.deepEqual([g.state, g.sealedAt, g.failed, g.canceled], ['done', 3, 1, 1]);
        assert.deepEqual(out.revoked, []);
        const add = await store.commitTick({
          now: 4,
          addTasks: [{ groupId: 'ff', offset: null, inputs: [2] }],
        });
        assert.equal(add.addTasks[0]?.status, 'sealed');
      }),
    );
  });
}

function cancelRules(make: Make): void {
  void describe('cancel', () => {
    void it(
      'cancels pending and running tasks, revokes the runs, keeps final ones',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('g', [0, 1, 2, 3], { open: true })],
        });
        const [a, b] = await claim(store, 2, 'g', W1, 2);
        assert.ok(a && b);
        await store.commitTick({
          now: 3,
          commits: [{ taskId: a.taskId, attempt: 1, workerId: W1, value: 'kept' }],
        });
        const out = await store.commitTick({
          now: 4,
          cancels: ['g', 'nope'],
          commits: [{ taskId: b.taskId, attempt: 1, workerId: W1, value: 'too late' }],
        });
        assert.equal(out.cancels[1]?.status, 'not_found');
        const c = out.cancels[0];
        assert.ok(c?.status === 'canceled');
        assert.deepEqual(
          [c.group.state, c.group.finishedAt, c.group.succeeded, c.group.canceled],
          ['canceled', 4, 1, 3],
        );
        assert.deepEqual(out.commits, ['already_final']);
        assert.deepEqual(out.revoked, [{ taskId: b.taskId, attempt: 1, workerId: W1 }]);
        assert.deepEqual(only(out.changedGroups), c.group);
        const tasks = await tasksOf(store, 'g');
        assert.deepEqual(
          tasks.map((t) => t.state),
          ['succeeded', 'canceled', 'canceled', 'canceled'],
        );
        assert.deepEqual(tasks[0]?.value, 'kept');
        assert.ok(tasks.every((t) => t.finishedAt !== null && t.seq !== null));
        assert.deepEqual(await pendingIds(store), []);

        const again = await store.commitTick({ now: 5, cancels: ['g'] });
        assert.equal(again.cancels[0]?.status, 'canceled');
        assert.deepEqual(again.changedGroups, []);
        assert.deepEqual(again.revoked, []);
        assert.equal((await mustGroup(store, 'g')).finishedAt, 4);
        const add = await store.commitTick({
          now: 6,
          addTasks: [{ groupId: 'g', offset: null, inputs: [9] }],
          seals: ['g'],
        });
        assert.equal(add.addTasks[0]?.status, 'sealed');
        assert.equal((await mustGroup(store, 'g')).state, 'canceled');
      }),
    );

    void it(
      'canceling a done group changes nothing',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', [])] });
        const out = await store.commitTick({ now: 2, cancels: ['g'] });
        const c = out.cancels[0];
        assert.ok(c?.status === 'canceled');
        assert.equal(c.group.state, 'done');
        assert.deepEqual(out.changedGroups, []);
      }),
    );
  });
}

/** A final failure of run (taskId, attempt) on workerId, as a tick. */
function finalFailure(now: number, taskId: number, attempt: number, workerId: string): Tick {
  const error = { kind: 'error' as const, message: `failed at ${now}` };
  return {
    now,
    failures: [{ taskId, attempt, workerId, error, retryAt: null, nodeFailure: true }],
  };
}

function retryRules(make: Make): void {
  void describe('retry', () => {
    void it(
      'puts failed tasks back to pending: attempt kept then +1, budget reset, old reports stale, done group sealed again',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['a', 'b', 'c'])] });
        const [a, b, c] = await claim(store, 2, 'g', W1, 3);
        assert.ok(a && b && c);
        await store.commitTick({
          now: 3,
          commits: [{ taskId: a.taskId, attempt: 1, workerId: W1, value: 'A' }],
        });
        await store.commitTick(finalFailure(4, b.taskId, 1, W1));
        await store.commitTick(finalFailure(5, c.taskId, 1, W1));
        const done = await mustGroup(store, 'g');
        assert.deepEqual([done.state, done.failed, done.finishedAt], ['done', 2, 5]);
        const failedSeq = (await task(store, 'g', 1)).seq;
        assert.equal(typeof failedSeq, 'number');

        const out = await store.commitTick({ now: 6, retries: ['g', 'nope'] });
        assert.equal(out.retries[1]?.status, 'not_found');
        const r = out.retries[0];
        assert.ok(r?.status === 'retried');
        assert.equal(r.retried, 2);
        assert.deepEqual(
          [r.group.state, r.group.finishedAt, r.group.pending, r.group.failed, r.group.succeeded],
          ['sealed', null, 2, 0, 1],
        );
        assert.deepEqual(only(out.changedGroups), r.group);
        assert.deepEqual(await mustGroup(store, 'g'), r.group);
        const tb = await task(store, 'g', 1);
        assert.deepEqual(
          [tb.state, tb.attempt, tb.workerId, tb.finishedAt, tb.seq],
          ['pending', 1, null, null, null],
        );
        assert.deepEqual(tb.error, { kind: 'error', message: 'failed at 4' }, 'last error kept');
        assert.equal((await task(store, 'g', 0)).value, 'A', 'succeeded tasks untouched');
        assert.deepEqual(await pendingIds(store), ['g']);
        assert.deepEqual(
          (await store.finishedTasks('g', 0, 10)).map((t) => t.index),
          [0],
          'retried tasks are not finished any more',
        );
        // A late report of the old attempt is fenced off.
        const late = await store.commitTick({
          now: 7,
          commits: [{ taskId: b.taskId, attempt: 1, workerId: W1, value: 'late' }],
        });
        assert.deepEqual(late.commits, ['stale']);

        const again = only(await claim(store, 8, 'g', W2, 1));
        assert.deepEqual(
          [again.taskId, again.attempt, again.errors, again.nodeFailures],
          [b.taskId, 2, 0, 0],
          'next attempt, with the budget started over',
        );
        await store.commitTick({
          now: 9,
          commits: [{ taskId: b.taskId, attempt: 2, workerId: W2, value: 'B' }],
        });
        const fin = await store.finishedTasks('g', failedSeq ?? 0, 10);
        assert.deepEqual(
          fin.map((t) => [t.index, t.value]),
          [[1, 'B']],
          'it finishes again, with a new seq',
        );
      }),
    );

    void it(
      'a second retry retries nothing; an open group stays open; running and pending tasks are untouched',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('g', ['a', 'b', 'c'], { open: true })],
        });
        const [a, b] = await claim(store, 2, 'g', W1, 2);
        assert.ok(a && b);
        await store.commitTick(finalFailure(3, a.taskId, 1, W1));
        const first = await store.commitTick({ now: 4, retries: ['g'] });
        const r1 = first.retries[0];
        assert.ok(r1?.status === 'retried');
        assert.deepEqual(
          [r1.retried, r1.group.state, r1.group.pending, r1.group.running, r1.group.failed],
          [1, 'open', 2, 1, 0],
        );
        const second = await store.commitTick({ now: 5, retries: ['g'] });
        const r2 = second.retries[0];
        assert.ok(r2?.status === 'retried');
        assert.equal(r2.retried, 0);
        assert.deepEqual(r2.group, r1.group);
        assert.deepEqual(second.changedGroups, [], 'nothing changed');
        assert.equal((await task(store, 'g', 1)).state, 'running');
        const empty = await store.commitTick({ now: 6, createGroups: [group('e', [])] });
        assert.equal(empty.createGroups[0]?.group.state, 'done');
        const r3 = (await store.commitTick({ now: 7, retries: ['e'] })).retries[0];
        assert.ok(r3?.status === 'retried');
        assert.deepEqual([r3.retried, r3.group.state], [0, 'done'], 'nothing failed: stays done');
      }),
    );

    void it(
      'failFast: only failed tasks are retried; the ones the failure canceled stay canceled',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          createGroups: [group('ff', [0, 1, 2], { policy: 'failFast' })],
        });
        const a = only(await claim(store, 2, 'ff', W1, 1));
        await store.commitTick(finalFailure(3, a.taskId, 1, W1));
        assert.deepEqual(
          (await tasksOf(store, 'ff')).map((t) => t.state),
          ['failed', 'canceled', 'canceled'],
        );
        const r = (await store.commitTick({ now: 4, retries: ['ff'] })).retries[0];
        assert.ok(r?.status === 'retried');
        assert.deepEqual(
          [r.retried, r.group.state, r.group.pending, r.group.canceled],
          [1, 'sealed', 1, 2],
        );
        const c = only(await claim(store, 5, 'ff', W2));
        assert.deepEqual([c.taskId, c.attempt], [a.taskId, 2]);
        await store.commitTick({
          now: 6,
          commits: [{ taskId: a.taskId, attempt: 2, workerId: W2, value: 'ok' }],
        });
        const g = await mustGroup(store, 'ff');
        assert.deepEqual([g.state, g.succeeded, g.canceled, g.finishedAt], ['done', 1, 2, 6]);
      }),
    );

    void it(
      'a canceled group is not retried: nothing changes',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', ['a', 'b'])] });
        const a = only(await claim(store, 2, 'g', W1, 1));
        await store.commitTick(finalFailure(3, a.taskId, 1, W1));
        await store.commitTick({ now: 4, cancels: ['g'] });
        const before = await tasksOf(store, 'g');
        const out = await store.commitTick({ now: 5, retries: ['g'] });
        const r = out.retries[0];
        assert.ok(r?.status === 'canceled');
        assert.deepEqual([r.group.state, r.group.failed, r.group.canceled], ['canceled', 1, 1]);
        assert.deepEqual(out.changedGroups, []);
        assert.deepEqual(await tasksOf(store, 'g'), before);
      }),
    );
  });
}

function readRules(make: Make): void {
  void describe('reads, order and paging', () => {
    void it(
      'finishedTasks returns final tasks in finishing order with increasing seq, paged',
      using(make, async ({ store }) => {
        await store.commitTick({ now: 1, createGroups: [group('g', [0, 1, 2, 3, 4, 5])] });
        const claimed = await claim(store, 2, 'g', W1);
        const order = [3, 0, 5, 1];
        let now = 3;
        for (const i of order) {
          const c = claimed[i];
          assert.ok(c);
          await store.commitTick({
            now: now++,
            commits: [{ taskId: c.taskId, attempt: 1, workerId: W1, value: i * i }],
          });
        }
        const all = await store.finishedTasks('g', 0, 100);
        assert.deepEqual(
          all.map((t) => t.index),
          order,
        );
        const seqs = all.map((t) => t.seq ?? -1);
        assert.ok(
          seqs.every((s, k) => k === 0 || s > (seqs[k - 1] ?? Infinity)),
          `${seqs}`,
        );
        const page1 = await store.finishedTasks('g', 0, 2);
        const page2 = await store.finishedTasks('g', page1.at(-1)?.seq ?? -1, 2);
        const page3 = await store.finishedTasks('g', page2.at(-1)?.seq ?? -1, 2);
        assert.deepEqual([...page1, ...page2], all);
        assert.deepEqual(page3, []);
        assert.deepEqual(
          all.map((t) => t.value),
          [9, 0, 25, 1],
        );
        assert.deepEqual(await store.finishedTasks('other', 0, 10), []);
      }),
    );

    void it(
      'listTasks pages a large group in input order, with a state filter',
      using(make, async ({ store }) => {
        const n = 2500;
        const inputs = Array.from({ length: n }, (_, i) => ({ i }));
        await store.commitTick({ now: 1, createGroups: [group('big', inputs)] });
        await claim(store, 2, 'big', W1, 10);
        const seen: number[] = [];
        let after = -1;
        for (;;) {
          const page = await store.listTasks('big', { after, limit: 1000 });
          if (page.length === 0) break;
          assert.ok(page.length <= 1000);
          seen.push(...page.map((t) => t.index));
          after = page.at(-1)?.index ?? after;
        }
        assert.deepEqual(
          seen,
          inputs.map((_, i) => i),
        );
        const running = await store.listTasks('big', { limit: 100, state: 'running' });
        assert.deepEqual(
          running.map((t) => t.index),
          [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        );
        const pending = await store.listTasks('big', { after: 2000, limit: 3, state: 'pending' });
        assert.deepEqual(
          pending.map((t) => t.index),
          [2001, 2002, 2003],
        );
        const g = await mustGroup(store, 'big');
        assert.deepEqual([g.total, g.pending, g.running], [n, n - 10, 10]);
      }),
    );

    void it(
      'listGroups is newest first, paged by createdAt',
      using(make, async ({ store }) => {
        for (let i = 1; i <= 5; i++) {
          await store.commitTick({ now: i * 10, createGroups: [group(`g${i}`, [i])] });
        }
        const first = await store.listGroups({ limit: 2 });
        assert.deepEqual(
          first.map((g) => g.id),
          ['g5', 'g4'],
        );
        const next = await store.listGroups({ limit: 10, before: first.at(-1)?.createdAt ?? 0 });
        assert.deepEqual(
          next.map((g) => g.id),
          ['g3', 'g2', 'g1'],
        );
      }),
    );

    void it(
      'countTasks counts tasks by state over every group, zeros when empty',
      using(make, async ({ store }) => {
        const zero = { pending: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
        assert.deepEqual(await store.countTasks(), zero);
        await store.commitTick({
          now: 1,
          createGroups: [group('a', [0, 1, 2, 3]), group('b', [0, 1, 2]), group('c', [0, 1])],
        });
        const [t0, t1, t2] = await claim(store, 2, 'a', W1, 3);
        assert.ok(t0 && t1 && t2);
        await store.commitTick({
          now: 3,
          commits: [{ taskId: t0.taskId, attempt: 1, workerId: W1, value: 0 }],
          failures: [
            {
              taskId: t1.taskId,
              attempt: 1,
              workerId: W1,
              error: { kind: 'permanent', message: 'no' },
              retryAt: null,
              nodeFailure: false,
            },
          ],
          cancels: ['c'],
        });
        assert.deepEqual(await store.countTasks(), {
          pending: 1 + 3,
          running: 1,
          succeeded: 1,
          failed: 1,
          canceled: 2,
        });
      }),
    );

    void it(
      'workers are upserted; recover lists only those not dead or left',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 1,
          workers: [worker('a', 'alive', 1), worker('b', 'alive', 2), worker('c', 'suspect', 3)],
        });
        await store.commitTick({
          now: 2,
          workers: [{ ...worker('b', 'dead', 2), seenAt: 9 }, worker('d', 'left', 4)],
        });
        const all = await store.listWorkers();
        assert.deepEqual(
          all.map((w) => [w.workerId, w.state]),
          [
            ['a', 'alive'],
            ['b', 'dead'],
            ['c', 'suspect'],
            ['d', 'left'],
          ],
        );
        assert.deepEqual(all[0], worker('a', 'alive', 1));
        assert.equal(all[1]?.seenAt, 9);
        const { workers } = await store.recover();
        assert.deepEqual(
          workers.map((w) => w.workerId),
          ['a', 'c'],
        );
      }),
    );

    void it(
      'events get increasing seq and their own time (the tick time when absent), and page by seq',
      using(make, async ({ store }) => {
        await store.commitTick({
          now: 42,
          events: [
            { type: 'group.created', groupId: 'g', data: { n: 3 } },
            { type: 'worker.dead', workerId: W1, data: { tasks: [1, 2] }, at: 40 },
          ],
        });
        await store.commitTick({ now: 43, events: [{ type: 'task.failed', taskId: 7 }] });
        const all = await store.listEvents(0, 10);
        assert.equal(all.length, 3);
        assert.deepEqual(
          all.map((e) => [e.type, e.at]),
          [
            ['group.created', 42],
            ['worker.dead', 40],
            ['task.failed', 43],
          ],
        );
        assert.ok((all[0]?.seq ?? 0) > 0);
        assert.ok(all.every((e, k) => k === 0 || e.seq > (all[k - 1]?.seq ?? Infinity)));
        assert.deepEqual(all[0]?.data, { n: 3 });
        assert.equal(all[0]?.groupId, 'g');
        assert.equal(all[1]?.workerId, W1);
        assert.equal(all[2]?.taskId, 7);
        assert.equal(all[2]?.data ?? null, null);
        assert.deepEqual(await store.listEvents(all[0]?.seq ?? 0, 1), [all[1]]);
      }),
    );

    void it(
      'one tick applies its ops in order: create, add, seal, claim in the same transaction',
      using(make, async ({ store }) => {
        const ids = await store.commitTick({
          now: 1,
          createGroups: [group('g', [0], { open: true })],
          addTasks: [{ groupId: 'g', offset: 1, inputs: [1] }],
          seals: ['g'],
          events: [{ type: 'group.created', groupId: 'g' }],
        });
        const g = only(ids.changedGroups);
        assert.deepEqual([g.state, g.total, g.pending], ['sealed', 2, 2]);
        const [t0, t1] = await tasksOf(store, 'g');
        assert.ok(t0 && t1);
        const out = await store.commitTick({
          now: 2,
          claims: [
            { taskId: t0.taskId, workerId: W1 },
            { taskId: t1.taskId, workerId: W2 },
          ],
          // Commits come before claims: this one is stale (task still pending).
          commits: [{ taskId: t0.taskId, attempt: 1, workerId: W1, value: 0 }],
        });
        assert.deepEqual(out.commits, ['stale']);
        assert.deepEqual(
          out.claimed.map((c) => c.workerId),
          [W1, W2],
        );
        const after = only(out.changedGroups);
        assert.deepEqual([after.pending, after.running], [0, 2]);
        assert.deepEqual(after, await mustGroup(store, 'g'));
      }),
    );
  });
}

function durabilityRules(make: Make): void {
  void describe('durability', () => {
    void it(
      'after a reopen, recover() returns the running leases and live workers; counters go on',
      using(make, async (h) => {
        const s1 = h.store;
        await s1.commitTick({
          now: 1,
          createGroups: [group('g', [0, 1, 2], { options: { timeoutMs: 500 } })],
          workers: [worker('a', 'alive', 1), worker('dead', 'dead', 1)],
          events: [{ type: 'coordinator.started' }],
        });
        const [a, b] = await claim(s1, 2, 'g', 'a', 2);
        assert.ok(a && b);
        await s1.commitTick({
          now: 3,
          commits: [{ taskId: a.taskId, attempt: 1, workerId: 'a', value: 'A' }],
          checkpoints: [{ taskId: b.taskId, attempt: 1, workerId: 'a', state: [1, 2] }],
        });
        const seqBefore = (await s1.finishedTasks('g', 0, 10))[0]?.seq ?? 0;
        const groupBefore = await mustGroup(s1, 'g');
        const tasksBefore = await tasksOf(s1, 'g');

        const s2 = await h.reopen();
        assert.deepEqual(await mustGroup(s2, 'g'), groupBefore);
        assert.deepEqual(await tasksOf(s2, 'g'), tasksBefore);
        const { leases, workers } = await s2.recover();
        assert.deepEqual(leases, [
          {
            taskId: b.taskId,
            groupId: 'g',
            index: 1,
            handler: 'square',
            attempt: 1,
            workerId: 'a',
            startedAt: 2,
            errors: 0,
            nodeFailures: 0,
            options: resolveTaskOptions({ timeoutMs: 500 }),
          },
        ]);
        assert.deepEqual(workers, [worker('a', 'alive', 1)]);

        // The lease goes on after the restart; seq and event numbering continue.
        const out = await s2.commitTick({
          now: 10,
          commits: [{ taskId: b.taskId, attempt: 1, workerId: 'a', value: 'B' }],
          events: [{ type: 'worker.left' }],
        });
        assert.deepEqual(out.commits, ['applied']);
        const fin = await s2.finishedTasks('g', seqBefore, 10);
        assert.deepEqual(
          fin.map((t) => t.value),
          ['B'],
        );
        assert.ok((fin[0]?.seq ?? 0) > seqBefore);
        const events = await s2.listEvents(0, 10);
        assert.deepEqual(
          events.map((e) => e.type),
          ['coordinator.started', 'worker.left'],
        );
        const c = only(await claim(s2, 11, 'g', 'a'));
        assert.equal(c.index, 2);
        assert.equal(await (await h.reopen()).getGroup('g').then((g) => g?.running), 1);
      }),
    );
  });
}

/** An op of a random tick, in terms of the state before the tick (resolved by `resolve`). */
type AbstractOp =
  | {
      k: 'create';
      open: boolean;
      failFast: boolean;
      n: number;
      key: number | null;
      handler: number;
    }
  | { k: 'add'; g: number; offset: 'null' | 'next' | 'repeat' | 'bad'; n: number }
  | { k: 'seal' | 'cancel' | 'retry' | 'scheduleTimeout'; g: number }
  | {
      k: 'commit' | 'fail' | 'requeue' | 'checkpoint';
      t: number;
      fault: Fault;
      retry: boolean;
      node: boolean;
    }
  | { k: 'taskAdd'; t: number; fault: Fault; key: number; n: number }
  | { k: 'claim'; t: number; w: number }
  | { k: 'worker'; w: number; dead: boolean }
  | { k: 'event'; t: number };
type Fault = 'none' | 'attempt' | 'worker';
interface AbstractTick {
  dt: number;
  /** Restart the store (close and reopen the same database) before this tick. */
  reopen: boolean;
  ops: AbstractOp[];
}

const nat = (max: number) => fc.integer({ min: 0, max });
const weighted = <T>(arbitrary: fc.Arbitrary<T>, weight: number) => ({ arbitrary, weight });
const runKind = fc.constantFrom<'commit' | 'fail' | 'requeue' | 'checkpoint'>(
  'commit',
  'fail',
  'requeue',
  'checkpoint',
);
const fault = fc.constantFrom<Fault>('none', 'none', 'none', 'attempt', 'worker');

const abstractOp: fc.Arbitrary<AbstractOp> = fc.oneof(
  weighted(
    fc.record({
      k: fc.constant('create' as const),
      open: fc.boolean(),
      failFast: fc.boolean(),
      n: nat(4),
      key: fc.option(nat(2), { nil: null }),
      handler: nat(1),
    }),
    2,
  ),
  weighted(
    fc.record({
      k: fc.constant('add' as const),
      g: nat(20),
      offset: fc.constantFrom('null' as const, 'next' as const, 'repeat' as const, 'bad' as const),
      n: nat(3),
    }),
    2,
  ),
  weighted(fc.record({ k: fc.constant('seal' as const), g: nat(20) }), 1),
  weighted(fc.record({ k: fc.constant('cancel' as const), g: nat(20) }), 1),
  weighted(fc.record({ k: fc.constant('retry' as const), g: nat(20) }), 1),
  weighted(fc.record({ k: fc.constant('scheduleTimeout' as const), g: nat(20) }), 1),
  weighted(
    fc.record({ k: runKind, t: nat(50), fault, retry: fc.boolean(), node: fc.boolean() }),
    8,
  ),
  weighted(
    fc.record({ k: fc.constant('taskAdd' as const), t: nat(50), fault, key: nat(2), n: nat(3) }),
    3,
  ),
  weighted(fc.record({ k: fc.constant('claim' as const), t: nat(50), w: nat(2) }), 8),
  weighted(fc.record({ k: fc.constant('worker' as const), w: nat(2), dead: fc.boolean() }), 1),
  weighted(fc.record({ k: fc.constant('event' as const), t: nat(50) }), 1),
);

const abstractTicks = fc.array(
  fc.record({
    dt: nat(200),
    reopen: nat(9).map((n) => n === 0),
    ops: fc.array(abstractOp, { maxLength: 8 }),
  }),
  { minLength: 1, maxLength: 14 },
);

/** Turns abstract ops into a concrete Tick against the model's state before the tick. */
function resolve(m: ModelStore, t: AbstractTick, now: number, ids: { next: number }): Tick {
  const tick: Required<Omit<Tick, 'claimNew'>> = {
    now,
    createGroups: [],
    addTasks: [],
    seals: [],
    cancels: [],
    retries: [],
    taskAdds: [],
    spawns: [],
    commits: [],
    failures: [],
    requeues: [],
    checkpoints: [],
    scheduleTimeouts: [],
    workers: [],
    claims: [],
    events: [],
  };
  const groupId = (g: number) => {
    const x = m.groups.length === 0 || g % 8 === 7 ? undefined : m.groups[g % m.groups.length];
    return x?.id ?? 'missing';
  };
  const running = m.tasks.filter((x) => x.state === 'running');
  const pending = m.tasks.filter((x) => x.state === 'pending');
  const pick = (pool: typeof m.tasks, n: number) =>
    pool.length > 0 && n % 5 !== 4
      ? pool[n % pool.length]
      : m.tasks[n % Math.max(1, m.tasks.length)];
  for (const op of t.ops) {
    switch (op.k) {
      case 'create':
        tick.createGroups.push({
          ...group(
            `g${ids.next++}`,
            Array.from({ length: op.n }, (_, i) => ({ i })),
            {
              open: op.open,
              policy: op.failFast ? 'failFast' : 'collectAll',
              idempotencyKey: op.key === null ? null : `key-${op.key}`,
              handler: `h${op.handler}`,
            },
          ),
        });
        break;
      case 'add': {
        const id = groupId(op.g);
        const total = m.groups.find((g) => g.id === id)?.total ?? 0;
        const offset = {
          null: null,
          next: total,
          repeat: Math.max(0, total - op.n),
          bad: total + 1,
        }[op.offset];
        tick.addTasks.push({
          groupId: id,
          offset,
          inputs: Array.from({ length: op.n }, (_, i) => i),
        });
        break;
      }
      case 'seal':
        tick.seals.push(groupId(op.g));
        break;
      case 'cancel':
        tick.cancels.push(groupId(op.g));
        break;
      case 'retry':
        tick.retries.push(groupId(op.g));
        break;
      case 'scheduleTimeout':
        tick.scheduleTimeouts.push({
          groupId: groupId(op.g),
          error: { kind: 'unschedulable', message: `waited ${op.g}` },
        });
        break;
      case 'taskAdd': {
        const x = pick(running, op.t);
        tick.taskAdds.push({
          taskId: x?.taskId ?? 424_242,
          attempt: (x?.attempt ?? 1) - (op.fault === 'attempt' ? 1 : 0),
          workerId: op.fault === 'worker' ? 'w-other' : (x?.workerId ?? 'w0'),
          key: `#${op.key}`,
          inputs: Array.from({ length: op.n }, (_, i) => ({ added: i })),
        });
        break;
      }
      case 'claim': {
        const x = pick(pending, op.t);
        tick.claims.push({ taskId: x?.taskId ?? 424_242, workerId: `w${op.w}` });
        break;
      }
      case 'worker':
        tick.workers.push(worker(`w${op.w}`, op.dead ? 'dead' : 'alive', now));
        break;
      case 'event':
        tick.events.push({ type: 'task.lost', taskId: op.t, data: { t: op.t } });
        break;
      case 'commit':
      case 'fail':
      case 'requeue':
      case 'checkpoint': {
        const x = pick(running, op.t);
        const f = {
          taskId: x?.taskId ?? 424_242,
          attempt: (x?.attempt ?? 1) - (op.fault === 'attempt' ? 1 : 0),
          workerId: op.fault === 'worker' ? 'w-other' : (x?.workerId ?? 'w0'),
        };
        if (op.k === 'commit') tick.commits.push({ ...f, value: { t: op.t } });
        if (op.k === 'checkpoint') tick.checkpoints.push({ ...f, state: op.t });
        if (op.k === 'requeue')
          tick.requeues.push({ ...f, nodeFailure: op.node, runAt: now + (op.t % 2) * 50 });
        if (op.k === 'fail') {
          tick.failures.push({
            ...f,
            error: { kind: 'error', message: `e${op.t}` },
            retryAt: op.retry ? now + (op.t % 3) * 100 : null,
            nodeFailure: op.node,
          });
        }
        break;
      }
    }
  }
  return tick;
}

/** Every invariant of the contract, checked on `store` after a tick. */
/** A page with its records parsed, to compare across stores. */
function viewsOf(page: TaskPage): { tasks: TaskView[]; cut: boolean } {
  return { tasks: page.tasks.map(taskViewFromRecord), cut: page.cut };
}

async function checkInvariants(
  store: Store,
  model: ModelStore,
  before: Map<number, TaskView>,
  tick: Tick,
  out: TickOutcome,
): Promise<Map<number, TaskView>> {
  const now = new Map<number, TaskView>();
  for (const mg of model.groups) {
    const g = await store.getGroup(mg.id);
    assert.deepEqual(g, mg, `group ${mg.id} as the model has it`);
    assert.ok(g && countsConsistent(g), `counts of ${mg.id} add up`);
    const tasks = await tasksOf(store, mg.id);
    assert.deepEqual(tasks, await model.listTasks(mg.id, { limit: 100_000 }));
    // Paged by bytes: the same rows and the same cut as the model, at budgets that cut.
    for (const maxBytes of [0, 3, 1000]) {
      const q = { limit: 4, maxBytes };
      const f = { afterSeq: 0, limit: 4, maxBytes };
      assert.deepEqual(
        viewsOf(await store.taskPage(mg.id, q)),
        viewsOf(await model.taskPage(mg.id, q)),
      );
      assert.deepEqual(
        viewsOf(await store.finishedPage(mg.id, f)),
        viewsOf(await model.finishedPage(mg.id, f)),
      );
    }
    const count = (s: string) => tasks.filter((x) => x.state === s).length;
    assert.deepEqual(
      [g.total, g.pending, g.running, g.succeeded, g.failed, g.canceled],
      [
        tasks.length,
        count('pending'),
        count('running'),
        count('succeeded'),
        count('failed'),
        count('canceled'),
      ],
      `counters of ${g.id} match its tasks`,
    );
    const allFinal = tasks.every((x) => isFinal(x.state));
    if (g.state !== 'canceled') {
      assert.equal(g.state === 'done', g.sealedAt !== null && allFinal, `done rule for ${g.id}`);
    } else {
      assert.ok(allFinal, `canceled group ${g.id} has only final tasks`);
    }
    for (const x of tasks) now.set(x.taskId, x);
  }
  const claimedIds = out.claimed.map((c) => c.taskId);
  assert.equal(new Set(claimedIds).size, claimedIds.length, 'no task claimed twice in a tick');
  // A retry is the one way a final task changes: the failed tasks of a retried group go back to pending.
  const retried = new Set<string>();
  (tick.retries ?? []).forEach((id, i) => {
    const r = out.retries[i];
    if (r?.status === 'retried' && r.retried > 0) retried.add(id);
  });
  const wasRetried = (prev: TaskView) => prev.state === 'failed' && retried.has(prev.groupId);
  // A task running before the tick may be claimed only if this tick first ended its run.
  const ended = new Set<number>();
  for (const prev of before.values()) if (wasRetried(prev)) ended.add(prev.taskId);
  (tick.requeues ?? []).forEach((r, i) => out.requeues[i] === 'applied' && ended.add(r.taskId));
  (tick.failures ?? []).forEach((f, i) => out.failures[i] === 'applied' && ended.add(f.taskId));
  for (const c of out.claimed) {
    const prev = before.get(c.taskId);
    const wasFree = prev === undefined || prev.state === 'pending' || ended.has(c.taskId);
    assert.ok(wasFree, `task ${c.taskId} was claimed while running`);
    assert.equal(c.attempt, (prev?.attempt ?? 0) + 1, 'a claim is the next attempt');
  }
  for (const [id, prev] of before) {
    const cur = now.get(id);
    assert.ok(cur, `task ${id} still exists`);
    assert.ok(cur.attempt >= prev.attempt, 'attempt never decreases');
    if (isFinal(prev.state) && !wasRetried(prev))
      assert.deepEqual(cur, prev, 'a final task never changes');
    if (cur.state === 'running') assert.ok(cur.workerId, 'a running task has a lease holder');
  }
  const { leases } = await store.recover();
  assert.deepEqual(leases, (await model.recover()).leases);
  assert.deepEqual(await store.pendingGroups(), await model.pendingGroups());
  return now;
}

function propertyRules(make: Make): void {
  void describe('properties', () => {
    void it('random ticks: same answers as the reference model, and every invariant holds', async () => {
      await fc.assert(
        fc.asyncProperty(abstractTicks, async (ticks) => {
          const h = await make();
          try {
            const model = new ModelStore();
            const ids = { next: 0 };
            let now = 1000;
            let seen = new Map<number, TaskView>();
            let store = h.store;
            for (const t of ticks) {
              if (t.reopen) store = await h.reopen();
              now += t.dt;
              const tick = resolve(model, t, now, ids);
              const expected = await model.commitTick(tick);
              const actual = await store.commitTick(tick);
              assert.deepEqual(actual, expected);
              seen = await checkInvariants(store, model, seen, tick, actual);
              const groupIds = model.groups.map((g) => g.id);
              assert.deepEqual(
                await store.readyTasks(groupIds, now, 2),
                await model.readyTasks(groupIds, now, 2),
              );
              assert.equal(await store.nextRunAt(now), await model.nextRunAt(now));
              assert.deepEqual(await store.countTasks(), await model.countTasks());
            }
          } finally {
            await h.cleanup();
          }
        }),
        { numRuns: 60 },
      );
    });
  });
}
