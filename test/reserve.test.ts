/**
 * The reserve: tasks claimed for a worker ahead of its free slots, sent the
 * moment it reports a run done. In this process, with a SQLite store.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Coordinator } from '../src/coordinator/index.js';
import { RESERVE_PER_SLOT, RESERVE_RUN_MS } from '../src/coordinator/sessions.js';
import { Client } from '../src/client/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { Worker } from '../src/worker/index.js';
import { tempDir, until } from '../src/testing/procs.js';

const tmp = tempDir('regroup-reserve-');
let coordinator: Coordinator;
let url: string;
let client: Client;

before(async () => {
  coordinator = new Coordinator({
    store: new SqliteStore({ path: join(tmp.dir, 'r.db') }),
    port: 0,
  });
  url = await coordinator.start();
  client = new Client({ url });
});
after(async () => {
  client.close();
  await coordinator.stop();
  tmp.cleanup();
});

void describe('reserve', () => {
  void it('short runs get a reserve, yet a worker never runs more than its slots at once', async () => {
    let running = 0;
    let most = 0;
    const seen = new Map<number, number>();
    const worker = new Worker({
      url,
      name: 'q',
      concurrency: 4,
      logger: () => {},
      handlers: {
        quick: async (x: number) => {
          running++;
          most = Math.max(most, running);
          seen.set(x, (seen.get(x) ?? 0) + 1);
          await new Promise((r) => setImmediate(r));
          running--;
          return x + 1;
        },
      },
    });
    await worker.start();
    try {
      const n = 2000;
      const g = await client.submit(
        'quick',
        Array.from({ length: n }, (_, i) => i),
      );
      const values = await g.wait();
      assert.deepEqual(
        values,
        Array.from({ length: n }, (_, i) => i + 1),
      );
      assert.ok(most <= 4, `at most 4 at once, saw ${most}`);
      assert.equal(seen.size, n);
      assert.ok(
        [...seen.values()].every((c) => c === 1),
        'every task ran once',
      );
      const s = [...coordinator.sessions.all()].find((x) => x.name === 'q')!;
      assert.ok(s.avgRunMs !== null && s.avgRunMs < RESERVE_RUN_MS, `avg ${s.avgRunMs} ms`);
      assert.equal(s.reserveCap(), 4 * RESERVE_PER_SLOT, 'short runs: a reserve of a few rounds');
    } finally {
      await worker.close();
    }
  });

  void it('long runs get none, so a second worker takes the waiting tasks', async () => {
    const ran = new Map<string, number>();
    const mk = (name: string) =>
      new Worker({
        url,
        name,
        concurrency: 2,
        logger: () => {},
        handlers: {
          slow: async () => {
            ran.set(name, (ran.get(name) ?? 0) + 1);
            await new Promise((r) => setTimeout(r, RESERVE_RUN_MS * 3));
            return name;
          },
        },
      });
    const a = mk('a');
    await a.start();
    const b = mk('b');
    try {
      // Let `a` learn that these runs are long, then give it company.
      const warm = await client.submit('slow', [1, 2]);
      await warm.wait();
      const sa = [...coordinator.sessions.all()].find((s) => s.name === 'a')!;
      assert.equal(sa.reserveCap(), 0);
      await b.start();
      await until('b joined', () => coordinator.sessions.size === 2);
      const g = await client.submit('slow', [1, 2, 3, 4, 5, 6, 7, 8]);
      await g.wait();
      assert.ok((ran.get('b') ?? 0) >= 3, `b ran ${ran.get('b') ?? 0} of 8`);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  void it('a draining worker hands its reserve back at once', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started = 0;
    const w = new Worker({
      url,
      name: 'd',
      concurrency: 2,
      logger: () => {},
      handlers: {
        quick: async (x: number) => x,
        gated: async () => {
          started++;
          await gate;
          return 1;
        },
      },
    });
    await w.start();
    try {
      await (
        await client.submit(
          'quick',
          Array.from({ length: 50 }, (_, i) => i),
        )
      ).wait();
      const s = [...coordinator.sessions.all()].find((x) => x.name === 'd')!;
      assert.equal(s.reserveCap(), 2 * RESERVE_PER_SLOT);
      const g = await client.submit(
        'gated',
        Array.from({ length: 10 }, (_, i) => i),
      );
      // The worker must hold both runs before it drains: the runs go out with
      // the submit's answer, and a drain that overtakes them would find nothing running.
      await until(
        'slots full and a reserve held',
        () => started === 2 && s.sent.size === 2 && s.reserve.length > 0,
      );
      const drained = w.drain();
      await until('the reserve went back', () => s.reserve.length === 0 && s.leases.size <= 2);
      release();
      await drained;
      const st = await g.status();
      assert.ok(st.pending >= st.total - 2 - st.succeeded, JSON.stringify(st));
    } finally {
      release();
      await w.close();
    }
  });
});
