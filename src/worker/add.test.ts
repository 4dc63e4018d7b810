import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegroupError } from '../core/errors.js';
import { run, sleep, waitUntil, workerOnFake, type Msg } from './fake-coordinator.test-helper.js';
import type { TaskContext } from './run.js';

const setup = workerOnFake;

const isAdd = (seq: number) => (m: Msg) => m.t === 'add' && m.seq === seq;

function added(m: Msg, fields: object): object {
  return { t: 'added', taskId: m.taskId, attempt: m.attempt, seq: m.seq, ...fields };
}

/** What a call did: its answer, or the code and message it was refused with. */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    return await p;
  } catch (e) {
    assert.ok(e instanceof RegroupError, String(e));
    return { code: e.code, message: e.message };
  }
}

void test('ctx.add sends add with the default keys #0, #1 and a given key, and resolves with the indexes', async (t) => {
  const results: unknown[] = [];
  const { fake } = await setup(t, {
    crawl: async (_input, ctx: TaskContext) => {
      results.push(await ctx.add([{ url: 'a' }, { url: 'b' }]));
      results.push(await ctx.add([{ url: 'c' }], { key: 'page-7' }));
      results.push(await ctx.add([], { handler: 'crawl' }));
      return 'done';
    },
  });
  fake.send([run(1, 'crawl', null)]);
  const a0 = await fake.waitFor(isAdd(0));
  assert.deepEqual(a0, {
    t: 'add',
    taskId: 1,
    attempt: 1,
    seq: 0,
    key: '#0',
    inputs: [{ url: 'a' }, { url: 'b' }],
  });
  fake.send([added(a0, { ok: true, first: 5, count: 2 })]);
  const a1 = await fake.waitFor(isAdd(1));
  assert.deepEqual([a1.key, a1.inputs], ['page-7', [{ url: 'c' }]]);
  fake.send([added(a1, { ok: true, first: 7, count: 1 })]);
  const a2 = await fake.waitFor(isAdd(2));
  assert.deepEqual([a2.key, a2.inputs], ['#1', []]);
  fake.send([added(a2, { ok: true, first: 8, count: 0 })]);
  const r = await fake.waitFor((m) => m.t === 'result');
  assert.equal(r.value, 'done');
  assert.deepEqual(results, [
    { first: 5, count: 2 },
    { first: 7, count: 1 },
    { first: 8, count: 0 },
  ]);
});

void test('a run reports only once its adds are answered, even an add it did not await', async (t) => {
  const { fake } = await setup(t, {
    careless: (_input, ctx: TaskContext) => {
      void ctx.add(['child']);
      return 'returned at once';
    },
  });
  fake.send([run(1, 'careless', null)]);
  const a = await fake.waitFor(isAdd(0));
  await sleep(100);
  assert.equal(fake.all('result').length, 0, 'no result while the add is in flight');
  fake.send([added(a, { ok: true, first: 1, count: 1 })]);
  const r = await fake.waitFor((m) => m.t === 'result');
  assert.equal(r.value, 'returned at once');
});

void test('a refused add rejects with the coordinator code and message (a stale attempt, a conflict)', async (t) => {
  const seen: unknown[] = [];
  const { fake } = await setup(t, {
    adder: async (_input, ctx: TaskContext) => {
      seen.push(await outcome(ctx.add([1])));
      seen.push(await outcome(ctx.add([2, 3], { key: 'k' })));
      return 'after';
    },
  });
  fake.send([run(1, 'adder', null)]);
  const a0 = await fake.waitFor(isAdd(0));
  fake.send([
    added(a0, {
      ok: false,
      code: 'stale_attempt',
      message: 'task 1 attempt 1 no longer holds its lease',
    }),
  ]);
  const a1 = await fake.waitFor(isAdd(1));
  fake.send([added(a1, { ok: false, code: 'idempotency_conflict', message: 'first added 1' })]);
  await fake.waitFor((m) => m.t === 'result');
  assert.deepEqual(seen, [
    {
      code: 'stale_attempt',
      message:
        'the coordinator did not make the add "#0" of task 1 attempt 1: task 1 attempt 1 no longer holds its lease',
    },
    {
      code: 'idempotency_conflict',
      message: 'the coordinator did not make the add "k" of task 1 attempt 1: first added 1',
    },
  ]);
});

