/**
 * The store contract, paged reads by bytes (taskPage, finishedPage) and the
 * dashboard's read without values (taskSummaries). Part of the one suite in
 * contract.ts, run against every store; kept apart only for length.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveTaskOptions } from '../../src/core/options.js';
import type { TaskView } from '../../src/protocol/http.js';
import { taskViewFromRecord } from '../../src/store/rows.js';
import type { NewGroup, Store, TaskPage, TaskRecord } from '../../src/store/store.js';
import type { StoreHarness } from './contract.js';

type Make = () => Promise<StoreHarness>;

const W = 'worker-1';

function using(make: Make, body: (store: Store) => Promise<void>): () => Promise<void> {
  return async () => {
    const h = await make();
    try {
      await body(h.store);
    } finally {
      await h.cleanup();
    }
  };
}

function group(id: string, n: number): NewGroup {
  return {
    id,
    handler: 'h',
    policy: 'collectAll',
    idempotencyKey: null,
    open: false,
    options: resolveTaskOptions({ maxAttempts: 1 }),
    inputs: Array.from({ length: n }, (_, i) => i),
  };
}

/**
 * A group of `values.length` tasks, all claimed, then ended one by one in
 * `order` (default input order): task i succeeds with values[i], or fails
 * for good when values[i] is `{ fail: message }`.
 */
async function finishGroup(
  store: Store,
  id: string,
  values: unknown[],
  order: number[] = values.map((_, i) => i),
): Promise<void> {
  await store.commitTick({ now: 1, createGroups: [group(id, values.length)] });
  const ready = await store.readyTasks([id], 2, values.length);
  const out = await store.commitTick({
    now: 2,
    claims: ready.map((r) => ({ taskId: r.taskId, workerId: W })),
  });
  const byIndex = new Map(out.claimed.map((c) => [c.index, c]));
  let now = 3;
  for (const i of order) {
    const c = byIndex.get(i);
    assert.ok(c, `task ${i} was claimed`);
    const fence = { taskId: c.taskId, attempt: c.attempt, workerId: W };
    const value = values[i];
    if (typeof value === 'object' && value !== null && 'fail' in value) {
      const error = { kind: 'error' as const, message: String(value.fail) };
      await store.commitTick({
        now: now++,
        failures: [{ ...fence, error, retryAt: null, nodeFailure: false }],
      });
    } else {
      await store.commitTick({ now: now++, commits: [{ ...fence, value }] });
    }
  }
}

const bytes = (s: string | null): number => (s === null ? 0 : Buffer.byteLength(s));
const rowBytes = (t: TaskRecord): number => bytes(t.valueJson) + bytes(t.errorJson);
const pageBytes = (p: TaskPage): number => p.tasks.reduce((n, t) => n + rowBytes(t), 0);

/** Every page of a group in input order, by `after` = the last index of the page before. */
async function allPages(
  store: Store,
  id: string,
  limit: number,
  maxBytes: number,
): Promise<TaskPage[]> {
  const pages: TaskPage[] = [];
  let after = -1;
  for (;;) {
    const page = await store.taskPage(id, { after, limit, maxBytes });
    pages.push(page);
    const last = page.tasks.at(-1);
    if (!last || (!page.cut && page.tasks.length < limit)) return pages;
    after = last.index;
  }
}

