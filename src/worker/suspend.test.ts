/**
 * Waiting frees the slot, the worker's side: a handle's wait sends `suspend`,
 * the end of the wait sends `resume`, and the handler goes on only once the
 * coordinator answered `resumed`. Against the fake coordinator.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { RegroupError } from '../core/errors.js';
import {
  run,
  sleep,
  waitUntil,
  workerOnFake,
  type FakeCoordinator,
  type Msg,
} from './fake-coordinator.test-helper.js';
import type { Handler, WorkerOptions } from './options.js';
import type { TaskContext } from './run.js';

/** A worker of one slot (unless `o` says otherwise) on a fake coordinator. */
const setup = (t: TestContext, handlers: Record<string, Handler>, o: Partial<WorkerOptions> = {}) =>
  workerOnFake(t, handlers, {}, { concurrency: 1, ...o });

/** A child group of two tasks, done, as the wait route answers it. */
function doneGroup(id: string): object {
  const task = (index: number) => ({
    taskId: 100 + index,
    groupId: id,
    index,
    state: 'succeeded',
    attempt: 1,
    value: index + 1,
  });
  return {
    id,
    handler: 'leaf',
    state: 'done',
    total: 2,
    pending: 0,
    running: 0,
    succeeded: 2,
    failed: 0,
    canceled: 0,
    done: true,
    tasks: [task(0), task(1)],
  };
}

/** A parent that spawns a group, waits on it and returns what it got; `log` says how far it went. */
function parent(log: string[]): Handler {
  return async (_input, ctx: TaskContext) => {
    const child = await ctx.spawn('leaf', [1, 2]);
    log.push('waiting');
    try {
      const values = await child.wait();
      log.push('went on');
      return values;
    } catch (e) {
      log.push(`threw ${(e as RegroupError).code}`);
      throw e;
    }
  };
}

/** Answers the parent's spawn, then its first wait call with `doneGroup`. */
async function spawnAndWait(fake: FakeCoordinator): Promise<Msg> {
  const spawn = await fake.waitFor((m) => m.t === 'spawn');
  fake.send([{ t: 'spawned', taskId: 1, attempt: 1, seq: spawn.seq, ok: true, groupId: 'c1' }]);
  return fake.waitFor((m) => m.t === 'group' && m.op === 'waitGroup');
}

function reply(call: Msg, body: object): object {
  return { t: 'group_reply', taskId: 1, attempt: 1, seq: call.seq, ok: true, status: 200, body };
}

void test('a wait gives the slot back (suspend), another run takes it, and the handler goes on only once resumed', async (t) => {
  const log: string[] = [];
  const { fake } = await setup(t, { parent: parent(log), leaf: (n: number) => n * 10 });
  fake.send([run(1, 'parent', null)]);
  const call = await spawnAndWait(fake);
  const suspend = await fake.waitFor((m) => m.t === 'suspend');
  assert.deepEqual(suspend, { t: 'suspend', taskId: 1, attempt: 1 });

  // Its one slot is free: a run sent now runs, it is not released.
  fake.send([run(2, 'leaf', 4)]);
  const r2 = await fake.waitFor((m) => m.t === 'result' && m.taskId === 2);
  assert.equal(r2.value, 40);
  assert.equal(fake.all('release').length, 0);

  fake.send([reply(call, doneGroup('c1'))]);
  const resume = await fake.waitFor((m) => m.t === 'resume');
  assert.deepEqual(resume, { t: 'resume', taskId: 1, attempt: 1, seq: 0 });
  await sleep(50);
  assert.deepEqual(log, ['waiting'], 'the handler waits for its slot');
  assert.equal(fake.all('result').length, 1);

  fake.send([{ t: 'resumed', taskId: 1, attempt: 1, seq: 0, ok: true }]);
  const r1 = await fake.waitFor((m) => m.t === 'result' && m.taskId === 1);
  assert.deepEqual(r1.value, [1, 2]);
  assert.deepEqual(log, ['waiting', 'went on']);
  assert.equal(fake.all('suspend').length, 1, 'one wait, one suspend, however many polls');
});

void test('a run that does not wait keeps its slot: a run past the slots is released', async (t) => {
  const log: string[] = [];
  const { fake } = await setup(t, { parent: parent(log), leaf: (n: number) => n });
  fake.send([run(1, 'parent', null)]);
  await fake.waitFor((m) => m.t === 'spawn');
  // Not waiting yet (the spawn is not answered): the parent holds the only slot.
  fake.send([run(2, 'leaf', 1)]);
  const released = await fake.waitFor((m) => m.t === 'release');
  assert.equal(released.taskId, 2);
});

