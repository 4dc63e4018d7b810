import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegroupError } from '../core/errors.js';
import { run, waitUntil, workerOnFake } from './fake-coordinator.test-helper.js';
import type { TaskContext } from './run.js';

/** A gate a handler waits on until the test opens it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

const setup = workerOnFake;

void test('checkpoints resolve on saved ok, reject otherwise, and show in ctx.checkpoint', async (t) => {
  const seen: unknown[] = [];
  const errors: unknown[] = [];
  const { fake } = await setup(
    t,
    {
      steps: async (_input, ctx: TaskContext) => {
        seen.push(ctx.checkpoint);
        await ctx.saveCheckpoint({ step: 1 });
        seen.push(ctx.checkpoint);
        await ctx.saveCheckpoint({ step: 2 }).catch((e: unknown) => errors.push(e));
        await ctx.saveCheckpoint({ step: 3 }).catch((e: unknown) => errors.push(e));
        seen.push(ctx.checkpoint);
        return 'done';
      },
    },
    { autoSave: false },
  );
  fake.send([run(1, 'steps', null, { checkpoint: { step: 0 } })]);
  const c0 = await fake.waitFor((m) => m.t === 'checkpoint' && m.seq === 0);
  assert.deepEqual(c0, { t: 'checkpoint', taskId: 1, attempt: 1, seq: 0, state: { step: 1 } });
  fake.send([{ t: 'saved', taskId: 1, attempt: 1, seq: 0, ok: true }]);
  const c1 = await fake.waitFor((m) => m.t === 'checkpoint' && m.seq === 1);
  assert.deepEqual(c1.state, { step: 2 });
  fake.send([{ t: 'saved', taskId: 1, attempt: 1, seq: 1, ok: false, code: 'stale_attempt' }]);
  await fake.waitFor((m) => m.t === 'checkpoint' && m.seq === 2);
  fake.send([{ t: 'saved', taskId: 1, attempt: 1, seq: 2, ok: false, code: 'input_too_large' }]);
  await fake.waitFor((m) => m.t === 'result' && m.taskId === 1);
  assert.deepEqual(seen, [{ step: 0 }, { step: 1 }, { step: 1 }]);
  assert.deepEqual(
    errors.map((e) => (e as RegroupError).code),
    ['stale_attempt', 'input_too_large'],
  );
});

void test('a too-large or non-JSON checkpoint rejects at once and sends nothing', async (t) => {
  const codes: string[] = [];
  const { fake } = await setup(
    t,
    {
      bad: async (_input, ctx: TaskContext) => {
        for (const state of ['x'.repeat(2000), 1n, undefined]) {
          await ctx
            .saveCheckpoint(state)
            .catch((e: unknown) => codes.push((e as RegroupError).code));
        }
        return null;
      },
    },
    { maxResultBytes: 1000 },
  );
  fake.send([run(1, 'bad', null)]);
  await fake.waitFor((m) => m.t === 'result' && m.taskId === 1);
  assert.deepEqual(codes, ['input_too_large', 'validation_failed', 'validation_failed']);
  assert.equal(fake.all('checkpoint').length, 0);
});

void test('a checkpoint saved while disconnected is sent after the resume', async (t) => {
  const ready = gate();
  let saving = false;
  let saved = false;
  const { fake, worker } = await setup(t, {
    later: async (_input, ctx: TaskContext) => {
      await ready.wait;
      const p = ctx.saveCheckpoint('half');
      saving = true;
      await p;
      saved = true;
      return 'whole';
    },
  });
  const started: number[] = [];
  worker.on('run', (e) => started.push(e.taskId));
  fake.send([run(1, 'later', null)]);
  await waitUntil(() => started.length === 1, 'the run');
  fake.o.autoWelcome = false;
  fake.dropAll();
  const second = await fake.waitForConn(2);
  await fake.waitFor((m, c) => m.t === 'hello' && c === second);
  ready.open();
  await waitUntil(() => saving, 'the handler to save while not welcomed');
  fake.send([fake.welcome(true)], second);
  const cp = await fake.waitFor((m, c) => m.t === 'checkpoint' && c === second);
  assert.equal(cp.state, 'half');
  await waitUntil(() => saved, 'the checkpoint to be saved');
  assert.equal((await fake.waitFor((m) => m.t === 'result')).value, 'whole');
});

void test('a lost session rejects pending checkpoints with stale_attempt', async (t) => {
  let rejected: unknown;
  const { fake, worker } = await setup(
    t,
    {
      saver: async (_input, ctx: TaskContext) => {
        await ctx.saveCheckpoint(1).catch((e: unknown) => (rejected = e));
        return null;
      },
    },
    { autoSave: false },
  );
  fake.send([run(1, 'saver', null)]);
  await fake.waitFor((m) => m.t === 'checkpoint');
  fake.o.resume = false;
  fake.dropAll();
  await waitUntil(() => rejected, 'the rejection');
  assert.ok(rejected instanceof RegroupError && rejected.code === 'stale_attempt');
  assert.equal(worker.workerId, 'w2');
});

void test('drain waits for runs, releases the rest after drainTimeoutMs, then says bye', async (t) => {
  const quick = gate();
  let reason: unknown;
  const { fake, worker } = await setup(
    t,
    {
      quick: async () => {
        await quick.wait;
        return 'finished';
      },
      stuck: (_input, ctx: TaskContext) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            reason = ctx.signal.reason;
            resolve('ignored');
          });
        }),
    },
    {},
    { drainTimeoutMs: 300 },
  );
  const stopped: unknown[] = [];
  worker.on('stopped', (e) => stopped.push(e));
  const started: number[] = [];
  worker.on('run', (e) => started.push(e.taskId));
  fake.send([run(1, 'quick', null), run(2, 'stuck', null)]);
  await waitUntil(() => started.length === 2, 'both runs');
  const draining = worker.drain();
  assert.equal(worker.state, 'draining');
  await fake.waitFor((m) => m.t === 'drain');
  quick.open();
  await draining;
  assert.equal(worker.state, 'stopped');
  assert.equal(stopped.length, 1);
  assert.ok(reason instanceof RegroupError && reason.code === 'shutting_down');
  const sent = fake.last.frames.flat().filter((m) => m.t !== 'beat' && m.t !== 'hello');
  assert.deepEqual(
    sent.map((m) => [m.t, m.taskId]),
    [
      ['drain', undefined],
      ['result', 1],
      ['release', 2],
      ['bye', undefined],
    ],
  );
  await waitUntil(() => fake.last.closed, 'the socket to close');
  assert.equal(fake.conns.length, 1);
});

void test('a worker that reconnects while draining says so in hello', async (t) => {
  const g = gate();
  const { fake, worker } = await setup(t, { slow: () => g.wait });
  const started: number[] = [];
  worker.on('run', (e) => started.push(e.taskId));
  fake.send([run(1, 'slow', null)]);
  await waitUntil(() => started.length === 1, 'the run');
  const draining = worker.drain();
  await fake.waitFor((m) => m.t === 'drain');
  fake.dropAll();
  const second = await fake.waitForConn(2);
  const hello = await fake.waitFor((m, c) => m.t === 'hello' && c === second);
  assert.equal(hello.draining, true);
  assert.deepEqual(hello.held, [{ taskId: 1, attempt: 1 }]);
  g.open();
  await draining;
  assert.equal((await fake.waitFor((m, c) => m.t === 'result' && c === second)).taskId, 1);
  assert.equal(fake.all('bye', second).length, 1);
  assert.equal(fake.all('release').length, 0);
});

void test('a run that arrives while draining is still run', async (t) => {
  const g = gate();
  const { fake, worker } = await setup(t, { slow: () => g.wait, echo: (x: unknown) => x });
  const started: number[] = [];
  worker.on('run', (e) => started.push(e.taskId));
  fake.send([run(1, 'slow', null)]);
  await waitUntil(() => started.length === 1, 'the run');
  const draining = worker.drain();
  await fake.waitFor((m) => m.t === 'drain');
  fake.send([run(2, 'echo', 'late')]);
  assert.equal((await fake.waitFor((m) => m.t === 'result' && m.taskId === 2)).value, 'late');
  g.open();
  await draining;
  assert.deepEqual(
    fake.all('result').map((m) => m.taskId),
    [2, 1],
  );
});
