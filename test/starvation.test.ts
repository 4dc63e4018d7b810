/**
 * No starvation, and saying why a task waits (issue 12, items 3 and 4), with
 * real processes: a coordinator (SQLite) and workers over WebSocket.
 *
 * (a) 300 groups no connected worker can run, submitted first, do not delay
 *     a runnable group (dispatch used to read only the 256 oldest groups
 *     with pending tasks: the victim stayed at the runs its submit claimed).
 * (b) a typo'd handler: the submit reply says so at once, the log says it once.
 * (c) scheduleTimeoutMs fails the waiting tasks with a clear error; the group ends.
 * (d) a group waiting for a label runs when a worker with that label joins.
 * (e) a group only an idle worker can run finishes while more than 256 older
 *     groups of another handler keep a busy worker's few slots full. Dispatch
 *     used to read the 256 least recently served groups of every shape a
 *     worker with free slots could run: whenever the busy worker had a slot
 *     free, all of them its groups, and the idle worker's group was read
 *     again only once the busy worker had served the groups ahead of it.
 *     This runs the path end to end (pick, readyTasks, planDispatch); the
 *     rule itself is pinned in core/runnable.test.ts, as this case does not
 *     fail the old rule every time (that needs the busy worker to have a
 *     slot free at every plan).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GroupView, TaskView } from '../src/protocol/http.js';
import { startServer, startWorker, until } from '../src/testing/procs.js';
import { fixture, realProcesses } from './real-processes.js';

const HANDLERS = fixture('fault-handlers.js');
const tmp = realProcesses('regroup-starvation-');

async function submit(url: string, body: object): Promise<GroupView> {
  const r = await fetch(`${url}/v1/groups`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  assert.equal(r.status, 201, `submit answered ${r.status}: ${text}`);
  return JSON.parse(text) as GroupView;
}

async function getGroup(url: string, id: string): Promise<GroupView> {
  const r = await fetch(`${url}/v1/groups/${id}`);
  assert.equal(r.status, 200);
  return (await r.json()) as GroupView;
}

async function tasksOf(url: string, id: string): Promise<TaskView[]> {
  const r = await fetch(`${url}/v1/groups/${id}/tasks?limit=100`);
  return ((await r.json()) as { tasks: TaskView[] }).tasks;
}

/** Lines of the coordinator's log that report this group waiting. */
function waitLogs(out: string[], groupId: string): string[] {
  return out.filter((l) => l.includes('group waiting') && l.includes(groupId));
}

