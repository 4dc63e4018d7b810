/**
 * Flow control (issue 15). Priorities across groups: a high-priority group
 * submitted behind a large low-priority one, and behind 200 small ones,
 * finishes first. Concurrency caps (item 2): a group's options.maxConcurrency holds
 * with real processes, through a worker SIGKILL and a coordinator restart
 * (SIGKILL, then a new process on the same file and port): never more of its
 * tasks running at once than the cap, counted both from the handlers' own
 * log and from the group's counters, and every task still done once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { sleep, startServer, startWorker, until } from '../src/testing/procs.js';
import {
  fixture,
  readRunLog,
  realProcessesWithClients,
  serverAndWorkers,
} from './real-processes.js';

const HANDLERS = fixture('cap-handlers.js');
const tmp = realProcessesWithClients('regroup-caps-');

interface RunLine {
  taskId: number;
  groupId: string;
  attempt: number;
  pid: number;
  event: 'start' | 'end';
  at: number;
}

/** Most runs open at once: each from its start to its end, or to its process's death. */
function mostAtOnce(lines: RunLine[], diedAt: Map<number, number>): number {
  const edges: [number, number][] = [];
  const ends = new Map<string, number>();
  for (const l of lines) if (l.event === 'end') ends.set(`${l.taskId}:${l.attempt}`, l.at);
  for (const l of lines) {
    if (l.event !== 'start') continue;
    const end = ends.get(`${l.taskId}:${l.attempt}`) ?? diedAt.get(l.pid) ?? Infinity;
    edges.push([l.at, 1], [end, -1]);
  }
  // At equal times an end comes before a start: a slot handed on is not two at once.
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, d] of edges) most = Math.max(most, (open += d));
  return most;
}

