import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { PermanentError, RegroupError } from '../core/errors.js';
import { PROTOCOL_VERSION } from '../protocol/worker.js';
import {
  FakeCoordinator,
  WORKER_PATH,
  run,
  sleep,
  waitUntil,
  type FakeConn,
  type FakeOptions,
  type Msg,
} from './fake-coordinator.test-helper.js';
import type { Handler, WorkerOptions } from './options.js';
import { Worker } from './worker.js';

function nest(levels: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

/** Reasons the signals of `wait` runs fired with, by taskId. */
type Aborts = Map<number, unknown>;

function handlers(aborts: Aborts): Record<string, Handler> {
  return {
    echo: (input) => input,
    nothing: () => undefined,
    boom: () => {
      throw new TypeError('bad input');
    },
    rejects: async () => {
      throw new Error('async bad');
    },
    perm: () => {
      throw new PermanentError('never works');
    },
    permLike: () => Promise.reject(Object.assign(new Error('marked'), { permanent: true })),
    throwsString: () => {
      // eslint-disable-next-line @typescript-eslint/only-throw-error -- a handler may throw anything
      throw 'just a string';
    },
    bigint: () => 1n,
    circular: () => {
      const o: Record<string, unknown> = {};
      o.self = o;
      return o;
    },
    big: () => 'x'.repeat(5000),
    /** Returns arrays nested `input` levels deep. */
    deep: (input) => nest(input as number),
    /** Saves a checkpoint nested `input` levels deep; returns how that went. */
    deepCheckpoint: async (input, ctx) => {
      try {
        await ctx.saveCheckpoint(nest(input as number));
        return 'saved';
      } catch (e) {
        return e instanceof RegroupError ? e.code : String(e);
      }
    },
    wait: (_input, ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener('abort', () => {
          aborts.set(ctx.taskId, ctx.signal.reason);
          reject(ctx.signal.reason as Error);
        });
      }),
  };
}

interface Setup {
  fake: FakeCoordinator;
  worker: Worker;
  aborts: Aborts;
  logs: { level: string; msg: string }[];
}

async function setup(
  t: TestContext,
  fakeOptions: FakeOptions = {},
  workerOptions: Partial<WorkerOptions> = {},
): Promise<Setup> {
  const fake = await FakeCoordinator.start(fakeOptions);
  const aborts: Aborts = new Map();
  const logs: Setup['logs'] = [];
  const worker = new Worker({
    url: fake.url,
    handlers: handlers(aborts),
    logger: (level, msg) => logs.push({ level, msg }),
    ...workerOptions,
  });
  t.after(async () => {
    await worker.close();
    await fake.close();
  });
  return { fake, worker, aborts, logs };
}

const forTask = (t: string, taskId: number, conn?: FakeConn) => (m: Msg, c: FakeConn) =>
  m.t === t && m.taskId === taskId && (!conn || c === conn);

/** Waits for `n` more beats on `conn`: by then anything the worker sent before has arrived. */
async function beats(fake: FakeCoordinator, conn: FakeConn, n = 2): Promise<void> {
  const start = fake.all('beat', conn).length;
  await waitUntil(() => fake.all('beat', conn).length >= start + n, `${n} beats`);
}

void test('hello announces name, handlers, slots, labels; the token goes in the upgrade header', async (t) => {
  const { fake, worker } = await setup(
    t,
    {},
    {
      name: 'node-a',
      concurrency: 3,
      labels: ['gpu', 'big', 'gpu'],
      token: 's3cret',
    },
  );
  const welcomes: unknown[] = [];
  worker.on('welcome', (e) => welcomes.push(e));
  assert.equal(worker.state, 'starting');
  await worker.start();
  const hello = fake.all('hello')[0];
  assert.deepEqual(hello, {
    t: 'hello',
    protocol: PROTOCOL_VERSION,
    name: 'node-a',
    handlers: Object.keys(handlers(new Map())),
    slots: 3,
    labels: ['big', 'gpu'],
    leaseReports: true,
  });
  assert.equal(fake.last.headers.authorization, 'Bearer s3cret');
  assert.equal(fake.last.path, WORKER_PATH);
  assert.equal(worker.state, 'running');
  assert.equal(worker.workerId, 'w1');
  assert.deepEqual(welcomes, [{ workerId: 'w1', resumed: false }]);
});

