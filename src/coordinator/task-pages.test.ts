import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { isGroupDone } from '../core/group.js';
import { resolveTaskOptions } from '../core/options.js';
import type { TaskView } from '../protocol/http.js';
import { taskViewFromRecord } from '../store/rows.js';
import { SqliteStore } from '../store/sqlite.js';
import type { GroupView } from '../protocol/http.js';
import type { TaskRecord } from '../store/store.js';
import { finishedPageText, taskText, tasksPageText, waitReplyText } from './task-pages.js';

const root = mkdtempSync(join(tmpdir(), 'regroup-task-pages-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A store with group `g` of `values.length` tasks, ended in `order`; `{ fail }` fails one. */
async function storeWith(
  values: unknown[],
  opts: { order?: number[]; open?: boolean; extra?: number } = {},
): Promise<SqliteStore> {
  const s = new SqliteStore({ path: join(root, `db-${counter++}.sqlite`) });
  await s.open();
  const n = values.length + (opts.extra ?? 0);
  const inputs = Array.from({ length: n }, (_, i) => i);
  const options = resolveTaskOptions({ maxAttempts: 1 });
  const g = { id: 'g', handler: 'h', policy: 'collectAll' as const, idempotencyKey: null };
  await s.commitTick({
    now: 1,
    createGroups: [{ ...g, open: opts.open ?? false, options, inputs }],
  });
  const ready = await s.readyTasks(['g'], 2, n);
  const out = await s.commitTick({
    now: 2,
    claims: ready.map((r) => ({ taskId: r.taskId, workerId: 'w' })),
  });
  let now = 3;
  for (const i of opts.order ?? values.map((_, k) => k)) {
    const c = out.claimed.find((x) => x.index === i);
    assert.ok(c);
    const fence = { taskId: c.taskId, attempt: c.attempt, workerId: 'w' };
    const v = values[i];
    if (typeof v === 'object' && v !== null && 'fail' in v) {
      const error = { kind: 'error' as const, message: String(v.fail) };
      await s.commitTick({
        now: now++,
        failures: [{ ...fence, error, retryAt: null, nodeFailure: false }],
      });
    } else {
      await s.commitTick({ now: now++, commits: [{ ...fence, value: v }] });
    }
  }
  return s;
}

async function viewOf(s: SqliteStore): Promise<GroupView> {
  const g = await s.getGroup('g');
  assert.ok(g);
  return { ...g, done: isGroupDone(g.state, g) };
}

/** Counts JSON.parse calls while `fn` runs. */
async function parses<T>(fn: () => Promise<T>): Promise<{ out: T; calls: number }> {
  const real = JSON.parse;
  let calls = 0;
  JSON.parse = ((text: string, reviver?: Parameters<typeof real>[1]) => {
    calls++;
    return real(text, reviver);
  }) as typeof JSON.parse;
  try {
    return { out: await fn(), calls };
  } finally {
    JSON.parse = real;
  }
}

interface TasksReply {
  tasks: TaskView[];
  next: number | null;
}

const hundred = (i: number) => String(i).repeat(98); // 100 bytes of JSON text

void describe('task pages: replies written from raw value text', () => {
  void it('tasksPageText: the documented page, values spliced in without a parse', async () => {
    const values: unknown[] = [
      { a: [1, 2.5, null, true], s: 'quote " backslash \\ ]}' },
      'é😀 \u2028 line',
      { fail: 'boom' },
      [],
      null,
    ];
    const s = await storeWith(values);
    const { out, calls } = await parses(() => tasksPageText(s, 'g', { after: -1, limit: 100 }));
    assert.equal(calls, 0, 'no JSON.parse on the way from store to reply');
    const reply = JSON.parse(out) as TasksReply;
    assert.deepEqual(reply, { tasks: await s.listTasks('g', { limit: 100 }), next: null });
    assert.deepEqual(reply.tasks[0]?.value, values[0]);
    assert.equal(reply.tasks[1]?.value, values[1]);
    assert.deepEqual(reply.tasks[2]?.error, { kind: 'error', message: 'boom' });
    assert.equal(reply.tasks[4]?.value, null);
    assert.ok('value' in (reply.tasks[4] ?? {}), 'a null result is sent as value: null');
    await s.close();
  });

  void it('tasksPageText: next is set on a page cut by bytes or by limit, null at the end', async () => {
    const s = await storeWith(Array.from({ length: 5 }, (_, i) => hundred(i)));
    const shapes: [number[], number | null][] = [];
    let after = -1;
    for (;;) {
      const page = JSON.parse(
        await tasksPageText(s, 'g', { after, limit: 1000 }, 250),
      ) as TasksReply;
      shapes.push([page.tasks.map((t) => t.index), page.next]);
      if (page.next === null) break;
      after = page.next;
    }
    assert.deepEqual(shapes, [
      [[0, 1], 1],
      [[2, 3], 3],
      [[4], null],
    ]);
    const full = JSON.parse(await tasksPageText(s, 'g', { after: -1, limit: 2 })) as TasksReply;
    assert.deepEqual([full.tasks.length, full.next], [2, 1]);
    const failed = JSON.parse(
      await tasksPageText(s, 'g', { after: -1, limit: 10, state: 'failed' }),
    ) as TasksReply;
    assert.deepEqual(failed, { tasks: [], next: null });
    await s.close();
  });

  void it('finishedPageText: done only when the group is done and the page reached the end', async () => {
    const s = await storeWith(
      Array.from({ length: 4 }, (_, i) => hundred(i)),
      {
        order: [2, 0, 3, 1],
      },
    );
    const view = await viewOf(s);
    assert.equal(view.done, true);
    const pages: { tasks: TaskView[]; cursor: number; done: boolean }[] = [];
    let cursor = 0;
    for (;;) {
      const { text, empty } = await finishedPageText(s, view, { after: cursor, limit: 1000 }, 250);
      const page = JSON.parse(text) as (typeof pages)[number];
      assert.equal(empty, page.tasks.length === 0);
      pages.push(page);
      if (page.done) break;
      assert.ok(pages.length < 10, 'ends');
      cursor = page.cursor;
    }
    assert.deepEqual(
      pages.map((p) => [p.tasks.map((t) => t.index), p.done]),
      [
        [[2, 0], false],
        [[3, 1], true],
      ],
    );
    assert.deepEqual(
      pages.flatMap((p) => p.tasks),
      await s.finishedTasks('g', 0, 100),
    );
    // A full page (by limit) of a done group is not the end either.
    const byLimit = JSON.parse((await finishedPageText(s, view, { after: 0, limit: 4 })).text) as {
      done: boolean;
    };
    assert.equal(byLimit.done, false);
    const end = await finishedPageText(s, view, { after: cursor + 100, limit: 10 });
    assert.deepEqual(
      [JSON.parse(end.text), end.empty],
      [{ tasks: [], cursor: cursor + 100, done: true }, true],
    );
    await s.close();
  });

  void it('finishedPageText: a group not done is never done, whatever the page', async () => {
    const s = await storeWith([hundred(0)], { extra: 1 });
    const view = await viewOf(s);
    assert.equal(view.done, false);
    const first = await finishedPageText(s, view, { after: 0, limit: 10 });
    const page = JSON.parse(first.text) as { tasks: TaskView[]; cursor: number; done: boolean };
    assert.deepEqual([page.tasks.length, page.done, first.empty], [1, false, false]);
    const next = await finishedPageText(s, view, { after: page.cursor, limit: 10 });
    assert.deepEqual(
      [JSON.parse(next.text), next.empty],
      [{ tasks: [], cursor: page.cursor, done: false }, true],
    );
    await s.close();
  });

  void it('waitReplyText inlines the tasks of a done group only when they fit n and the byte budget', async () => {
    const s = await storeWith(Array.from({ length: 3 }, (_, i) => hundred(i)));
    const view = await viewOf(s);
    const tasks = await s.listTasks('g', { limit: 10 });
    const { out, calls } = await parses(() => waitReplyText(s, view, 10, 300));
    assert.equal(calls, 0);
    assert.deepEqual(JSON.parse(out), { ...view, tasks });
    assert.deepEqual(JSON.parse(await waitReplyText(s, view, 10, 299)), view, 'over the budget');
    assert.deepEqual(JSON.parse(await waitReplyText(s, view, 2, 1e9)), view, 'more than n tasks');
    assert.deepEqual(JSON.parse(await waitReplyText(s, view, 0, 1e9)), view, 'no tasks asked');
    await s.close();
    const open = await storeWith([1], { extra: 1 });
    const running = await viewOf(open);
    assert.deepEqual(JSON.parse(await waitReplyText(open, running, 10)), running, 'not done');
    await open.close();
  });

  void it('taskText is the TaskView JSON of the record, for any JSON value', () => {
    const record = fc.record({
      taskId: fc.nat(),
      groupId: fc.string(),
      index: fc.nat(),
      state: fc.constantFrom(
        ...(['pending', 'running', 'succeeded', 'failed', 'canceled'] as const),
      ),
      attempt: fc.nat(),
      workerId: fc.option(fc.string()),
      startedAt: fc.option(fc.nat()),
      finishedAt: fc.option(fc.nat()),
      seq: fc.option(fc.nat()),
      valueJson: fc.option(fc.jsonValue().map((v) => JSON.stringify(v))),
      errorJson: fc.option(
        fc
          .record({ kind: fc.constant('error'), message: fc.string() })
          .map((e) => JSON.stringify(e)),
      ),
    });
    fc.assert(
      fc.property(record, (r: TaskRecord) => {
        assert.deepEqual(JSON.parse(taskText(r)), taskViewFromRecord(r));
      }),
    );
  });
});
