import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { GroupView } from '../client/index.js';
import { FakeCoordinator } from '../client/fake-coordinator.test-helper.js';
import { followWaiting, waitingJsonLine } from './submit.js';

// Runs from source under tsx or compiled under dist: spawn the same form.
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const MAIN = new URL(`./main${EXT}`, import.meta.url).pathname;
const LOADER = EXT === '.ts' ? ['--import', 'tsx'] : [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `onStart` may drive the fake coordinator while it runs (it sees stderr so far). */
async function cli(
  args: string[],
  stdin: string,
  onStart?: (stderr: () => string) => Promise<void>,
): Promise<Run> {
  const child = spawn(process.execPath, [...LOADER, MAIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, REGROUP_URL: '', REGROUP_TOKEN: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  child.stdin.end(stdin);
  const killer = setTimeout(() => child.kill(), 20_000);
  try {
    await onStart?.(() => stderr);
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(killer);
  }
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(cond(), 'timed out waiting');
}

const WAITING = {
  code: 'no_handler' as const,
  message: 'no worker offers handler "sqaure"; connected workers offer: crunch, square',
  since: 1_000,
};

void describe('regroup submit (against a fake coordinator)', () => {
  let fake: FakeCoordinator;
  beforeEach(async () => {
    fake = new FakeCoordinator();
    await fake.start();
  });
  afterEach(() => fake.stop());

  void it('prints results in input order and exits 1 when a task failed', async () => {
    const run = await cli(
      ['submit', '--url', fake.url, '--handler', 'square', '--max-attempts', '2', '--token', 't'],
      '3\n1\n"x"\n2\n',
      async () => {
        await until(() => fake.groups.has('g1'));
        fake.runAll('g1', (x) => {
          if (typeof x !== 'number') throw new Error('not a number');
          return x * x;
        });
      },
    );
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), [
      '{"index":0,"state":"succeeded","value":9}',
      '{"index":1,"state":"succeeded","value":1}',
      '{"index":2,"state":"failed","error":{"kind":"error","message":"not a number"}}',
      '{"index":3,"state":"succeeded","value":4}',
    ]);
    assert.match(run.stderr, /group g1: 4 tasks/);
    assert.match(run.stderr, /progress: 4\/4 finished, 1 failed/);
    const create = fake.requests[0]!;
    assert.deepEqual(create.body.options, { maxAttempts: 2 });
    assert.equal(create.authorization, 'Bearer t');
  });

  void it('task options from flags: timeouts, priority (negative too) and required labels', async () => {
    const flags = ['--heartbeat-timeout-ms', '500', '--schedule-timeout-ms', '2000'];
    flags.push('--priority', '-5', '--requires', 'gpu, ssd', '--no-wait');
    const run = await cli(['submit', '--url', fake.url, '--handler', 'h', ...flags], '1\n');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(fake.requests[0]!.body.options, {
      heartbeatTimeoutMs: 500,
      scheduleTimeoutMs: 2000,
      priority: -5,
      requires: ['gpu', 'ssd'],
    });
    const bad = await cli(
      ['submit', '--url', fake.url, '--handler', 'h', '--priority', '1.5'],
      '1\n',
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--priority <n>' argument '1\.5' is invalid/);
  });

  void it('exits 0 when all succeeded; --no-wait prints the group id', async () => {
    const noWait = await cli(['submit', '--url', fake.url, '--handler', 'h', '--no-wait'], '1\n');
    assert.equal(noWait.code, 0, noWait.stderr);
    assert.equal(noWait.stdout, 'g1\n');
    const run = await cli(['submit', '--url', fake.url, '--handler', 'h'], '5\n', async () => {
      await until(() => fake.groups.has('g2'));
      fake.runAll('g2', (x) => x);
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '{"index":0,"state":"succeeded","value":5}\n');
  });

  void it('exits 2 naming the line of a bad input, submitting nothing', async () => {
    const run = await cli(['submit', '--url', fake.url, '--handler', 'h'], '1\n{oops\n');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^regroup: invalid_json: stdin line 2 is not valid JSON/m);
    assert.equal(fake.requests.length, 0);
  });

  void it('exits 2 with the error code of a refused request, and on usage errors', async () => {
    fake.inject.push({ status: 400, code: 'validation_failed' });
    const run = await cli(['submit', '--url', fake.url, '--handler', 'h'], '1\n');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^regroup: validation_failed: fake validation_failed$/m);
    const usage = await cli(['submit', '--url', fake.url, '--handler', 'h', '--policy', 'x'], '');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--policy/);
  });

  void it('says once on stderr why the group waits, and goes on when a worker can run it', async () => {
    let waits = true;
    fake.tamper = (path, reply) =>
      waits && path === '/v1/groups/g1' ? { ...(reply as object), waiting: WAITING } : reply;
    const run = await cli(
      ['submit', '--url', fake.url, '--handler', 'sqaure'],
      '1\n2\n',
      async (stderr) => {
        await until(() => stderr().includes('waiting:'));
        waits = false;
        fake.runAll('g1', (x) => x);
      },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /^waiting: no worker offers handler "sqaure"; connected workers offer: crunch, square$/m,
    );
    assert.match(
      run.stderr,
      /^ {2}to fix: start a worker whose handler module exports "sqaure", or cancel the group \(regroup cancel g1\) and submit again with the right --handler$/m,
    );
    assert.equal(run.stderr.match(/waiting:/g)?.length, 1, run.stderr);
    assert.equal(
      run.stdout,
      '{"index":0,"state":"succeeded","value":1}\n{"index":1,"state":"succeeded","value":2}\n',
    );
  });

  void it('--json: why the group waits is JSON on stderr, then "waiting":null; stdout keeps the outcomes only', async () => {
    let waits = true;
    fake.tamper = (path, reply) =>
      waits && path === '/v1/groups/g1' ? { ...(reply as object), waiting: WAITING } : reply;
    const run = await cli(
      ['submit', '--url', fake.url, '--handler', 'sqaure', '--json'],
      '3\n',
      async (stderr) => {
        await until(() => stderr().includes('"waiting":{'));
        waits = false;
        await until(() => stderr().includes('"waiting":null'));
        fake.runAll('g1', (x) => x);
      },
    );
    assert.equal(run.code, 0, run.stderr);
    const json = run.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as unknown);
    assert.deepEqual(json, [
      { groupId: 'g1', tasks: 1 },
      { groupId: 'g1', waiting: WAITING },
      { groupId: 'g1', waiting: null },
    ]);
    const outcome = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(outcome).sort(), ['attempt', 'index', 'state', 'taskId', 'value']);
  });

  void it('--no-wait prints why the group waits on stderr, the id alone on stdout; --json: in the view', async () => {
    fake.tamper = (path, reply) =>
      /^\/v1\/groups\/g\d+$/.test(path) ? { ...(reply as object), waiting: WAITING } : reply;
    const run = await cli(['submit', '--url', fake.url, '--handler', 'sqaure', '--no-wait'], '1\n');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'g1\n');
    assert.match(run.stderr, /^waiting: no worker offers handler "sqaure"/m);
    const json = await cli(
      ['submit', '--url', fake.url, '--handler', 'sqaure', '--no-wait', '--json'],
      '1\n',
    );
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual((JSON.parse(json.stdout) as { waiting?: unknown }).waiting, WAITING);
    assert.doesNotMatch(json.stderr, /waiting/, 'the view on stdout says it');
  });
});