void test('results stay in the outbox until acked and are resent after a resumed reconnect', async (t) => {
  const { fake, worker } = await setup(t, { autoAck: false });
  await worker.start();
  const first = fake.last;
  fake.send([run(1, 'echo', { a: 1 }), run(2, 'nothing', null)]);
  assert.deepEqual(await fake.waitFor(forTask('result', 1)), {
    t: 'result',
    taskId: 1,
    attempt: 1,
    value: { a: 1 },
  });
  assert.equal((await fake.waitFor(forTask('result', 2))).value, null);
  fake.send([{ t: 'ack', taskId: 1, attempt: 1, status: 'committed' }]);
  await beats(fake, first); // the ack has been read
  fake.dropAll();

  const second = await fake.waitForConn(2);
  const hello = await fake.waitFor((m, c) => m.t === 'hello' && c === second);
  assert.deepEqual(hello.resume, { workerId: 'w1', token: 'token-1' });
  assert.deepEqual(hello.held, [{ taskId: 2, attempt: 1 }]);
  await fake.waitFor(forTask('result', 2, second));
  const resent = second.frames.flat().filter((m) => m.t === 'result');
  assert.deepEqual(resent, [{ t: 'result', taskId: 2, attempt: 1, value: null }]);

  fake.send([{ t: 'ack', taskId: 2, attempt: 1, status: 'stale' }], second);
  await beats(fake, second);
  fake.dropAll();
  const third = await fake.waitForConn(3);
  const hello3 = await fake.waitFor((m, c) => m.t === 'hello' && c === third);
  assert.deepEqual(hello3.held, []);
  assert.equal(worker.workerId, 'w1');
});

void test('welcome with resumed: false aborts running runs, drops the outbox and pending checkpoints', async (t) => {
  const { fake, worker, aborts } = await setup(t, { autoAck: false, autoSave: false });
  const revoked: unknown[] = [];
  worker.on('revoked', (e) => revoked.push(e));
  await worker.start();
  fake.send([run(1, 'wait', null), run(2, 'echo', 'kept?')]);
  await fake.waitFor(forTask('result', 2));
  fake.o.resume = false;
  fake.dropAll();

  const second = await fake.waitForConn(2);
  const hello = await fake.waitFor((m, c) => m.t === 'hello' && c === second);
  assert.deepEqual(hello.held, [
    { taskId: 1, attempt: 1 },
    { taskId: 2, attempt: 1 },
  ]);
  const reason = await waitUntil(() => aborts.get(1), 'the abort of run 1');
  assert.ok(reason instanceof RegroupError);
  assert.equal(reason.code, 'stale_attempt');
  assert.deepEqual(revoked, [{ taskId: 1, attempt: 1, reason: 'lost' }]);
  assert.equal(worker.workerId, 'w2');
  await beats(fake, second);
  const about = second.frames.flat().filter((m) => 'taskId' in m);
  assert.deepEqual(about, []);
});

