/**
 * One writer per SQLite file, with real processes. A second `regroup server`
 * on the file a coordinator runs on is refused (`store_locked`, exit 2) and
 * leaves the first one, its worker and its group alone. The lock dies with
 * the process that holds it: after a SIGKILL a new coordinator starts on the
 * file and finds the group as it was.
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client/index.js';
import { RegroupError } from '../src/core/errors.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { EventView, TaskView, WorkerView } from '../src/protocol/http.js';
import {
  killAll,
  liveProcesses,
  Proc,
  startServer,
  startWorker,
  tempDir,
  until,
} from '../src/testing/procs.js';

const HANDLERS = fileURLToPath(new URL('../../test/fixtures/fault-handlers.js', import.meta.url));

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  assert.equal(r.status, 200, `GET ${url} -> ${r.status}`);
  return (await r.json()) as T;
}

async function tasksOf(url: string, groupId: string): Promise<TaskView[]> {
  return (await getJson<{ tasks: TaskView[] }>(`${url}/v1/groups/${groupId}/tasks?limit=1000`))
    .tasks;
}

async function eventsOf(url: string, type: string): Promise<EventView[]> {
  const page = await getJson<{ events: EventView[] }>(`${url}/v1/events?after=0&limit=1000`);
  return page.events.filter((e) => e.type === type);
}

function secondServer(db: string): Proc {
  return new Proc('second', ['server', '--port', '0', '--db', db, '--log-level', 'warn']);
}

/** Resolves with the exit code of a process expected to end by itself; fails the test if it runs on. */
async function exitCodeOf(proc: Proc, timeoutMs = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `${proc.name} still runs after ${timeoutMs} ms; output:\n${proc.out.join('\n')}`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([proc.exited, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

const clients: Client[] = [];
function client(url: string): Client {
  const c = new Client({ url });
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await killAll();
});
after(() => assert.equal(liveProcesses(), 0, 'a test left a process running'));

describe('one coordinator per SQLite file (real processes)', () => {
  it('a second server on the file exits with store_locked; the first keeps its worker and finishes its group; after a SIGKILL of the first a new one starts on the file', async () => {
    const t = tempDir();
    const db = join(t.dir, 'r.db');
    try {
      const first = await startServer(db);
      await startWorker(first.url, HANDLERS, 'w1', ['--concurrency', '2']);
      const [worker] = await client(first.url).workers();
      assert.ok(worker, 'the worker joined');
      // An open group is not done before its seal, however fast its tasks run.
      const group = await client(first.url).open<{ ms: number }>('sleepy');
      await group.add([{ ms: 3000 }, { ms: 3000 }]);
      await until('both tasks running', async () => (await group.status()).running === 2);

      const second = secondServer(db);
      assert.equal(await exitCodeOf(second), 2, second.out.join('\n'));
      const said = second.out.join('\n');
      assert.match(said, /^regroup: store_locked: /m);
      assert.ok(said.includes(db), `the refusal names the file: ${said}`);
      assert.match(said, /another --db/);
      assert.doesNotMatch(said, /listening on|internal/);

      // The first coordinator still leads, with its worker alive and connected.
      const health = await getJson<{ role: string }>(`${first.url}/healthz`);
      assert.equal(health.role, 'leader');
      const { workers } = await getJson<{ workers: WorkerView[] }>(`${first.url}/v1/workers`);
      assert.deepEqual(
        workers.map((w) => [w.workerId, w.health, w.connected]),
        [[worker.workerId, 'alive', true]],
      );
      // And still takes writes: one more task, the seal, the results.
      await group.add([{ ms: 10 }]);
      await group.seal();
      const results = await group.wait();
      assert.deepEqual(
        results.map((r) => r.ms),
        [3000, 3000, 10],
      );
      const tasks = await tasksOf(first.url, group.id);
      assert.deepEqual(
        tasks.map((x) => [x.state, x.attempt]),
        [
          ['succeeded', 1],
          ['succeeded', 1],
          ['succeeded', 1],
        ],
        'every task ran once, on the worker of the first coordinator',
      );
      assert.deepEqual(await eventsOf(first.url, 'worker.dead'), [], 'no worker declared dead');
      assert.equal(
        (await eventsOf(first.url, 'coordinator.started')).length,
        1,
        'the refused coordinator wrote nothing',
      );

      // SIGKILL: no clean close. The lock goes with the process.
      first.proc.signal('SIGKILL');
      await first.proc.exited;
      const next = await startServer(db);
      const view = await client(next.url).group(group.id).status();
      assert.equal(view.state, 'done');
      assert.equal(view.succeeded, 3);
      assert.deepEqual(await tasksOf(next.url, group.id), tasks, 'the tasks as they were');
      // Events ride with the next tick (up to 25 ms later): wait for the new one, then count.
      await until(
        'the restarted coordinator logs its start',
        async () => (await eventsOf(next.url, 'coordinator.started')).length >= 2,
      );
      assert.equal((await eventsOf(next.url, 'coordinator.started')).length, 2);
    } finally {
      t.cleanup();
    }
  });

  it('a store refused in the process that holds the file does not loosen the hold on it for other processes', async () => {
    const t = tempDir();
    const db = join(t.dir, 'r.db');
    const held = new SqliteStore({ path: db });
    try {
      await held.open();
      // POSIX drops a process's locks on a file when it closes any descriptor of it:
      // the refused store opens and closes the lock file, and the hold must survive that.
      await assert.rejects(new SqliteStore({ path: db, lockWaitMs: 0 }).open(), (e: unknown) => {
        assert.ok(e instanceof RegroupError);
        assert.equal(e.code, 'store_locked');
        return true;
      });
      const second = secondServer(db);
      assert.equal(await exitCodeOf(second), 2, second.out.join('\n'));
      assert.match(second.out.join('\n'), /^regroup: store_locked: /m);
    } finally {
      await held.close();
      t.cleanup();
    }
  });
});