describe('dispatch fairness and waiting reasons (real processes)', () => {
  it('(a) 300 unrunnable groups submitted first do not delay a runnable group', async () => {
    const server = await startServer(join(tmp.dir, 'a.db'));
    // Two slots: a submit claims at most two runs at once; the rest of the
    // victim needs dispatch to look past the unrunnable groups.
    await startWorker(server.url, HANDLERS, 'w1', ['--concurrency', '2']);
    const unrunnable: Promise<GroupView>[] = [];
    for (let i = 0; i < 300; i++) {
      const body =
        i % 2 === 0
          ? { handler: 'nobodyOffersThis', inputs: [i, i + 1] }
          : { handler: 'square', inputs: [i, i + 1], options: { requires: ['gpu'] } };
      unrunnable.push(submit(server.url, body));
      if (unrunnable.length % 50 === 0) await Promise.all(unrunnable);
    }
    const views = await Promise.all(unrunnable);
    assert.ok(views.every((v) => v.waiting !== undefined && v.pending === 2));
    const victim = await submit(server.url, {
      handler: 'square',
      inputs: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    });
    assert.equal(victim.waiting, undefined, 'a worker can run the victim');
    const done = await until(
      'the runnable group to finish',
      async () => {
        const g = await getGroup(server.url, victim.id);
        return g.done ? g : null;
      },
      10_000,
    );
    assert.equal(done.succeeded, 10);
    const first = await getGroup(server.url, views[0]!.id);
    assert.equal(first.pending, 2, 'the unrunnable groups still wait');
    assert.equal(first.waiting?.code, 'no_handler');
    assert.equal((await getGroup(server.url, views[1]!.id)).waiting?.code, 'no_label');
  });

  it("(b) a typo'd handler: the submit reply says why, the log says it once", async () => {
    const server = await startServer(join(tmp.dir, 'b.db'));
    await startWorker(server.url, HANDLERS, 'w1');
    const g = await submit(server.url, { handler: 'sqaure', inputs: [1, 2, 3] });
    assert.equal(g.waiting?.code, 'no_handler');
    assert.match(
      g.waiting.message,
      /^no worker offers handler "sqaure" \(did you mean "square"\?\); connected workers offer: /,
    );
    assert.match(g.waiting.message, /\bsquare\b/);
    assert.match(g.waiting.message, /\bslowSquare\b/);
    assert.ok(g.waiting.since > 0 && g.waiting.since <= Date.now());
    // More ticks go by (another group runs to the end): still logged once.
    const other = await submit(server.url, { handler: 'square', inputs: [1, 2, 3] });
    await until(
      'the other group to finish',
      async () => (await getGroup(server.url, other.id)).done,
    );
    await until('the wait to be logged', () => waitLogs(server.proc.out, g.id).length > 0);
    const lines = waitLogs(server.proc.out, g.id);
    assert.equal(lines.length, 1, `logged once:\n${lines.join('\n')}`);
    assert.match(lines[0]!, /sqaure/);
    const again = await getGroup(server.url, g.id);
    assert.deepEqual(again.waiting, g.waiting, 'GET shows the same reason and since');
    const list = await (await fetch(`${server.url}/v1/groups?limit=10`)).json();
    const listed = (list as { groups: GroupView[] }).groups.find((x) => x.id === g.id);
    assert.equal(listed?.waiting?.code, 'no_handler');
    await until('the waiting event to be written', async () => {
      const r = await fetch(`${server.url}/v1/events?after=0&limit=1000`);
      const { events } = (await r.json()) as { events: { type: string; groupId: string | null }[] };
      return events.filter((e) => e.type === 'group.waiting' && e.groupId === g.id).length === 1;
    });
  });

  it('(c) scheduleTimeoutMs fails the waiting tasks with a clear error and the group ends', async () => {
    const server = await startServer(join(tmp.dir, 'c.db'));
    await startWorker(server.url, HANDLERS, 'w1');
    const g = await submit(server.url, {
      handler: 'nobodyOffersThis',
      inputs: [1, 2, 3],
      options: { scheduleTimeoutMs: 300 },
    });
    assert.equal(g.waiting?.code, 'no_handler');
    const done = await until('the group to end', async () => {
      const v = await getGroup(server.url, g.id);
      return v.done ? v : null;
    });
    assert.deepEqual([done.state, done.failed, done.pending], ['done', 3, 0]);
    assert.equal(done.waiting, undefined);
    const tasks = await tasksOf(server.url, g.id);
    assert.equal(tasks.length, 3);
    for (const t of tasks) {
      assert.equal(t.state, 'failed');
      assert.equal(t.error?.kind, 'unschedulable');
      assert.match(t.error.message, /300 ms \(scheduleTimeoutMs\)/);
      assert.match(t.error.message, /no worker offers handler "nobodyOffersThis"/);
    }
  });

  it('(d) a group waiting for a label runs once a worker with that label joins', async () => {
    const server = await startServer(join(tmp.dir, 'd.db'));
    await startWorker(server.url, HANDLERS, 'plain');
    const g = await submit(server.url, {
      handler: 'square',
      inputs: [2, 3],
      options: { requires: ['gpu'] },
    });
    assert.equal(g.waiting?.code, 'no_label');
    assert.match(g.waiting.message, /"square" has labels gpu/);
    assert.equal((await getGroup(server.url, g.id)).waiting?.code, 'no_label');
    await startWorker(server.url, HANDLERS, 'gpu', ['--labels', 'gpu']);
    const done = await until('the group to finish', async () => {
      const v = await getGroup(server.url, g.id);
      return v.done ? v : null;
    });
    assert.equal(done.succeeded, 2);
    assert.equal(done.waiting, undefined, 'no longer waiting');
    const values = (await tasksOf(server.url, g.id)).map((t) => t.value);
    assert.deepEqual(values, [4, 9]);
  });

  it("(e) an idle worker's group runs while 300 groups of another handler keep a busy worker's slots full", async () => {
    const server = await startServer(join(tmp.dir, 'e.db'));
    // A worker offering one handler only, which the busy worker does not offer.
    const renderOnly = join(tmp.dir, 'render-handlers.mjs');
    writeFileSync(renderOnly, 'export async function render(x) {\n  return x * 10;\n}\n');
    await startWorker(server.url, HANDLERS, 'busy', ['--concurrency', '4']);
    await startWorker(server.url, renderOnly, 'idle', ['--concurrency', '1']);
    // 300 groups of short tasks: far more than the busy worker runs in the
    // test's time, so every group keeps ready tasks, more than one read
    // takes (256), and the busy worker has a slot free whenever a task ends.
    const backlog: Promise<GroupView>[] = [];
    for (let i = 0; i < 300; i++) {
      const inputs = Array.from({ length: 20 }, (_, n) => ({ n, ms: 10 }));
      backlog.push(submit(server.url, { handler: 'slowSquare', inputs }));
      if (backlog.length % 50 === 0) await Promise.all(backlog);
    }
    const busy = await Promise.all(backlog);
    // One slot: the submit claims one run; the other 19 need dispatch.
    const inputs = Array.from({ length: 20 }, (_, i) => i + 1);
    const victim = await submit(server.url, { handler: 'render', inputs });
    assert.equal(victim.waiting, undefined);
    const done = await until(
      'the idle worker to finish its group',
      async () => {
        const g = await getGroup(server.url, victim.id);
        return g.done ? g : null;
      },
      10_000,
    );
    assert.equal(done.succeeded, 20);
    const values = (await tasksOf(server.url, victim.id)).map((t) => t.value);
    assert.deepEqual(
      values,
      inputs.map((x) => x * 10),
    );
    // It did not wait for the backlog: more groups than one read takes
    // still have tasks to run.
    let open = 0;
    for (let i = 0; i < busy.length; i += 50) {
      const views = await Promise.all(busy.slice(i, i + 50).map((g) => getGroup(server.url, g.id)));
      open += views.filter((g) => !g.done).length;
    }
    assert.ok(open > 256, `${open} of the 300 groups still running`);
  });
});