void test('handler failures are reported with the right kind', async (t) => {
  const { fake, worker } = await setup(t, { maxResultBytes: 1000 });
  await worker.start();
  const names = [
    'boom',
    'rejects',
    'perm',
    'permLike',
    'throwsString',
    'bigint',
    'circular',
    'big',
    'missing',
  ];
  fake.send(names.map((h, i) => run(i + 1, h, null)));
  const fail = async (name: string) => {
    const m = await fake.waitFor(forTask('fail', names.indexOf(name) + 1));
    return m.error as { kind: string; message: string; name?: string; stack?: string };
  };
  /** The error without its stack, and the stack's first frame. */
  const split = async (name: string) => {
    const { stack, ...rest } = await fail(name);
    return { rest, top: stack?.split('\n')[0]?.trim() };
  };
  const boom = await split('boom');
  assert.deepEqual(boom.rest, { kind: 'error', message: 'bad input', name: 'TypeError' });
  assert.match(boom.top ?? '', /^at boom \(file:.*worker\.test\.js:\d+:\d+\)$/);
  const rejects = await split('rejects');
  assert.deepEqual(rejects.rest, { kind: 'error', message: 'async bad', name: 'Error' });
  assert.match(rejects.top ?? '', /^at rejects \(file:.*worker\.test\.js:\d+:\d+\)$/);
  assert.deepEqual((await split('perm')).rest, {
    kind: 'permanent',
    message: 'never works',
    name: 'PermanentError',
  });
  assert.equal((await fail('permLike')).kind, 'permanent');
  assert.deepEqual(await fail('throwsString'), { kind: 'error', message: 'just a string' });
  const bigint = await fail('bigint');
  assert.equal(bigint.kind, 'permanent');
  assert.match(bigint.message, /: result is a BigInt \(1n\); JSON cannot carry it/);
  const circular = await fail('circular');
  assert.equal(circular.kind, 'permanent');
  assert.match(circular.message, /: result\.self refers to an object that contains it \(a cycle\)/);
  const big = await fail('big');
  assert.equal(big.kind, 'permanent');
  assert.match(big.message, /maxResultBytes \(1000\)/);
  const missing = await fail('missing');
  assert.equal(missing.kind, 'handler_not_found');
  assert.match(missing.message, /"missing".*echo/);
  assert.equal(fake.all('result').length, 0);
});

void test('timeoutMs aborts the signal, fails at once and ignores the late return', async (t) => {
  let returned = false;
  let reason: unknown;
  const fake = await FakeCoordinator.start();
  const worker = new Worker({
    url: fake.url,
    logger: () => {},
    handlers: {
      slow: async (_input, ctx) => {
        ctx.signal.addEventListener('abort', () => (reason = ctx.signal.reason));
        await sleep(300);
        returned = true;
        return 'too late';
      },
    },
  });
  t.after(async () => {
    await worker.close();
    await fake.close();
  });
  await worker.start();
  fake.send([run(1, 'slow', null, { timeoutMs: 30 })]);
  const failed = await fake.waitFor(forTask('fail', 1));
  assert.equal(failed.error.kind, 'timeout');
  assert.match(failed.error.message, /timeoutMs \(30\)/);
  assert.ok(reason instanceof RegroupError && reason.code === 'timeout');
  await waitUntil(() => returned, 'the handler to return');
  await beats(fake, fake.last);
  assert.equal(fake.received.filter((r) => r.msg.taskId === 1).length, 1);
});

void test('revoke aborts the run and nothing more is said about it', async (t) => {
  const { fake, worker, aborts } = await setup(t);
  const revoked: unknown[] = [];
  worker.on('revoked', (e) => revoked.push(e));
  await worker.start();
  const runs: number[] = [];
  worker.on('run', (e) => runs.push(e.taskId));
  fake.send([run(1, 'wait', null), run(2, 'wait', null)]);
  await waitUntil(() => runs.length === 2, 'both runs to start');
  fake.send([
    { t: 'revoke', taskId: 1, attempt: 1, reason: 'canceled' },
    { t: 'revoke', taskId: 2, attempt: 1, reason: 'stale' },
  ]);
  const r1 = await waitUntil(() => aborts.get(1), 'abort 1');
  const r2 = await waitUntil(() => aborts.get(2), 'abort 2');
  assert.ok(r1 instanceof RegroupError && r1.code === 'canceled');
  assert.ok(r2 instanceof RegroupError && r2.code === 'stale_attempt');
  assert.deepEqual(revoked, [
    { taskId: 1, attempt: 1, reason: 'canceled' },
    { taskId: 2, attempt: 1, reason: 'stale' },
  ]);
  await beats(fake, fake.last);
  assert.deepEqual(
    fake.received.filter((r) => 'taskId' in r.msg),
    [],
  );
});