export function pageRules(make: Make): void {
  void describe('reads paged by bytes', () => {
    void it(
      'taskPage keeps value text raw and cuts a page at the byte budget, at least one row',
      using(make, async (store) => {
        // 98 characters: 100 bytes of JSON text each.
        const values = Array.from({ length: 7 }, (_, i) => String(i).repeat(98));
        await finishGroup(store, 'g', values);
        const views = await store.listTasks('g', { limit: 100 });
        const pages = await allPages(store, 'g', 1000, 250);
        assert.deepEqual(
          pages.map((p) => [p.tasks.map((t) => t.index), p.cut]),
          [
            [[0, 1], true],
            [[2, 3], true],
            [[4, 5], true],
            [[6], false],
          ],
        );
        const rows = pages.flatMap((p) => p.tasks);
        assert.deepEqual(rows.map(taskViewFromRecord), views);
        for (const t of rows) assert.equal(t.valueJson, JSON.stringify(values[t.index]));
        for (const p of pages) assert.ok(pageBytes(p) <= 250, `${pageBytes(p)} bytes`);
        // One row alone over the budget still makes a page, and the page says more follow.
        const one = await store.taskPage('g', { after: 2, limit: 1000, maxBytes: 10 });
        assert.deepEqual([one.tasks.map((t) => t.index), one.cut], [[3], true]);
        const lastOne = await store.taskPage('g', { after: 5, limit: 1000, maxBytes: 10 });
        assert.deepEqual([lastOne.tasks.map((t) => t.index), lastOne.cut], [[6], false]);
        // A page cut by limit, not by bytes, is not `cut`.
        const byRows = await store.taskPage('g', { limit: 3, maxBytes: 1e9 });
        assert.deepEqual([byRows.tasks.map((t) => t.index), byRows.cut], [[0, 1, 2], false]);
        // Exactly at the budget fits.
        const exact = await store.taskPage('g', { limit: 1000, maxBytes: 300 });
        assert.deepEqual([exact.tasks.map((t) => t.index), exact.cut], [[0, 1, 2], true]);
        assert.deepEqual(await store.taskPage('g', { after: 6, limit: 10, maxBytes: 10 }), {
          tasks: [],
          cut: false,
        });
        assert.deepEqual(await store.taskPage('nope', { limit: 10, maxBytes: 10 }), {
          tasks: [],
          cut: false,
        });
      }),
    );

    void it(
      'the budget counts UTF-8 bytes of value and error text; a task without either costs nothing',
      using(make, async (store) => {
        // 'é' is 2 bytes: 50 of them are 102 bytes of JSON (52 characters).
        const values: unknown[] = ['é'.repeat(50), 'é'.repeat(50), { fail: 'x'.repeat(200) }, 1];
        await finishGroup(store, 'u', values);
        const p1 = await store.taskPage('u', { limit: 10, maxBytes: 150 });
        assert.deepEqual([p1.tasks.map((t) => t.index), p1.cut], [[0], true]);
        const p2 = await store.taskPage('u', { after: 0, limit: 10, maxBytes: 300 });
        // 102 + the failed task's error text (over 200 bytes): cut after the first.
        assert.deepEqual([p2.tasks.map((t) => t.index), p2.cut], [[1], true]);
        const failed = await store.taskPage('u', { after: 1, limit: 10, maxBytes: 1 });
        const f = failed.tasks[0];
        assert.ok(f && f.valueJson === null && f.errorJson !== null);
        assert.deepEqual(JSON.parse(f.errorJson), { kind: 'error', message: 'x'.repeat(200) });
        // Pending tasks carry no text: a zero budget still pages them by limit.
        await store.commitTick({ now: 50, createGroups: [group('p', 5)] });
        const pending = await store.taskPage('p', { limit: 3, maxBytes: 0 });
        assert.deepEqual([pending.tasks.map((t) => t.index), pending.cut], [[0, 1, 2], false]);
      }),
    );

    void it(
      'taskPage with a state filter cuts the filtered rows',
      using(make, async (store) => {
        const values: unknown[] = ['a'.repeat(98), { fail: 'no' }, 'b'.repeat(98), 'c'.repeat(98)];
        await finishGroup(store, 's', values);
        const p = await store.taskPage('s', { limit: 10, maxBytes: 150, state: 'succeeded' });
        assert.deepEqual([p.tasks.map((t) => t.index), p.cut], [[0], true]);
        const q = await store.taskPage('s', {
          after: 0,
          limit: 10,
          maxBytes: 200,
          state: 'succeeded',
        });
        assert.deepEqual([q.tasks.map((t) => t.index), q.cut], [[2, 3], false]);
      }),
    );

    void it(
      'finishedPage pages final tasks in finishing order, cut by bytes',
      using(make, async (store) => {
        const values = Array.from({ length: 6 }, (_, i) => String(i).repeat(98));
        const order = [4, 1, 5, 0, 3, 2];
        await finishGroup(store, 'f', values, order);
        const all = await store.finishedTasks('f', 0, 100);
        const seen: TaskRecord[] = [];
        const shapes: [number[], boolean][] = [];
        let afterSeq = 0;
        for (;;) {
          const page = await store.finishedPage('f', { afterSeq, limit: 1000, maxBytes: 250 });
          shapes.push([page.tasks.map((t) => t.index), page.cut]);
          seen.push(...page.tasks);
          const last = page.tasks.at(-1);
          if (!last || !page.cut) break;
          afterSeq = last.seq ?? afterSeq;
        }
        assert.deepEqual(shapes, [
          [[4, 1], true],
          [[5, 0], true],
          [[3, 2], false],
        ]);
        assert.deepEqual(seen.map(taskViewFromRecord), all);
        const byRows = await store.finishedPage('f', { afterSeq: 0, limit: 2, maxBytes: 1e9 });
        assert.deepEqual([byRows.tasks.map((t) => t.index), byRows.cut], [[4, 1], false]);
        const tiny = await store.finishedPage('f', { afterSeq: 0, limit: 10, maxBytes: 1 });
        assert.deepEqual([tiny.tasks.map((t) => t.index), tiny.cut], [[4], true]);
      }),
    );

    void it(
      'taskSummaries is listTasks without values',
      using(make, async (store) => {
        await finishGroup(store, 'd', ['v'.repeat(1000), { fail: 'boom' }, { big: [1, 2, 3] }]);
        await store.commitTick({ now: 90, createGroups: [group('e', 2)] });
        for (const [id, query] of [
          ['d', { limit: 10 }],
          ['d', { after: 0, limit: 1 }],
          ['d', { limit: 10, state: 'failed' as const }],
          ['e', { limit: 10 }],
        ] as const) {
          const views = await store.listTasks(id, query);
          const expected = views.map(({ value: _value, ...rest }: TaskView) => rest);
          assert.deepEqual(await store.taskSummaries(id, query), expected);
        }
      }),
    );
  });
}