void test('refused before sending: another handler, bad keys and options, inputs JSON cannot carry, an add after the return', async (t) => {
  const seen: unknown[] = [];
  let late: TaskContext | undefined;
  const { fake } = await setup(t, {
    picky: async (_input, ctx: TaskContext) => {
      late = ctx;
      const calls: (() => Promise<unknown>)[] = [
        () => ctx.add([1], { handler: 'other' }),
        () => ctx.add([1], { key: '#3' }),
        () => ctx.add([1], { key: '' }),
        () => ctx.add([1], { keys: 'typo' } as never),
        () => ctx.add('one' as never),
        () => ctx.add([1, Number.NaN]),
      ];
      for (const call of calls) seen.push(await outcome(call()));
      // Refused calls use no default key: this one is #0.
      seen.push(await ctx.add([1]));
      return 'ok';
    },
  });
  fake.send([run(1, 'picky', null)]);
  const a = await fake.waitFor(isAdd(0));
  assert.equal(a.key, '#0');
  fake.send([added(a, { ok: true, first: 1, count: 1 })]);
  await fake.waitFor((m) => m.t === 'result');
  assert.equal(fake.all('add').length, 1, 'only the good add was sent');
  const codes = seen.map((s) => (s as { code?: string }).code ?? s);
  assert.deepEqual(codes, [
    'bad_request',
    'validation_failed',
    'validation_failed',
    'validation_failed',
    'validation_failed',
    'validation_failed',
    { first: 1, count: 1 },
  ]);
  const messages = seen.slice(0, 6).map((s) => (s as { message: string }).message);
  assert.match(messages[0]!, /ctx\.spawn/);
  assert.match(messages[1]!, /starts with #/);
  assert.match(messages[3]!, /no option "keys"/);
  assert.match(messages[5]!, /inputs\[1\] is NaN/);
  assert.ok(late);
  const after = await outcome(late.add([9]));
  assert.equal((after as { code: string }).code, 'bad_request');
  assert.match((after as { message: string }).message, /after the handler of task 1 returned/);
});

void test('an add in flight is sent again after a resumed reconnect, before the outbox', async (t) => {
  let result: unknown;
  const { fake } = await setup(t, {
    adder: async (_input, ctx: TaskContext) => {
      result = await ctx.add(['x', 'y'], { key: 'k' });
      return 'done';
    },
  });
  fake.send([run(1, 'adder', null)]);
  const first = await fake.waitFor(isAdd(0));
  const conn1 = fake.last;
  fake.dropAll();
  const conn2 = await fake.waitForConn(2);
  const again = await waitUntil(
    () => fake.all('add', conn2)[0],
    'the add sent again on the new connection',
  );
  assert.notEqual(conn1, conn2);
  assert.deepEqual(again, first);
  fake.send([added(again, { ok: true, first: 3, count: 2 })], conn2);
  await fake.waitFor((m, c) => m.t === 'result' && c === conn2);
  assert.deepEqual(result, { first: 3, count: 2 });
});

void test('a revoke rejects the adds its run waits for', async (t) => {
  let seen: unknown;
  const { fake } = await setup(t, {
    adder: async (_input, ctx: TaskContext) => {
      seen = await outcome(ctx.add(['x']));
      throw new Error('not reported: the run was revoked');
    },
  });
  fake.send([run(1, 'adder', null)]);
  await fake.waitFor(isAdd(0));
  fake.send([{ t: 'revoke', taskId: 1, attempt: 1, reason: 'canceled' }]);
  await waitUntil(() => seen, 'the add rejected');
  assert.equal((seen as { code: string }).code, 'canceled');
  await sleep(50);
  assert.equal(fake.all('fail').length + fake.all('result').length, 0);
});