void test('a revoke while the resume waits for its slot ends the wait with the revoke', async (t) => {
  const log: string[] = [];
  const { fake } = await setup(t, { parent: parent(log), leaf: (n: number) => n });
  fake.send([run(1, 'parent', null)]);
  const call = await spawnAndWait(fake);
  fake.send([reply(call, doneGroup('c1'))]);
  await fake.waitFor((m) => m.t === 'resume');
  fake.send([{ t: 'revoke', taskId: 1, attempt: 1, reason: 'canceled' }]);
  await waitUntil(() => log.length === 2, 'the wait ended');
  assert.deepEqual(log, ['waiting', 'threw canceled']);
  await sleep(50);
  assert.equal(
    fake.all('result').length + fake.all('fail').length,
    0,
    'a revoked run reports nothing',
  );
});

void test('a refused resume (stale_attempt) ends the wait with that code', async (t) => {
  const log: string[] = [];
  const { fake } = await setup(t, { parent: parent(log), leaf: (n: number) => n });
  fake.send([run(1, 'parent', null)]);
  const call = await spawnAndWait(fake);
  fake.send([reply(call, doneGroup('c1'))]);
  const resume = await fake.waitFor((m) => m.t === 'resume');
  fake.send([
    { t: 'resumed', taskId: 1, attempt: 1, seq: resume.seq, ok: false, code: 'stale_attempt' },
  ]);
  await waitUntil(() => log.length === 2, 'the wait ended');
  assert.deepEqual(log, ['waiting', 'threw stale_attempt']);
});

void test('after a resumed reconnect the worker says again which runs are suspended, before their resume', async (t) => {
  const log: string[] = [];
  const { fake } = await setup(t, { parent: parent(log), leaf: (n: number) => n });
  fake.send([run(1, 'parent', null)]);
  const call = await spawnAndWait(fake);
  await fake.waitFor((m) => m.t === 'suspend');
  fake.send([reply(call, doneGroup('c1'))]);
  await fake.waitFor((m) => m.t === 'resume');
  fake.dropAll();
  const conn2 = await fake.waitForConn(2);
  await waitUntil(() => fake.all('resume', conn2)[0], 'the resume asked again');
  const order = fake.received
    .filter((r) => r.conn === conn2 && (r.msg.t === 'suspend' || r.msg.t === 'resume'))
    .map((r) => r.msg.t);
  assert.deepEqual(order, ['suspend', 'resume']);
  fake.send([{ t: 'resumed', taskId: 1, attempt: 1, seq: 0, ok: true }], conn2);
  const r1 = await fake.waitFor((m, c) => m.t === 'result' && c === conn2);
  assert.deepEqual(r1.value, [1, 2]);
});

void test('past maxSuspended a waiting handler keeps its slot: no suspend, no resume', async (t) => {
  const log: string[] = [];
  const { fake } = await setup(
    t,
    { parent: parent(log), leaf: (n: number) => n },
    { maxSuspended: 0 },
  );
  fake.send([run(1, 'parent', null)]);
  const call = await spawnAndWait(fake);
  fake.send([reply(call, doneGroup('c1'))]);
  const r1 = await fake.waitFor((m) => m.t === 'result');
  assert.deepEqual(r1.value, [1, 2]);
  assert.equal(fake.all('suspend').length + fake.all('resume').length, 0);
});

void test('results() gives the slot back while it waits for a page, and takes it before the handler reads it', async (t) => {
  const seen: unknown[] = [];
  const { fake } = await setup(t, {
    parent: async (_input, ctx: TaskContext) => {
      const child = await ctx.spawn('leaf', [1]);
      for await (const o of child.results()) seen.push(o.value);
      return seen;
    },
    leaf: (n: number) => n,
  });
  fake.send([run(1, 'parent', null)]);
  const spawn = await fake.waitFor((m) => m.t === 'spawn');
  fake.send([{ t: 'spawned', taskId: 1, attempt: 1, seq: spawn.seq, ok: true, groupId: 'c1' }]);
  const call = await fake.waitFor((m) => m.t === 'group' && m.op === 'finishedTasks');
  await fake.waitFor((m) => m.t === 'suspend');
  const task = {
    taskId: 100,
    groupId: 'c1',
    index: 0,
    state: 'succeeded',
    attempt: 1,
    value: 7,
    seq: 1,
  };
  fake.send([reply(call, { tasks: [task], cursor: 1, done: true })]);
  const resume = await fake.waitFor((m) => m.t === 'resume');
  await sleep(30);
  assert.deepEqual(seen, [], 'the page is read once the slot is back');
  fake.send([{ t: 'resumed', taskId: 1, attempt: 1, seq: resume.seq, ok: true }]);
  const r1 = await fake.waitFor((m) => m.t === 'result');
  assert.deepEqual(r1.value, [7]);
});