void describe('followWaiting', () => {
  void it('tells when the wait starts, changes and ends; a failed request is skipped; stops when done', async () => {
    const other = { ...WAITING, code: 'no_worker' as const, message: 'no worker is connected' };
    const replies: (Partial<GroupView> | Error)[] = [
      { waiting: WAITING },
      { waiting: { ...WAITING, since: 5 } }, // same reason: not told again
      new Error('connection refused'),
      { waiting: other },
      {},
      { done: true },
    ];
    let asked = 0;
    const group = {
      status: async (): Promise<GroupView> => {
        const r = replies[asked++];
        if (r instanceof Error) throw r;
        return { id: 'g1', done: false, ...r } as GroupView;
      },
    };
    const told: (string | null)[] = [];
    const stop = followWaiting(group, (g) => told.push(g.waiting?.code ?? null), 5);
    await until(() => asked === replies.length);
    await new Promise((r) => setTimeout(r, 30));
    stop();
    assert.equal(asked, replies.length, 'no request after the group is done');
    assert.deepEqual(told, ['no_handler', 'no_worker', null]);
    assert.equal(
      waitingJsonLine({ id: 'g1', waiting: WAITING }),
      `{"groupId":"g1","waiting":${JSON.stringify(WAITING)}}`,
    );
    assert.equal(waitingJsonLine({ id: 'g1' }), '{"groupId":"g1","waiting":null}');
  });

  void it('stop ends it: an answer after the stop is not told', async () => {
    let release: () => void = () => {};
    const group = {
      status: (): Promise<GroupView> =>
        new Promise((resolve) => {
          release = () => resolve({ id: 'g1', done: false, waiting: WAITING } as GroupView);
        }),
    };
    const told: unknown[] = [];
    const stop = followWaiting(group, (g) => told.push(g), 5);
    stop();
    release();
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(told, []);
  });
});
