/**
 * The client API and the worker protocol against a real coordinator on a real
 * SQLite file, in this process. Bad input gets a 4xx with a stable code and
 * changes nothing; the worker protocol is fenced.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Coordinator } from '../src/coordinator/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir, until } from '../src/testing/procs.js';
import type { CoordinatorMessage } from '../src/protocol/worker.js';
import { RawWorker } from './raw-worker.js';

let coordinator: Coordinator;
let url: string;
const tmp = tempDir();

before(async () => {
  coordinator = new Coordinator({
    store: new SqliteStore({ path: join(tmp.dir, 'api.db') }),
    port: 0,
    limits: { maxBodyBytes: 64 * 1024, maxTasksPerRequest: 100, maxInputBytes: 1024 },
  });
  url = await coordinator.start();
});
after(async () => {
  await coordinator.stop();
  tmp.cleanup();
});

async function call(method: string, path: string, body?: string, type = 'application/json') {
  const r = await fetch(url + path, {
    method,
    ...(body === undefined ? {} : { body, headers: { 'content-type': type } }),
  });
  const text = await r.text();
  return {
    status: r.status,
    body: JSON.parse(text) as { error?: { code: string; message: string } } & Record<
      string,
      unknown
    >,
  };
}

async function groupCount(): Promise<number> {
  const r = await call('GET', '/v1/groups?limit=1000');
  return (r.body['groups'] as unknown[]).length;
}

describe('client API: bad input', () => {
  const cases: [string, string, string, string | undefined, number, string, string?][] = [
    [
      'malformed JSON',
      'POST',
      '/v1/groups',
      '{"handler": "square", "inputs": [1,',
      400,
      'invalid_json',
    ],
    ['empty body', 'POST', '/v1/groups', '', 400, 'invalid_json'],
    ['not an object', 'POST', '/v1/groups', '[1,2]', 400, 'validation_failed'],
    [
      'wrong type of inputs',
      'POST',
      '/v1/groups',
      '{"handler":"square","inputs":"1,2"}',
      400,
      'validation_failed',
    ],
    ['missing handler', 'POST', '/v1/groups', '{"inputs":[1]}', 400, 'validation_failed'],
    [
      'bad handler name',
      'POST',
      '/v1/groups',
      '{"handler":"../../etc","inputs":[1]}',
      400,
      'validation_failed',
    ],
    [
      'extra field',
      'POST',
      '/v1/groups',
      '{"handler":"square","inputs":[1],"evil":true}',
      400,
      'validation_failed',
    ],
    [
      'bad option',
      'POST',
      '/v1/groups',
      '{"handler":"square","inputs":[1],"options":{"maxAttempts":0}}',
      400,
      'validation_failed',
    ],
    [
      'wrong content type',
      'POST',
      '/v1/groups',
      '{"handler":"square","inputs":[1]}',
      415,
      'unsupported_media_type',
      'text/plain',
    ],
    [
      'too many tasks',
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'square', inputs: Array(101).fill(1) }),
      413,
      'too_many_tasks',
    ],
    [
      'oversize input',
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'square', inputs: ['x'.repeat(2000)] }),
      413,
      'input_too_large',
    ],
    [
      'oversize body',
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'square', inputs: ['x'.repeat(70 * 1024)] }),
      413,
      'body_too_large',
    ],
    ['unknown group', 'GET', '/v1/groups/g_nope', undefined, 404, 'group_not_found'],
    [
      'add to unknown group',
      'POST',
      '/v1/groups/g_nope/tasks',
      '{"inputs":[1]}',
      404,
      'group_not_found',
    ],
    ['cancel unknown group', 'POST', '/v1/groups/g_nope/cancel', undefined, 404, 'group_not_found'],
    [
      'wait on unknown group',
      'GET',
      '/v1/groups/g_nope/wait?timeoutMs=10',
      undefined,
      404,
      'group_not_found',
    ],
    ['bad query parameter', 'GET', '/v1/events?limit=abc', undefined, 400, 'validation_failed'],
    ['unknown route', 'GET', '/v2/nothing', undefined, 404, 'not_found'],
    ['wrong method', 'DELETE', '/v1/groups', undefined, 405, 'method_not_allowed'],
    [
      '__proto__ key',
      'POST',
      '/v1/groups',
      '{"handler":"square","inputs":[1],"__proto__":{"admin":true}}',
      201,
      '',
    ],
  ];
  for (const [name, method, path, body, status, code, type] of cases) {
    it(`${name} -> ${status} ${code}`, async () => {
      const groupsBefore = await groupCount();
      const r = await call(method, path, body, type);
      assert.equal(r.status, status, JSON.stringify(r.body));
      if (status >= 400) {
        assert.equal(r.body.error?.code, code);
        assert.ok((r.body.error?.message ?? '').length > 10, 'the message says what to fix');
        assert.equal(await groupCount(), groupsBefore, 'nothing was created');
      } else {
        assert.equal(
          ({} as Record<string, unknown>)['admin'],
          undefined,
          'no prototype was polluted',
        );
      }
      const health = await call('GET', '/healthz');
      assert.equal(health.status, 200, 'the coordinator keeps running');
    });
  }

  it('wait with tasks=n carries the tasks of a done group of at most n tasks, and only then', async () => {
    const g = await call('POST', '/v1/groups', JSON.stringify({ handler: 'square', inputs: [] }));
    assert.equal(g.status, 201);
    const id = g.body['id'] as string;
    // An empty sealed group is done at once.
    const done = await call('GET', `/v1/groups/${id}/wait?timeoutMs=0&tasks=5`);
    assert.equal(done.status, 200);
    assert.equal(done.body['done'], true);
    assert.deepEqual(done.body['tasks'], []);
    const plain = await call('GET', `/v1/groups/${id}/wait?timeoutMs=0`);
    assert.equal(plain.body['tasks'], undefined);
    // Not done: no tasks, whatever n.
    const open = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'square', inputs: [1, 2], open: true }),
    );
    const notDone = await call(
      'GET',
      `/v1/groups/${open.body['id'] as string}/wait?timeoutMs=0&tasks=5`,
    );
    assert.equal(notDone.body['done'], false);
    assert.equal(notDone.body['tasks'], undefined);
    const bad = await call('GET', `/v1/groups/${id}/wait?timeoutMs=0&tasks=-1`);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error?.code, 'validation_failed');
  });

  it('add, seal and idempotent submit behave', async () => {
    const open = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'square', inputs: [1], open: true, idempotencyKey: 'k1' }),
    );
    assert.equal(open.status, 201);
    const id = open.body['id'] as string;
    const again = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'square', inputs: [1], open: true, idempotencyKey: 'k1' }),
    );
    assert.equal(again.status, 200);
    assert.equal(again.body['id'], id);
    const conflict = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'other', inputs: [], idempotencyKey: 'k1' }),
    );
    assert.equal(conflict.body.error?.code, 'idempotency_conflict');
    assert.equal(
      (await call('POST', `/v1/groups/${id}/tasks`, JSON.stringify({ inputs: [2, 3], offset: 1 })))
        .body['total'],
      3,
    );
    assert.equal(
      (await call('POST', `/v1/groups/${id}/tasks`, JSON.stringify({ inputs: [2, 3], offset: 1 })))
        .body['total'],
      3,
      'a repeated add is not applied twice',
    );
    assert.equal(
      (await call('POST', `/v1/groups/${id}/tasks`, JSON.stringify({ inputs: [9], offset: 7 })))
        .body.error?.code,
      'offset_mismatch',
    );
    assert.equal((await call('POST', `/v1/groups/${id}/seal`)).body['state'], 'sealed');
    assert.equal(
      (await call('POST', `/v1/groups/${id}/tasks`, JSON.stringify({ inputs: [4] }))).body.error
        ?.code,
      'group_sealed',
    );
    const canceled = await call('POST', `/v1/groups/${id}/cancel`);
    assert.equal(canceled.body['state'], 'canceled');
    assert.equal(canceled.body['done'], true);
  });
});

describe('worker protocol: fencing and bad messages', () => {
  it('answers bad frames with protocol_error and keeps the connection', async () => {
    const w = new RawWorker(url);
    await w.open();
    w.ws.send('not json');
    assert.equal((await w.take('error')).code, 'protocol_error');
    w.send({ t: 'result', taskId: 1, attempt: 1 });
    assert.equal((await w.take('error')).code, 'protocol_error');
    w.send({ t: 'result', taskId: 1, attempt: 1, value: 1 });
    assert.equal((await w.take('error')).code, 'session_unknown');
    w.ws.send(
      '[{"t":"hello","protocol":1,"name":"raw","handlers":["square"],"slots":1,"labels":[],"__proto__":{"x":1}}]',
    );
    const welcome = await w.take('welcome');
    assert.match(welcome.workerId, /^w_/);
    w.close();
  });

  it('a result for a run the worker does not hold is stale; a late duplicate is already_final', async () => {
    const a = new RawWorker(url);
    await a.open();
    a.send({ t: 'hello', protocol: 1, name: 'a', handlers: ['fenceTest'], slots: 1, labels: [] });
    await a.take('welcome');
    const b = new RawWorker(url);
    await b.open();
    b.send({ t: 'hello', protocol: 1, name: 'b', handlers: ['other'], slots: 1, labels: [] });
    await b.take('welcome');
    const g = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'fenceTest', inputs: [7] }),
    );
    const run = await a.take('run');
    assert.equal(run.input, 7);
    assert.equal(run.attempt, 1);
    b.send({ t: 'result', taskId: run.taskId, attempt: run.attempt, value: 'forged' });
    assert.equal(
      (await b.take('ack')).status,
      'stale',
      'another worker cannot report on a run it does not hold',
    );
    a.send({ t: 'result', taskId: run.taskId, attempt: run.attempt + 1, value: 'wrong attempt' });
    assert.equal((await a.take('ack')).status, 'stale');
    a.send({ t: 'result', taskId: run.taskId, attempt: run.attempt, value: 49 });
    assert.equal((await a.take('ack')).status, 'committed');
    a.send({ t: 'result', taskId: run.taskId, attempt: run.attempt, value: 50 });
    assert.equal((await a.take('ack')).status, 'already_final');
    const tasks = await call('GET', `/v1/groups/${g.body['id'] as string}/tasks`);
    assert.equal((tasks.body['tasks'] as { value: unknown }[])[0]!.value, 49);
    a.close();
    b.close();
  });
});

describe('worker protocol: lease reports and reserves', () => {
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
  /** A worker welcomed with one slot whose beats report frames and held runs. */
  async function reporting(name: string): Promise<RawWorker> {
    const w = new RawWorker(url);
    await w.open();
    const hello = { t: 'hello', protocol: 1, name, handlers: ['x'], slots: 1, labels: [] };
    w.send({ ...hello, leaseReports: true });
    await w.take('welcome');
    return w;
  }

  it('a beat that counts frames never sent, or lists more runs than any worker holds, is refused and the connection closed', async () => {
    for (const beat of [
      { t: 'beat', frames: 999, held: [] },
      {
        t: 'beat',
        frames: 1,
        // 2 x maxWorkerSlots + maxSuspendedPerWorker (the defaults), and one more.
        held: Array.from({ length: 2 * 1024 + 10_000 + 1 }, (_, i) => ({
          taskId: i + 1,
          attempt: 1,
        })),
      },
    ]) {
      const w = await reporting('liar');
      const closed = new Promise<number>((r) => w.ws.once('close', (code: number) => r(code)));
      // The hello said the worker reports leases: the coordinator reads held and frames.
      w.send(beat);
      const e = await w.take('error');
      assert.equal(e.code, 'protocol_error');
      assert.match(e.message, /beat\.(frames|held)/);
      assert.equal(await closed, 1008);
    }
  });

  it('beats in one frame listing runs the worker should not hold get one round of revokes', async () => {
    const w = await reporting('forgetful');
    const held = [1001, 1002, 1003].map((taskId) => ({ taskId, attempt: 1 }));
    w.send(...Array.from({ length: 50 }, () => ({ t: 'beat', frames: 1, held })));
    await until('the beat replies', () => w.inbox.filter((m) => m.t === 'beat').length === 50);
    await sleep(100);
    const revokes = w.inbox.filter((m) => m.t === 'revoke');
    assert.deepEqual(
      revokes.map((m) => (m.t === 'revoke' ? [m.taskId, m.reason] : null)),
      [
        [1001, 'stale'],
        [1002, 'stale'],
        [1003, 'stale'],
      ],
    );
    w.close();
  });

  it('a running task revoked by a cancel frees its slot for the reserved runs at once', async () => {
    const w = new RawWorker(url);
    await w.open();
    w.send({ t: 'hello', protocol: 1, name: 'quick', handlers: ['quick'], slots: 1, labels: [] });
    await w.take('welcome');
    // Fast first runs, answered as they arrive: the worker earns a reserve
    // (runs claimed ahead of its slot; only for runs under 50 ms on average).
    const answer = (d: Buffer): void => {
      for (const m of JSON.parse(d.toString('utf8')) as CoordinatorMessage[])
        if (m.t === 'run') w.send({ t: 'result', taskId: m.taskId, attempt: m.attempt, value: 0 });
    };
    w.ws.on('message', answer);
    await call('POST', '/v1/groups', JSON.stringify({ handler: 'quick', inputs: [0, 0, 0] }));
    await until('three acks', () => w.inbox.filter((m) => m.t === 'ack').length === 3);
    w.ws.off('message', answer);
    w.inbox.length = 0;
    const a = await call('POST', '/v1/groups', JSON.stringify({ handler: 'quick', inputs: [1] }));
    const running = await w.take('run');
    const b = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'quick', inputs: [2, 3] }),
    );
    await sleep(300);
    assert.equal(
      w.inbox.filter((m) => m.t === 'run').length,
      0,
      "b's tasks wait in the reserve behind the busy slot",
    );
    await call('POST', `/v1/groups/${a.body['id'] as string}/cancel`);
    const revoke = await w.take('revoke');
    assert.deepEqual([revoke.taskId, revoke.reason], [running.taskId, 'canceled']);
    // The worker says nothing more: the freed slot alone sends b's next run.
    const next = await w.take('run');
    assert.equal(next.groupId, b.body['id']);
    w.close();
  });
});

