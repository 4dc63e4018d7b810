/**
 * Fault tests with real processes and a real SQLite file: workers and the
 * coordinator are killed, stopped and restarted while a group runs.
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client/index.js';
import type { EventView, TaskView, WorkerView } from '../src/protocol/http.js';
import {
  killAll,
  liveProcesses,
  sleep,
  startServer,
  startWorker,
  tempDir,
  until,
  type Proc,
} from '../src/testing/procs.js';

const HANDLERS = fileURLToPath(new URL('../../test/fixtures/fault-handlers.js', import.meta.url));

interface RunLine {
  taskId: number;
  attempt: number;
  pid: number;
  at: number;
  start?: number;
}

function readRuns(file: string): RunLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RunLine);
}

async function getJson<T>(url: string): Promise<T> {
  const r = await fetch(url);
  assert.equal(r.status, 200, `GET ${url} -> ${r.status}`);
  return (await r.json()) as T;
}

async function allTasks(url: string, groupId: string): Promise<TaskView[]> {
  const out: TaskView[] = [];
  let after = -1;
  for (;;) {
    const page = await getJson<{ tasks: TaskView[]; next: number | null }>(
      `${url}/v1/groups/${groupId}/tasks?after=${after}&limit=1000`,
    );
    out.push(...page.tasks);
    if (page.next === null) return out;
    after = page.next;
  }
}

async function events(url: string, type?: string): Promise<EventView[]> {
  const all: EventView[] = [];
  let afterSeq = 0;
  for (;;) {
    const page = await getJson<{ events: EventView[] }>(
      `${url}/v1/events?after=${afterSeq}&limit=1000`,
    );
    all.push(...page.events);
    if (page.events.length < 1000) break;
    afterSeq = page.events[page.events.length - 1]!.seq;
  }
  return type ? all.filter((e) => e.type === type) : all;
}

async function runningOn(url: string): Promise<WorkerView[]> {
  return (await getJson<{ workers: WorkerView[] }>(`${url}/v1/workers`)).workers;
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

describe('faults (real processes, SQLite file)', () => {
  it('SIGKILL of a worker mid-group: every task has one result, its tasks run again within 1.5 s', async () => {
    const t = tempDir();
    const runLog = join(t.dir, 'runs.jsonl');
    process.env['REGROUP_RUN_LOG'] = runLog;
    try {
      const { url } = await startServer(join(t.dir, 'r.db'));
      const workers: Proc[] = [];
      for (const name of ['w1', 'w2', 'w3'])
        workers.push(await startWorker(url, HANDLERS, name, ['--concurrency', '4']));
      const inputs = Array.from({ length: 150 }, (_, n) => ({ n, ms: 40 + (n % 5) * 20 }));
      const group = await client(url).submit('slowSquare', inputs);
      await until('some results', async () => (await group.status()).succeeded >= 20);
      const victim = workers[1]!;
      const killedAt = Date.now();
      victim.signal('SIGKILL');
      const results = (await group.wait()) as { n: number; square: number; pid: number }[];
      assert.equal(results.length, inputs.length);
      results.forEach((r, i) => assert.deepEqual([r.n, r.square], [i, i * i]));
      const tasks = await allTasks(url, group.id);
      assert.ok(tasks.every((x) => x.state === 'succeeded'));
      const seqs = new Set(tasks.map((x) => x.seq));
      assert.equal(
        seqs.size,
        tasks.length,
        'each task committed once: one finishing sequence each',
      );
      const dead = await events(url, 'worker.dead');
      assert.equal(dead.length, 1, 'one worker declared dead');
      const requeued = (dead[0]!.data as { requeued: number[] }).requeued;
      assert.ok(requeued.length > 0, 'the killed worker held tasks');
      const runs = readRuns(runLog);
      for (const taskId of requeued) {
        const again = runs.filter(
          (r) => r.taskId === taskId && r.pid !== victim.pid && r.at >= killedAt,
        );
        assert.ok(again.length >= 1, `task ${taskId} ran again`);
        const delay = Math.min(...again.map((r) => r.at)) - killedAt;
        assert.ok(
          delay <= 1500,
          `task ${taskId} started again ${delay} ms after the kill (limit 1500)`,
        );
      }
    } finally {
      delete process.env['REGROUP_RUN_LOG'];
      t.cleanup();
    }
  });

  it('SIGSTOP past dead-after, then SIGCONT: late results neither commit twice nor overwrite', async () => {
    const t = tempDir();
    try {
      const { url } = await startServer(join(t.dir, 'r.db'));
      const a = await startWorker(url, HANDLERS, 'stopped', ['--concurrency', '4']);
      const group = await client(url).submit(
        'slowSquare',
        Array.from({ length: 8 }, (_, n) => ({ n, ms: 1500 })),
      );
      await until('the first worker holds tasks', async () =>
        (await runningOn(url)).some((w) => w.running > 0),
      );
      a.signal('SIGSTOP');
      await startWorker(url, HANDLERS, 'healthy', ['--concurrency', '8']);
      await until(
        'the stopped worker declared dead',
        async () => (await events(url, 'worker.dead')).length > 0,
        10_000,
      );
      const results = (await group.wait()) as {
        n: number;
        square: number;
        pid: number;
        attempt: number;
      }[];
      const before = await allTasks(url, group.id);
      a.signal('SIGCONT');
      // The stopped worker wakes up with finished runs of revoked attempts and reconnects.
      await a.waitFor(/joined as w_\w+/);
      await sleep(2000);
      const afterwards = await allTasks(url, group.id);
      assert.deepEqual(afterwards, before, 'nothing changed after the late worker came back');
      for (const r of results)
        assert.notEqual(r.pid, a.pid, 'no result from the stopped worker was accepted');
      assert.ok(results.every((r, i) => r.square === i * i));
      assert.ok(before.every((x) => x.state === 'succeeded'));
      const dead = await events(url, 'worker.dead');
      const requeued = (dead[0]!.data as { requeued: number[] }).requeued;
      assert.equal(requeued.length, 4, 'the stopped worker held 4 runs');
      for (const id of requeued)
        assert.ok(before.find((x) => x.taskId === id)!.attempt >= 2, `task ${id} ran again`);
    } finally {
      t.cleanup();
    }
  });

  it('SIGKILL of the coordinator mid-group and a restart on the same file: nothing lost, the wait resolves', async () => {
    const t = tempDir();
    const db = join(t.dir, 'r.db');
    try {
      const first = await startServer(db);
      const url = first.url;
      for (const name of ['w1', 'w2'])
        await startWorker(url, HANDLERS, name, ['--concurrency', '4']);
      const inputs = Array.from({ length: 120 }, (_, n) => ({ n, ms: 30 + (n % 4) * 20 }));
      const group = await client(url).submit('slowSquare', inputs);
      const waiting = group.wait();
      await until('some results', async () => (await group.status()).succeeded >= 30);
      const committedBefore = (await allTasks(url, group.id)).filter(
        (x) => x.state === 'succeeded',
      );
      first.proc.signal('SIGKILL');
      await first.proc.exited;
      await sleep(300);
      await startServer(db, { port: first.port });
      const results = (await waiting) as { n: number; square: number }[];
      assert.equal(results.length, inputs.length);
      results.forEach((r, i) => assert.equal(r.square, i * i));
      const tasks = await allTasks(url, group.id);
      for (const c of committedBefore) {
        const now = tasks[c.index]!;
        assert.equal(now.state, 'succeeded');
        assert.deepEqual(now.value, c.value, `acknowledged result of task ${c.taskId} kept`);
        assert.equal(now.seq, c.seq, `task ${c.taskId} not committed again`);
      }
      assert.ok((await events(url, 'coordinator.started')).length >= 2);
      // Both workers came back within the resume grace and kept their sessions and leases.
      const resumed = new Set((await events(url, 'worker.resumed')).map((e) => e.workerId));
      assert.equal(resumed.size, 2, 'both workers resumed their sessions');
      assert.equal((await events(url, 'worker.dead')).length, 0, 'no worker was declared dead');
    } finally {
      t.cleanup();
    }
  });

  it('a handler that throws is retried with backoff up to maxAttempts, then fails with its message', async () => {
    const t = tempDir();
    const runLog = join(t.dir, 'runs.jsonl');
    process.env['REGROUP_RUN_LOG'] = runLog;
    try {
      const { url } = await startServer(join(t.dir, 'r.db'));
      await startWorker(url, HANDLERS, 'w1');
      const c = client(url);
      const group = await c.submit('alwaysFails', ['x'], {
        options: { maxAttempts: 3, backoffMs: 100 },
      });
      const outcomes = await group.waitSettled();
      assert.equal(outcomes.length, 1);
      assert.equal(outcomes[0]!.state, 'failed');
      assert.equal(outcomes[0]!.attempt, 3);
      assert.match(outcomes[0]!.error!.message, /^boom x on attempt 3$/);
      await assert.rejects(
        group.wait(),
        (e: Error & { code?: string }) => e.code === 'group_failed' && /boom x/.test(e.message),
      );
      const runs = readRuns(runLog).sort((x, y) => x.attempt - y.attempt);
      assert.deepEqual(
        runs.map((r) => r.attempt),
        [1, 2, 3],
      );
      // Backoff: 100 ms base with equal jitter -> at least 50 ms, then at least 100 ms.
      assert.ok(runs[1]!.at - runs[0]!.at >= 50, 'first retry waited');
      assert.ok(runs[2]!.at - runs[1]!.at >= 100, 'second retry waited longer');
      const retried = await events(url, 'task.retried');
      assert.equal(retried.length, 2);
      const status = await group.status();
      assert.equal(status.failed, 1);
      assert.equal(status.done, true);
    } finally {
      delete process.env['REGROUP_RUN_LOG'];
      t.cleanup();
    }
  });

  it('a task that kills its worker every time fails as poison after maxNodeFailures; the rest completes', async () => {
    const t = tempDir();
    try {
      const { url } = await startServer(join(t.dir, 'r.db'));
      for (const name of ['w1', 'w2', 'w3', 'w4'])
        await startWorker(url, HANDLERS, name, ['--concurrency', '2']);
      const inputs = [...Array.from({ length: 20 }, (_, n) => ({ n })), { n: 99, crash: true }];
      const group = await client(url).submit('maybeCrash', inputs, {
        options: { maxNodeFailures: 3 },
      });
      const outcomes = await group.waitSettled();
      const poison = outcomes[20]!;
      assert.equal(poison.state, 'failed');
      assert.equal(poison.error!.kind, 'poison');
      assert.match(poison.error!.message, /3 workers/);
      for (let i = 0; i < 20; i++)
        assert.deepEqual([outcomes[i]!.state, outcomes[i]!.value], ['succeeded', i * 2]);
      assert.equal((await events(url, 'worker.dead')).length, 3);
    } finally {
      t.cleanup();
    }
  });

  it('a checkpoint saved before the worker is killed is where the next attempt starts', async () => {
    const t = tempDir();
    try {
      const { url } = await startServer(join(t.dir, 'r.db'));
      const w1 = await startWorker(url, HANDLERS, 'w1', ['--concurrency', '1']);
      const group = await client(url).submit('resumable', [{ steps: 12, ms: 100 }]);
      const tasks = await until('three checkpoints saved', async () => {
        const [task] = await allTasks(url, group.id);
        return task && task.state === 'running' ? task : null;
      });
      await sleep(650);
      w1.signal('SIGKILL');
      await startWorker(url, HANDLERS, 'w2', ['--concurrency', '1']);
      const [result] = (await group.wait()) as { startedFrom: number; attempt: number }[];
      assert.equal(tasks.attempt, 1);
      assert.equal(result!.attempt, 2);
      assert.ok(
        result!.startedFrom >= 3,
        `second attempt started from step ${result!.startedFrom}`,
      );
      assert.ok(result!.startedFrom < 12);
    } finally {
      t.cleanup();
    }
  });
});
