/**
 * Waiting frees the slot, against a real coordinator (SQLite file, in this
 * process) and raw worker-protocol peers that send exactly what a careless
 * or hostile worker would: a worker that suspends every run it gets holds
 * at most slots + maxSuspendedPerWorker of them; a resume waits for a slot
 * and is served before any new run; a suspend or resume of a run the worker
 * does not hold changes nothing.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client } from '../src/client/index.js';
import { Coordinator } from '../src/coordinator/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { sleep, tempDir, until } from '../src/testing/procs.js';
import type { CoordinatorMessage } from '../src/protocol/worker.js';
import { RawWorker } from './raw-worker.js';

const CAP = 3;
let coordinator: Coordinator;
let url: string;
let client: Client;
const tmp = tempDir();
const workers: RawWorker[] = [];

before(async () => {
  coordinator = new Coordinator({
    store: new SqliteStore({ path: join(tmp.dir, 'suspend.db') }),
    port: 0,
    maxSuspendedPerWorker: CAP,
  });
  url = await coordinator.start();
  client = new Client({ url });
});
after(async () => {
  for (const w of workers) w.close();
  client.close();
  await coordinator.stop();
  tmp.cleanup();
});

type Run = Extract<CoordinatorMessage, { t: 'run' }>;

async function worker(name: string, handler: string, slots: number): Promise<RawWorker> {
  const w = new RawWorker(url);
  workers.push(w);
  await w.hello(name, [handler], slots);
  return w;
}

const runs = (w: RawWorker): Run[] => w.inbox.filter((m): m is Run => m.t === 'run');

void describe('suspended runs: a careless or hostile worker', () => {
  void it('a worker that suspends every run holds at most slots + maxSuspendedPerWorker; a resume waits for a slot and comes before new runs', async () => {
    const greedy = await worker('greedy', 'greedy', 1);
    const group = await client.submit(
      'greedy',
      Array.from({ length: 20 }, (_, i) => i),
    );
    // Suspend each run as it comes: every suspend frees the one slot again, up to the cap.
    const suspended = new Set<number>();
    await until(
      'runs up to the cap',
      () => {
        for (const r of runs(greedy)) {
          if (suspended.has(r.taskId)) continue;
          suspended.add(r.taskId);
          greedy.send({ t: 'suspend', taskId: r.taskId, attempt: r.attempt });
        }
        return runs(greedy).length === 1 + CAP || null;
      },
      10_000,
    );
    await sleep(300);
    assert.equal(runs(greedy).length, 1 + CAP, 'no run past 1 slot + the cap of suspended runs');
    const [view] = (await client.workers()).filter((w) => w.name === 'greedy');
    assert.deepEqual([view?.running, view?.waiting], [1, CAP]);

    // The first run asks for its slot back: the slot is busy (the 4th run), so it waits.
    const [first, , , last] = runs(greedy);
    greedy.send({ t: 'resume', taskId: first!.taskId, attempt: first!.attempt, seq: 0 });
    await sleep(200);
    assert.equal(greedy.inbox.filter((m) => m.t === 'resumed').length, 0, 'no slot yet');
    // The run holding the slot reports: the slot goes to the resume, not to a new run.
    greedy.inbox.length = 0;
    greedy.send({ t: 'result', taskId: last!.taskId, attempt: last!.attempt, value: 1 });
    const resumed = await greedy.take('resumed');
    assert.deepEqual(resumed, {
      t: 'resumed',
      taskId: first!.taskId,
      attempt: first!.attempt,
      seq: 0,
      ok: true,
    });
    await sleep(300);
    assert.deepEqual(runs(greedy), [], 'the slot went to the resumed run');
    await group.cancel();
  });

  void it('a suspend or resume of a run the worker does not hold changes nothing; a stale resume is refused', async () => {
    const honest = await worker('honest', 'honestX', 1);
    const thief = await worker('thief', 'thiefX', 1);
    const group = await client.submit('honestX', [1, 2]);
    const [r] = await until('the honest run', () =>
      runs(honest).length > 0 ? runs(honest) : null,
    );
    // The thief says the honest worker's run waits: the honest worker gets no second run.
    thief.send({ t: 'suspend', taskId: r!.taskId, attempt: r!.attempt });
    thief.send({ t: 'resume', taskId: r!.taskId, attempt: r!.attempt, seq: 7 });
    const refused = await thief.take('resumed');
    assert.deepEqual([refused.ok, refused.code, refused.seq], [false, 'stale_attempt', 7]);
    await sleep(300);
    assert.equal(runs(honest).length, 1, 'the honest worker still has one run in its one slot');
    // A resume of a run never suspended is granted at once: it already holds its slot.
    honest.send({ t: 'resume', taskId: r!.taskId, attempt: r!.attempt, seq: 0 });
    const granted = await honest.take('resumed');
    assert.equal(granted.ok, true);
    await sleep(200);
    assert.equal(runs(honest).length, 1);
    await group.cancel();
  });
});