describe('worker protocol: resume', () => {
  async function hello(
    w: RawWorker,
    name: string,
    handlers: string[],
    extra: Record<string, unknown> = {},
  ) {
    w.send({ t: 'hello', protocol: 1, name, handlers, slots: 1, labels: [], ...extra });
    return w.take('welcome');
  }

  it('a connection resumed within the grace keeps its lease; its result commits', async () => {
    const a = new RawWorker(url);
    await a.open();
    const welcome = await hello(a, 'resumer', ['resumeTest']);
    const g = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'resumeTest', inputs: [1] }),
    );
    const run = await a.take('run');
    a.close();
    const b = new RawWorker(url);
    await b.open();
    const again = await hello(b, 'resumer', ['resumeTest'], {
      resume: { workerId: welcome.workerId, token: welcome.token },
      held: [{ taskId: run.taskId, attempt: run.attempt }],
    });
    assert.equal(again.resumed, true);
    assert.equal(again.workerId, welcome.workerId);
    b.send({ t: 'result', taskId: run.taskId, attempt: run.attempt, value: 'kept' });
    assert.equal((await b.take('ack')).status, 'committed');
    const tasks = await call('GET', `/v1/groups/${g.body['id'] as string}/tasks`);
    assert.deepEqual(
      (tasks.body['tasks'] as { value: unknown; attempt: number }[]).map((t) => [
        t.value,
        t.attempt,
      ]),
      [['kept', 1]],
    );
    b.close();
  });

  it('a wrong resume token gets a new session; a lease the worker forgot goes back to pending', async () => {
    const a = new RawWorker(url);
    await a.open();
    const welcome = await hello(a, 'forgetful', ['forgetTest']);
    const g = await call(
      'POST',
      '/v1/groups',
      JSON.stringify({ handler: 'forgetTest', inputs: [1] }),
    );
    const run = await a.take('run');
    a.close();
    const thief = new RawWorker(url);
    await thief.open();
    const stolen = await hello(thief, 'thief', ['other'], {
      resume: { workerId: welcome.workerId, token: 'not-the-token' },
    });
    assert.equal(stolen.resumed, false);
    assert.notEqual(stolen.workerId, welcome.workerId);
    thief.close();
    const b = new RawWorker(url);
    await b.open();
    const again = await hello(b, 'forgetful', ['forgetTest'], {
      resume: { workerId: welcome.workerId, token: welcome.token },
      held: [],
    });
    assert.equal(again.resumed, true);
    // It no longer holds the run: the task goes back to pending and is dispatched again, attempt 2.
    const rerun = await b.take('run');
    assert.deepEqual([rerun.taskId, rerun.attempt], [run.taskId, 2]);
    b.send({ t: 'result', taskId: run.taskId, attempt: 1, value: 'late' });
    assert.equal((await b.take('ack')).status, 'stale');
    b.send({ t: 'result', taskId: run.taskId, attempt: 2, value: 'second' });
    assert.equal((await b.take('ack')).status, 'committed');
    const tasks = await call('GET', `/v1/groups/${g.body['id'] as string}/tasks`);
    assert.equal((tasks.body['tasks'] as { value: unknown }[])[0]!.value, 'second');
    b.close();
  });
});