void test('messages of the same turn go out in one frame; a duplicate run is ignored', async (t) => {
  const { fake, worker } = await setup(t);
  await worker.start();
  fake.send([run(1, 'echo', 1), run(2, 'echo', 2), run(3, 'echo', 3), run(3, 'echo', 3)]);
  await fake.waitFor(forTask('result', 3));
  const frame = fake.last.frames.find((f) => f.some((m) => m.t === 'result'));
  assert.deepEqual(
    frame?.map((m) => [m.t, m.taskId]),
    [
      ['result', 1],
      ['result', 2],
      ['result', 3],
    ],
  );
  await beats(fake, fake.last);
  assert.equal(fake.all('result').length, 3);
});

void test('beats at the rate the welcome gives', async (t) => {
  const { fake, worker } = await setup(t, { heartbeatMs: 20 });
  await worker.start();
  await beats(fake, fake.last, 5);
  assert.equal(fake.conns.length, 1);
});

void test('silence from the coordinator makes the worker reconnect and resume', async (t) => {
  const { fake, worker } = await setup(t, { autoBeat: false, heartbeatMs: 20, deadAfterMs: 200 });
  const disconnected: unknown[] = [];
  worker.on('disconnected', (e) => disconnected.push(e));
  await worker.start();
  const second = await fake.waitForConn(2);
  const hello = await fake.waitFor((m, c) => m.t === 'hello' && c === second);
  assert.equal(hello.resume.workerId, 'w1');
  assert.ok(disconnected.length >= 1);
  assert.ok(fake.conns[0]?.closed);
});

void test('an error from the coordinator is logged; when it closes, the worker reconnects', async (t) => {
  const { fake, worker, logs } = await setup(t);
  await worker.start();
  fake.send([{ t: 'error', code: 'protocol_error', message: 'nope' }]);
  fake.last.ws.close(1008, 'bad');
  await fake.waitForConn(2);
  await worker.start();
  assert.ok(logs.some((l) => l.level === 'warn' && /protocol_error: nope/.test(l.msg)));
});

void test('malformed frames are logged and ignored', async (t) => {
  const { fake, worker, logs } = await setup(t);
  await worker.start();
  fake.sendRaw('not json');
  fake.sendRaw('{"t":"run"}');
  fake.send([{ t: 'wat' }, { t: 'run', taskId: 0 }, run(1, 'echo', 'fine')]);
  assert.equal((await fake.waitFor(forTask('result', 1))).value, 'fine');
  assert.equal(logs.filter((l) => /malformed/.test(l.msg)).length, 4);
  assert.equal(fake.conns.length, 1);
});

void test('with several URLs, the worker tries them in turn', async (t) => {
  const gone = await FakeCoordinator.start();
  await gone.close();
  const fake = await FakeCoordinator.start();
  const worker = new Worker({
    url: [gone.url, fake.url],
    handlers: { echo: (x) => x },
    reconnectMinMs: 10,
    reconnectMaxMs: 50,
    logger: () => {},
  });
  t.after(async () => {
    await worker.close();
    await fake.close();
  });
  await worker.start();
  assert.equal(fake.all('hello').length, 1);
  assert.equal(worker.workerId, 'w1');
});

void test('close() aborts runs, closes the socket and does not reconnect', async (t) => {
  const { fake, worker, aborts } = await setup(t);
  const stopped: unknown[] = [];
  worker.on('stopped', (e) => stopped.push(e));
  await worker.start();
  const started: number[] = [];
  worker.on('run', (e) => started.push(e.taskId));
  fake.send([run(1, 'wait', null)]);
  await waitUntil(() => started.length === 1, 'the run');
  await worker.close();
  const reason = aborts.get(1);
  assert.ok(reason instanceof RegroupError && reason.code === 'closed');
  assert.equal(worker.state, 'stopped');
  assert.equal(stopped.length, 1);
  await waitUntil(() => fake.last.closed, 'the socket to close');
  await sleep(200);
  assert.equal(fake.conns.length, 1);
  assert.equal(fake.all('bye').length, 0);
});

