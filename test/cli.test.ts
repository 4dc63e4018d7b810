/**
 * The built CLI (`node dist/src/cli/main.js ...`) against a real coordinator
 * and worker: every command in table and --json form, the retry flow, the
 * one-line errors, `status --watch` and `submit --wait` when not a terminal.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client/index.js';
import type {
  EventView,
  GroupView,
  RetryReply,
  TaskView,
  WorkerView,
} from '../src/protocol/http.js';
import {
  CLI,
  killAll,
  liveProcesses,
  startServer,
  startWorker,
  tempDir,
  until,
} from '../src/testing/procs.js';
import { trackProcess, WATCH_PARENT } from '../src/testing/cleanup.js';

const HANDLERS = fileURLToPath(new URL('../../test/fixtures/cli-handlers.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  child: ReturnType<typeof spawn>;
  stdout: () => string;
  stderr: () => string;
  done: Promise<Run>;
}

/** Starts the CLI with `args` (stdin: `input`, then closed). */
function start(args: string[], input = ''): Running {
  const child = trackProcess(
    spawn(process.execPath, [...WATCH_PARENT, CLI, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, REGROUP_URL: url, REGROUP_TOKEN: '' },
    }),
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  child.stdin.end(input);
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const done = once(child, 'exit').then(([code]) => {
    clearTimeout(killer);
    return { code: code as number | null, stdout, stderr };
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

function cli(...args: string[]): Promise<Run> {
  return start(args).done;
}

/** Runs a --json command, checks it exited 0 with nothing on stderr, and parses stdout (one JSON value). */
async function cliJson<T>(...args: string[]): Promise<T> {
  const r = await cli(...args, '--json');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(r.stdout.trimEnd().split('\n').length, 1, 'one line of JSON');
  return JSON.parse(r.stdout) as T;
}

let url = '';
let dir = '';
let cleanup = (): void => {};
let client: Client;

before(async () => {
  const t = tempDir();
  dir = t.dir;
  cleanup = t.cleanup;
  url = (await startServer(join(dir, 'r.db'))).url;
  await startWorker(url, HANDLERS, 'cli-worker', ['--concurrency', '4']);
  client = new Client({ url });
});

after(async () => {
  client.close();
  await killAll();
  cleanup();
  assert.equal(liveProcesses(), 0, 'a test left a process running');
});

/** A port nothing listens on (bound, read, closed). */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A group of flaky tasks, 0..n-1, one attempt each: the odd ones fail until `flag` exists. */
async function flakyGroup(n: number, flag: string): Promise<string> {
  const inputs = Array.from({ length: n }, (_, i) => ({ n: i, flag }));
  const g = await client.submit('flaky', inputs, { options: { maxAttempts: 1 } });
  await g.waitSettled();
  return g.id;
}

describe('regroup CLI against a real coordinator', () => {
  it('status: a workers table and a groups table with progress; --json has both; status <group> keeps working', async () => {
    const id = await flakyGroup(2, join(dir, 'never'));
    const r = await cli('status');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const w = lines.findIndex((l) => /^WORKER\s+NAME\s+STATE\s+HEARTBEAT\s+SLOTS\s+DONE/.test(l));
    assert.ok(w >= 0, r.stdout);
    assert.match(
      lines[w + 1]!,
      /^w_\S+\s+cli-worker\s+alive\s+\d+s ago\s+0\/4\s+\d+\s+flaky,sleepy$/,
    );
    const row = lines.find((l) => l.startsWith(id));
    assert.ok(row, r.stdout);
    assert.deepEqual(row.split(/\s+/).slice(0, 10), [
      id,
      'flaky',
      'done',
      '100%',
      '1',
      '1',
      '0',
      '0',
      '0',
      '2',
    ]);

    const j = await cliJson<{ workers: WorkerView[]; groups: GroupView[] }>('status');
    assert.ok(j.workers.some((x) => x.name === 'cli-worker' && x.health === 'alive'));
    assert.deepEqual(
      j.groups.find((g) => g.id === id),
      await client.group(id).status(),
    );

    const one = await cli('status', id);
    assert.match(one.stdout, new RegExp(`^group\\s+${id}$`, 'm'));
    assert.match(one.stdout, /^progress\s+100%$/m);
    assert.equal((await cliJson<GroupView>('status', id)).id, id);
  });

  it('groups: newest first, --state filters, --limit pages with next', async () => {
    const a = await flakyGroup(1, join(dir, 'never'));
    const b = await flakyGroup(1, join(dir, 'never'));
    const page = await cliJson<{ groups: GroupView[]; next: string | null }>(
      'groups',
      '--limit',
      '1',
    );
    assert.deepEqual(
      page.groups.map((g) => g.id),
      [b],
    );
    assert.equal(page.next, b);
    const second = await cliJson<{ groups: GroupView[]; next: string | null }>(
      'groups',
      '--limit',
      '1',
      '--after',
      b,
    );
    assert.deepEqual(
      second.groups.map((g) => g.id),
      [a],
      'the next page starts after b',
    );
    const table = await cli('groups', '--limit', '2');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^GROUP\s+HANDLER\s+STATE\s+PROGRESS/);
    assert.ok(table.stdout.indexOf(b) < table.stdout.indexOf(a), 'newest first');
    assert.match(table.stdout, /^more: --after g_\S+$/m);

    const done = await cliJson<{ groups: GroupView[] }>(
      'groups',
      '--state',
      'done',
      '--limit',
      '1000',
    );
    assert.ok(done.groups.length >= 2 && done.groups.every((g) => g.state === 'done'));
    const canceled = await cliJson<{ groups: GroupView[]; next: null }>(
      'groups',
      '--state',
      'canceled',
    );
    assert.ok(canceled.groups.every((g) => g.state === 'canceled'));
    const bad = await cli('groups', '--state', 'nope');
    assert.equal(bad.code, 2);
  });

  it('retry --failed: failed tasks run again with a new attempt and succeed; an idempotent second retry retries 0', async () => {
    const flag = join(dir, 'flag-retry');
    const id = await flakyGroup(4, flag);

    const failed = await cli('tasks', id, '--state', 'failed');
    assert.equal(failed.code, 0, failed.stderr);
    const lines = failed.stdout.trimEnd().split('\n');
    // Under each task that did not succeed, an indented line says where it threw.
    const rows = lines.filter((l) => !l.startsWith('  '));
    const frames = lines.filter((l) => l.startsWith('  '));
    assert.equal(frames.length, 2, failed.stdout);
    for (const f of frames) assert.match(f, /cli-handlers\.js:\d+:\d+/);
    const whole = await cli('tasks', id, '--state', 'failed', '--stack');
    assert.equal(whole.code, 0, whole.stderr);
    const stackLines = whole.stdout.split('\n').filter((l) => l.startsWith('  '));
    assert.ok(stackLines.length >= frames.length, whole.stdout);
    assert.match(stackLines[0]!, /at flaky .*cli-handlers\.js:\d+:\d+/);
    assert.match(rows[0]!, /^INDEX\s+TASK\s+STATE\s+ATTEMPT\s+WORKER\s+DURATION\s+ERROR$/);
    assert.deepEqual(
      rows.slice(1).map((l) => l.split(/\s{2,}/).filter((_, i) => i !== 1 && i !== 5)),
      [
        ['1', 'failed', '1', rows[1]!.split(/\s{2,}/)[4]!, 'error: no flag yet for 1'],
        ['3', 'failed', '1', rows[2]!.split(/\s{2,}/)[4]!, 'error: no flag yet for 3'],
      ],
    );
    assert.match(rows[1]!.split(/\s{2,}/)[4]!, /^w_/);
    const page = await cliJson<{ tasks: TaskView[]; next: number | null }>(
      'tasks',
      id,
      '--state',
      'failed',
    );
    assert.deepEqual(
      page.tasks.map((t) => [t.index, t.state, t.attempt, t.error?.message]),
      [
        [1, 'failed', 1, 'no flag yet for 1'],
        [3, 'failed', 1, 'no flag yet for 3'],
      ],
    );
    assert.equal(page.next, null);

    const noFlag = await cli('retry', id);
    assert.equal(noFlag.code, 2);
    assert.equal(noFlag.stdout, '');
    assert.match(noFlag.stderr, /^regroup: bad_request: say which tasks to retry: --failed/);
    assert.equal(noFlag.stderr.trimEnd().split('\n').length, 1, 'one line');
    assert.equal((await client.group(id).status()).failed, 2, 'nothing retried without --failed');

    writeFileSync(flag, '');
    const r = await cli('retry', id, '--failed');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^group ${id}: 2 failed tasks back to pending; the group is sealed again`),
    );
    const outcomes = await client.group(id).waitSettled();
    assert.deepEqual(
      outcomes.map((o) => [o.state, o.value, o.attempt]),
      [
        ['succeeded', 0, 1],
        ['succeeded', 10, 2],
        ['succeeded', 20, 1],
        ['succeeded', 30, 2],
      ],
    );
    const again = await cliJson<RetryReply>('retry', id, '--failed');
    assert.equal(again.retried, 0);
    assert.deepEqual([again.group.id, again.group.state, again.group.succeeded], [id, 'done', 4]);
    const events = (await (await fetch(`${url}/v1/events?limit=1000`)).json()) as {
      events: EventView[];
    };
    const retried = events.events.filter((e) => e.type === 'group.retried' && e.groupId === id);
    assert.deepEqual(
      retried.map((e) => e.data),
      [{ retried: 2 }],
      'one event, for the retry that retried',
    );
  });

  it('tasks: pages with --limit and --after', async () => {
    const id = await flakyGroup(5, join(dir, 'never'));
    const p1 = await cliJson<{ tasks: TaskView[]; next: number | null }>(
      'tasks',
      id,
      '--limit',
      '2',
    );
    assert.deepEqual(
      p1.tasks.map((t) => t.index),
      [0, 1],
    );
    assert.equal(p1.next, 1);
    const p2 = await cliJson<{ tasks: TaskView[]; next: number | null }>(
      'tasks',
      id,
      '--limit',
      '2',
      '--after',
      '1',
    );
    assert.deepEqual(
      p2.tasks.map((t) => t.index),
      [2, 3],
    );
    const table = await cli('tasks', id, '--limit', '2', '--after', '3');
    assert.match(table.stdout, /^4\s+\d+\s+succeeded\s+1\s+w_\S+\s+\S+$/m);
    assert.doesNotMatch(table.stdout, /more:/);
    const none = await cli('tasks', id, '--state', 'running');
    assert.equal(none.stdout, 'no running tasks\n');
  });

  it('cancel: cancels what is not final; a canceled group cannot be retried (group_canceled, one line, exit 2)', async () => {
    const g = await client.submit('sleepy', [{ ms: 30_000 }, { ms: 30_000 }]);
    await until('a run started', async () => (await g.status()).running > 0);
    const r = await cli('cancel', g.id);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`^group ${g.id}: canceled \\(0 succeeded, 0 failed, 2 canceled`),
    );
    const again = await cliJson<GroupView>('cancel', g.id);
    assert.deepEqual([again.state, again.canceled], ['canceled', 2]);

    const retry = await cli('retry', g.id, '--failed');
    assert.equal(retry.code, 2);
    assert.equal(retry.stdout, '');
    assert.match(retry.stderr, new RegExp(`^regroup: group_canceled: group ${g.id} was canceled`));
    assert.equal(retry.stderr.trimEnd().split('\n').length, 1);
  });

  it('POST /retry: validates its body; a done group is not done after a retry, and a long poll on it wakes when it is done again', async () => {
    const post = async (path: string, body?: string) => {
      const res = await fetch(`${url}${path}`, {
        method: 'POST',
        ...(body === undefined ? {} : { body, headers: { 'content-type': 'application/json' } }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    const flag = join(dir, 'flag-http');
    const special = await startWorker(url, HANDLERS, 'special', ['--labels', 'special']);
    const inputs = [0, 1].map((n) => ({ n, flag }));
    const g = await client.submit('flaky', inputs, {
      options: { maxAttempts: 1, requires: ['special'] },
    });
    await g.waitSettled();
    await special.kill();

    const bad = await post(`/v1/groups/${g.id}/retry`, '{"failed":true}');
    assert.equal(bad.status, 400);
    assert.equal((bad.body['error'] as { code: string }).code, 'validation_failed');
    assert.equal((await g.status()).failed, 1, 'a refused request retried nothing');
    const none = await post('/v1/groups/nope/retry', '{}');
    assert.equal(none.status, 404);

    writeFileSync(flag, '');
    const r = await post(`/v1/groups/${g.id}/retry`, '{}');
    assert.equal(r.status, 200);
    const reply = r.body as unknown as RetryReply;
    assert.equal(reply.retried, 1);
    assert.deepEqual(
      [reply.group.state, reply.group.done, reply.group.pending, reply.group.finishedAt],
      ['sealed', false, 1, null],
    );
    // No worker has the label now: the retried task waits, and so does a long poll.
    const waiting = fetch(`${url}/v1/groups/${g.id}/wait?timeoutMs=30000`).then(
      async (res) => (await res.json()) as GroupView,
    );
    const empty = await post(`/v1/groups/${g.id}/retry`);
    assert.equal(empty.status, 200, 'no body is accepted too');
    assert.equal((empty.body as unknown as RetryReply).retried, 0);
    await startWorker(url, HANDLERS, 'special-2', ['--labels', 'special']);
    const woken = await waiting;
    assert.deepEqual([woken.done, woken.state, woken.succeeded], [true, 'done', 2]);
  });

  it('an error from the coordinator is one line with its code, JSON with --json, and exit 2', async () => {
    const r = await cli('tasks', 'nope');
    assert.deepEqual(r, {
      code: 2,
      stdout: '',
      stderr: 'regroup: group_not_found: no group with id nope\n',
    });
    const j = await cli('retry', 'nope', '--failed', '--json');
    assert.equal(j.code, 2);
    assert.equal(j.stdout, '');
    assert.deepEqual(JSON.parse(j.stderr), {
      error: { code: 'group_not_found', message: 'no group with id nope' },
    });
  });

  it('status --watch redraws without clearing when stdout is not a terminal, and Ctrl-C ends it with 0', async () => {
    const w = start(['status', '--watch', '--interval', '100']);
    await until('three frames', () => w.stdout().split('workers (').length > 3);
    w.child.kill('SIGINT');
    const r = await w.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
    assert.ok(!r.stdout.includes('\x1b['), 'no escape codes');
    const j = start(['status', '--watch', '--interval', '100', '--json']);
    await until('two JSON frames', () => j.stdout().split('\n').length > 2);
    j.child.kill('SIGINT');
    const jr = await j.done;
    assert.equal(jr.code, 0, jr.stderr);
    for (const line of jr.stdout.trimEnd().split('\n')) {
      const frame = JSON.parse(line) as { workers: unknown[]; groups: unknown[] };
      assert.ok(Array.isArray(frame.workers) && Array.isArray(frame.groups));
    }
  });

  it('submit --wait prints plain progress lines on stderr when it is not a terminal, results on stdout', async () => {
    const flag = join(dir, 'never');
    const input = [0, 2, 4].map((n) => JSON.stringify({ n, flag })).join('\n');
    const r = await start(['submit', '--handler', 'flaky'], input).done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [
        { index: 0, state: 'succeeded', value: 0 },
        { index: 1, state: 'succeeded', value: 20 },
        { index: 2, state: 'succeeded', value: 40 },
      ],
    );
    assert.match(r.stderr, /^group g_\S+: 3 tasks$/m);
    assert.match(r.stderr, /^progress: 3\/3 finished, 0 failed$/m);
    assert.ok(!r.stderr.includes('\x1b['), 'no bar, no escape codes');
  });

  it('mistakes say what to fix: a malformed group id, no inputs (nothing submitted), and --json keeps stderr JSON', async () => {
    const bad = await cli('tasks', 'bad id!');
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^regroup: group_not_found: no group with id "bad id!": a group id is 1 to 100 letters, digits/,
    );
    const before = (await client.listGroups({ limit: 1000 })).length;
    const empty = join(dir, 'empty.jsonl');
    writeFileSync(empty, '\n\n');
    const none = await cli('submit', '--handler', 'flaky', '--file', empty);
    assert.equal(none.code, 2);
    assert.equal(none.stdout, '');
    assert.match(
      none.stderr,
      /^regroup: bad_request: no inputs: .*empty\.jsonl holds no JSON lines.*--allow-empty/,
    );
    const piped = await start(['submit', '--handler', 'flaky'], '').done;
    assert.match(piped.stderr, /^regroup: bad_request: no inputs: stdin holds no JSON lines/);
    assert.equal((await client.listGroups({ limit: 1000 })).length, before, 'nothing submitted');
    const allowed = await cli('submit', '--handler', 'flaky', '--file', empty, '--allow-empty');
    assert.deepEqual([allowed.code, allowed.stdout], [0, '']);
    assert.match(allowed.stderr, /^group g_\S+: 0 tasks$/m);
    const flag = join(dir, 'never');
    const j = await start(
      ['submit', '--handler', 'flaky', '--json'],
      JSON.stringify({ n: 2, flag }),
    ).done;
    assert.equal(j.code, 0, j.stderr);
    const lines = j.stderr.trimEnd().split('\n');
    const first = JSON.parse(lines[0]!) as { groupId: string; tasks: number };
    assert.match(first.groupId, /^g_/);
    assert.equal(first.tasks, 1);
    for (const line of lines)
      assert.doesNotThrow(() => JSON.parse(line), `JSON on stderr: ${line}`);
  });

  it('no coordinator: submit says so at once and names `regroup server`; https to an http server says to use http', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const s = start(['submit', '--handler', 'flaky', '--url', closed], '1');
    const t0 = Date.now();
    await until('the retry notice', () => s.stderr().includes('retrying'));
    const took = Date.now() - t0;
    s.child.kill('SIGKILL');
    await s.done;
    assert.ok(took < 10_000, `said within ${took} ms`);
    assert.match(
      s.stderr(),
      /ECONNREFUSED.*start one with `regroup server`.*retrying for up to 60 s \(Ctrl-C to stop\)/,
    );
    const tls = await cli('status', '--url', url.replace(/^http:/, 'https:'));
    assert.equal(tls.code, 2);
    const last = tls.stderr.trimEnd().split('\n').at(-1)!;
    assert.match(
      last,
      /TLS handshake failed \(EPROTO\): the server does not speak https; if it serves plain http, use http:\/\//,
    );
  });

  it('a worker stopped with Ctrl-C before it ever reached a coordinator exits 0 without an error line', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const w = start(['worker', '--handlers', HANDLERS, '--url', closed]);
    await until('the worker tries to connect', () => w.stderr().includes('ECONNREFUSED'));
    w.child.kill('SIGINT');
    const r = await w.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!/regroup: closed/.test(r.stderr), r.stderr);
  });

  it('status: a worker that died is shown dead with no slot in use; DONE counts tasks brought to an end, not runs', async () => {
    const doomed = await startWorker(url, HANDLERS, 'doomed', [
      '--concurrency',
      '2',
      '--labels',
      'doomed',
    ]);
    const flag = join(dir, 'never');
    // 0 and 2 succeed; 1 and 3 fail twice: 4 tasks brought to an end in 6 runs.
    const inputs = [0, 1, 2, 3].map((n) => ({ n, flag }));
    const g = await client.submit('flaky', inputs, {
      options: { maxAttempts: 2, requires: ['doomed'] },
    });
    await g.waitSettled();
    const alive = (await cliJson<{ workers: WorkerView[] }>('status')).workers;
    const before = alive.find((w) => w.name === 'doomed');
    assert.deepEqual([before?.health, before?.tasksDone], ['alive', 4]);
    await doomed.kill();
    await until('doomed declared dead', async () =>
      (await cliJson<{ workers: WorkerView[] }>('status')).workers.some(
        (w) => w.name === 'doomed' && w.health === 'dead',
      ),
    );
    const table = await cli('status');
    const row = table.stdout.split('\n').find((l) => /\sdoomed\s/.test(l));
    assert.ok(row, table.stdout);
    assert.match(row, /\sdead\s/);
    assert.match(row, /\s0\/2\s+4\s/, `SLOTS 0/2 and DONE 4: ${row}`);
    const live = (await cliJson<{ workers: WorkerView[] }>('status')).workers;
    assert.ok(live.some((w) => w.name === 'cli-worker' && w.health === 'alive'));
  });

  it('--version prints the package version; one task is "1 task"', async () => {
    const pkg = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    const v = await cli('--version');
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, `${pkg.version}\n`);
    const flag = join(dir, 'never');
    const one = await start(['submit', '--handler', 'flaky'], JSON.stringify({ n: 2, flag })).done;
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stderr, /^group g_\S+: 1 task$/m);
  });
});