void describe('flow control (real processes, SQLite file)', () => {
  void it('a high-priority group submitted after a 10,000-task low-priority one and 200 small ones finishes first', async () => {
    const { url } = await startServer(join(tmp.dir, 'priority.db'));
    await startWorker(url, HANDLERS, 'w1', ['--concurrency', '4']);
    const client = tmp.client(url);
    const big = await client.submit(
      'step',
      Array.from({ length: 10_000 }, () => ({ ms: 1 })),
    );
    const small = [];
    for (let i = 0; i < 200; i++)
      small.push(
        await client.submit(
          'step',
          Array.from({ length: 20 }, () => ({ ms: 1 })),
        ),
      );
    await until('the big group running', async () => (await big.status()).succeeded > 0 || null);
    const high = await client.submit(
      'step',
      Array.from({ length: 20 }, () => ({ ms: 1 })),
      { options: { priority: 10 } },
    );
    await high.wait({ signal: AbortSignal.timeout(60_000) });
    const b = await big.status();
    assert.equal(b.done, false, 'the big low-priority group is still running');
    const smallDone = (await Promise.all(small.map((g) => g.status()))).filter((g) => g.done);
    assert.ok(smallDone.length < 200, `the small groups are not all done (${smallDone.length})`);
    await big.cancel();
    for (const g of small) await g.cancel();
  });

  void it('maxConcurrency 3 holds through a worker SIGKILL and a coordinator restart', async () => {
    const runLog = join(tmp.dir, 'runs.jsonl');
    const db = join(tmp.dir, 'caps.db');
    const first = await startServer(db);
    const { url, port } = first;
    const env = { REGROUP_RUN_LOG: runLog };
    const w1 = await startWorker(url, HANDLERS, 'w1', ['--concurrency', '8'], env);
    await startWorker(url, HANDLERS, 'w2', ['--concurrency', '8'], env);
    const client = tmp.client(url);
    const inputs = Array.from({ length: 30 }, () => ({ ms: 250 }));
    const group = await client.submit('step', inputs, { options: { maxConcurrency: 3 } });
    assert.equal((await group.status()).options.maxConcurrency, 3);
    // A second group without a cap runs beside it: the cap is the group's, not the fleet's.
    const free = await client.submit(
      'step',
      Array.from({ length: 8 }, () => ({ ms: 250 })),
    );

    let mostRunning = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          mostRunning = Math.max(mostRunning, (await group.status()).running);
        } catch {
          // the coordinator is down for its restart
        }
        await sleep(25);
      }
    })();

    const diedAt = new Map<number, number>();
    const done = async (n: number): Promise<void> => {
      await until(`${n} done`, async () => (await group.status()).succeeded >= n || null, 30_000);
    };
    await done(6);
    diedAt.set(w1.pid, Date.now());
    w1.signal('SIGKILL');
    await done(15);
    first.proc.signal('SIGKILL');
    await first.proc.exited;
    await sleep(300);
    await startServer(db, { port });
    const results = (await group.wait({ signal: AbortSignal.timeout(60_000) })) as number[];
    sampling = false;
    await sampler;
    await free.wait();

    assert.equal(results.length, 30);
    const lines = readRunLog<RunLine>(runLog).filter((l) => l.groupId === group.id);
    const most = mostAtOnce(lines, diedAt);
    assert.ok(most <= 3, `at most 3 of the group's handlers ran at once (saw ${most})`);
    assert.equal(most, 3, 'the cap was reached: it limited, it did not serialize');
    assert.ok(mostRunning <= 3, `the group never counted more than 3 running (saw ${mostRunning})`);
    const ended = new Set(lines.filter((l) => l.event === 'end').map((l) => l.taskId));
    assert.equal(ended.size, 30, 'every task ran to its end');
    const freeLines = readRunLog<RunLine>(runLog).filter((l) => l.groupId === free.id);
    assert.ok(mostAtOnce(freeLines, diedAt) > 3, 'the uncapped group ran more than 3 at once');
  });

  void it('a concurrencyKey limit holds across groups: set by the coordinator, or proposed by the first group', async () => {
    const { url, runLog } = await serverAndWorkers(tmp.dir, 'keys', HANDLERS, {
      workers: ['k1', 'k2'],
      concurrency: 6,
      serverExtra: ['--concurrency-limit', 'api=2'],
    });
    const client = tmp.client(url);
    const tasks = (n: number) => Array.from({ length: n }, () => ({ ms: 150 }));
    // api: the coordinator's 2 wins over what a group proposes.
    const a = await client.submit('step', tasks(12), { options: { concurrencyKey: 'api' } });
    const b = await client.submit('step', tasks(12), {
      options: { concurrencyKey: 'api', concurrencyKeyLimit: 10 },
    });
    // db: no coordinator limit; the first group proposes 3, the second none.
    const c = await client.submit('step', tasks(12), {
      options: { concurrencyKey: 'db', concurrencyKeyLimit: 3 },
    });
    const d = await client.submit('step', tasks(12), { options: { concurrencyKey: 'db' } });
    for (const g of [a, b, c, d]) await g.wait({ signal: AbortSignal.timeout(60_000) });
    const lines = readRunLog<RunLine>(runLog);
    const of = (...ids: string[]) => lines.filter((l) => ids.includes(l.groupId));
    const none = new Map<number, number>();
    const api = mostAtOnce(of(a.id, b.id), none);
    const db = mostAtOnce(of(c.id, d.id), none);
    assert.equal(api, 2, `key api: at most 2 of a and b at once, and reached (saw ${api})`);
    assert.equal(db, 3, `key db: at most 3 of c and d at once, and reached (saw ${db})`);
    assert.ok(mostAtOnce(of(a.id), none) >= 1 && mostAtOnce(of(b.id), none) >= 1);
    assert.ok(mostAtOnce(lines, none) > 3, 'the keys limit their groups, not the fleet');
  });

  void it('a retry after a timeout runs on another worker when one can run it', async () => {
    const { url, runLog } = await serverAndWorkers(tmp.dir, 'elsewhere', HANDLERS, {
      workers: ['e1', 'e2'],
      concurrency: 8,
    });
    const client = tmp.client(url);
    const group = await client.submit(
      'slowFirst',
      Array.from({ length: 8 }, () => ({ ms: 5_000 })),
      { options: { timeoutMs: 300, backoffMs: 0, backoffMaxMs: 0 } },
    );
    await group.wait({ signal: AbortSignal.timeout(60_000) });
    const starts = readRunLog<RunLine>(runLog).filter((l) => l.event === 'start');
    const byTask = new Map<number, RunLine[]>();
    for (const l of starts) byTask.set(l.taskId, [...(byTask.get(l.taskId) ?? []), l]);
    assert.equal(byTask.size, 8);
    for (const [taskId, runs] of byTask) {
      const [first, second] = [...runs].sort((a, b) => a.attempt - b.attempt);
      assert.deepEqual([first?.attempt, second?.attempt], [1, 2], `task ${taskId} ran twice`);
      assert.notEqual(second!.pid, first!.pid, `task ${taskId}: attempt 2 ran on the other worker`);
    }
  });
});