void test('close() before the first welcome rejects start() with closed', async () => {
  const gone = await FakeCoordinator.start();
  await gone.close();
  const logs: string[] = [];
  const worker = new Worker({
    url: gone.url,
    handlers: { echo: (x) => x },
    reconnectMinMs: 10,
    reconnectMaxMs: 20,
    logger: (level, msg) => logs.push(`${level} ${msg}`),
  });
  const starting = worker.start();
  await waitUntil(() => logs.filter((l) => /no connection/.test(l)).length >= 2, 'two tries');
  assert.equal(worker.state, 'starting');
  await worker.close();
  await assert.rejects(starting, (e: unknown) => e instanceof RegroupError && e.code === 'closed');
  assert.equal(worker.state, 'stopped');
});

void test('a result deeper than maxDepth fails its run as permanent; the other runs of the frame complete', async (t) => {
  const { fake, worker } = await setup(t, { maxDepth: 5 });
  await worker.start();
  fake.send([run(1, 'echo', 'a'), run(2, 'deep', 6), run(3, 'deep', 5), run(4, 'echo', 'b')]);
  const failed = await fake.waitFor(forTask('fail', 2));
  assert.deepEqual(failed.error, {
    kind: 'permanent',
    message:
      'the result of task 2 (handler "deep") is nested deeper than 5 levels (maxDepth) of arrays and objects; return flatter data, or raise the coordinator\'s --max-json-depth',
  });
  for (const [taskId, value] of [
    [1, 'a'],
    [3, nest(5)],
    [4, 'b'],
  ] as const) {
    assert.deepEqual((await fake.waitFor(forTask('result', taskId))).value, value);
  }
  assert.equal(fake.all('result').length, 3);
});

void test('a checkpoint deeper than maxDepth is refused with too_deep and never sent', async (t) => {
  const { fake, worker } = await setup(t, { maxDepth: 5 });
  await worker.start();
  fake.send([run(1, 'deepCheckpoint', 6), run(2, 'deepCheckpoint', 5)]);
  assert.equal((await fake.waitFor(forTask('result', 1))).value, 'too_deep');
  assert.equal((await fake.waitFor(forTask('result', 2))).value, 'saved');
  assert.deepEqual(
    fake.all('checkpoint').map((m) => m.taskId),
    [2],
  );
});

void test('a run too deep to read fails as permanent; the others of its frame run', async (t) => {
  const { fake, worker, logs } = await setup(t, { maxDepth: 5 });
  await worker.start();
  const runText = (taskId: number, inputJson: string) =>
    JSON.stringify(run(taskId, 'echo', null)).replace('"input":null', `"input":${inputJson}`);
  const frame = [
    runText(1, JSON.stringify(nest(6))),
    runText(2, JSON.stringify(nest(5))),
    // Far deeper than any stack: the worker must not overflow reading it.
    runText(3, `${'['.repeat(100_000)}${']'.repeat(100_000)}`),
    JSON.stringify(run(4, 'echo', 'plain')),
    `{"t":"ack","taskId":9,"attempt":1,"status":"committed","x":${JSON.stringify(nest(7))}}`,
  ];
  fake.sendRaw(`[${frame.join(',')}]`);
  for (const taskId of [1, 3]) {
    const failed = await fake.waitFor(forTask('fail', taskId));
    const error = failed.error as { kind: string; message: string };
    assert.equal(error.kind, 'permanent');
    assert.match(
      error.message,
      new RegExp(
        `^the run of task ${taskId} attempt 1 carries an input or checkpoint nested deeper than 5 levels \\(maxDepth\\)`,
      ),
    );
  }
  assert.deepEqual((await fake.waitFor(forTask('result', 2))).value, nest(5));
  assert.equal((await fake.waitFor(forTask('result', 4))).value, 'plain');
  assert.ok(logs.some((l) => l.msg === 'failed a run it could not read'));
});
