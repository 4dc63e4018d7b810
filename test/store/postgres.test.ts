/**
 * The PostgreSQL store against a real PostgreSQL (REGROUP_PG_URL, default the
 * local `test` database): the contract suite, then what is PostgreSQL's own.
 * Each store gets a fresh schema, dropped after. Fails, never skips, when
 * PostgreSQL is not reachable.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { RegroupError } from '../../src/core/errors.js';
import { resolveTaskOptions } from '../../src/core/options.js';
import { FaultyProxy } from '../../src/testing/proxy.js';
import { toStoreError } from '../../src/store/postgres-errors.js';
import { lockKey, SCHEMA_VERSION } from '../../src/store/postgres-schema.js';
import { SQL } from '../../src/store/postgres-sql.js';
import { PostgresStore, type PostgresStoreOptions } from '../../src/store/postgres.js';
import type { NewGroup, Tick } from '../../src/store/store.js';
import { storeContract, type StoreHarness } from './contract.js';

const PG_URL = process.env['REGROUP_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

let admin: pg.Pool | null = null;
/** A pool outside any store, for setup and checks. */
async function sql<R extends pg.QueryResultRow = Record<string, unknown>>(
  text: string,
  params: unknown[] = [],
): Promise<R[]> {
  admin ??= new pg.Pool({ connectionString: PG_URL, max: 2 });
  admin.on('error', () => {});
  try {
    return (await admin.query<R>(text, params)).rows;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === undefined || !/^[0-9A-Z]{5}$/.test(err.code)) {
      throw new Error(
        `PostgreSQL is not reachable at ${PG_URL} (${err.message}): start it or set REGROUP_PG_URL`,
        { cause: e },
      );
    }
    throw e;
  }
}
after(async () => {
  await admin?.end();
});

let counter = 0;
const freshSchema = () => `regroup_t_${process.pid}_${counter++}`;

async function dropSchema(schema: string): Promise<void> {
  await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

async function openStore(o: Partial<PostgresStoreOptions> = {}): Promise<PostgresStore> {
  const s = new PostgresStore({ url: PG_URL, ...o });
  try {
    await s.open();
  } catch (e) {
    throw new Error(
      `could not open a PostgreSQL store at ${PG_URL} (${(e as Error).message}): start PostgreSQL or set REGROUP_PG_URL`,
      { cause: e },
    );
  }
  return s;
}

async function harness(): Promise<StoreHarness> {
  const schema = freshSchema();
  let current = await openStore({ schema });
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = await openStore({ schema });
      return current;
    },
    cleanup: async () => {
      await current.close();
      await dropSchema(schema);
    },
    writeOptionsText: async (groupId, text) => {
      await sql(`UPDATE "${schema}".groups SET options = $1 WHERE id = $2`, [text, groupId]);
    },
  };
}

storeContract('postgres', harness);

const options = resolveTaskOptions(undefined);
function group(id: string, n: number): NewGroup {
  return {
    id,
    handler: 'h',
    policy: 'collectAll',
    idempotencyKey: null,
    open: false,
    options,
    inputs: Array.from({ length: n }, (_, i) => i),
  };
}

/** Runs body on a store with a fresh schema, and drops the schema after. */
async function withStore(
  body: (s: PostgresStore) => Promise<void>,
  o: Partial<PostgresStoreOptions> = {},
): Promise<void> {
  const schema = freshSchema();
  const s = await openStore({ schema, ...o });
  try {
    await body(s);
  } finally {
    await s.close();
    await dropSchema(schema);
  }
}

void describe('PostgresStore', () => {
  void it('three stores opening one fresh schema at once migrate it once', async () => {
    const schema = freshSchema();
    const stores = [1, 2, 3].map(() => new PostgresStore({ url: PG_URL, schema }));
    try {
      await Promise.all(stores.map((s) => s.open()));
      const rows = await sql<{ version: number }>(
        `SELECT version FROM "${schema}".schema_migrations ORDER BY version`,
      );
      assert.deepEqual(
        rows.map((r) => r.version),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      // All three work on the one schema.
      await stores[0]?.commitTick({ now: 1, createGroups: [group('g', 2)] });
      for (const s of stores) assert.equal((await s.getGroup('g'))?.total, 2);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
      await dropSchema(schema);
    }
  });

  void it('migrates a version 1 schema (before ctx.add) with a task running: the task adds after', async () => {
    const schema = freshSchema();
    const first = await openStore({ schema });
    let taskId: number;
    try {
      await first.commitTick({ now: 1, createGroups: [group('g', 1)] });
      const [ready] = await first.readyTasks(['g'], 2, 1);
      assert.ok(ready);
      taskId = ready.taskId;
      await first.commitTick({ now: 2, claims: [{ taskId, workerId: 'w' }] });
    } finally {
      await first.close();
    }
    // What a regroup of schema version 1 left: no task_adds table, no parent columns.
    await sql(
      `ALTER TABLE "${schema}".groups DROP COLUMN parent_group_id, DROP COLUMN parent_task_id,
         DROP COLUMN spawn_key, DROP COLUMN keep_children`,
    );
    await sql(`DROP TABLE "${schema}".task_adds`);
    await sql(`DELETE FROM "${schema}".schema_migrations WHERE version > 1`);
    const s = await openStore({ schema });
    try {
      const rows = await sql<{ version: number }>(
        `SELECT version FROM "${schema}".schema_migrations ORDER BY version`,
      );
      assert.deepEqual(
        rows.map((r) => r.version),
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      const op = { taskId, attempt: 1, workerId: 'w', key: '#0', inputs: [2, 3] };
      const out = await s.commitTick({ now: 3, taskAdds: [op, op] });
      assert.deepEqual(out.taskAdds, [
        { status: 'added', first: 1, count: 2 },
        { status: 'duplicate', first: 1, count: 2 },
      ]);
      // Migration 3 too: the old group has no parent, and the task spawns.
      assert.equal((await s.getGroup('g'))?.parent, null);
      const child = { id: 'c', handler: 'k', policy: 'collectAll' as const, inputs: [1] };
      const options = (await s.getGroup('g'))!.options;
      const spawn = { ...op, group: { ...child, options }, keepChildren: false };
      const spawned = await s.commitTick({ now: 4, spawns: [spawn] });
      assert.equal(spawned.spawns[0]?.status, 'created');
      assert.deepEqual((await s.getGroup('c'))?.parent, { groupId: 'g', taskId });
    } finally {
      await s.close();
      await dropSchema(schema);
    }
  });

  void it('refuses a schema written by a newer version, and stays closed', async () => {
    const schema = freshSchema();
    const s = await openStore({ schema });
    await s.close();
    try {
      await sql(`INSERT INTO "${schema}".schema_migrations (version, applied_at) VALUES ($1, 0)`, [
        SCHEMA_VERSION + 1,
      ]);
      const again = new PostgresStore({ url: PG_URL, schema });
      await assert.rejects(again.open(), (err: unknown) => {
        assert.ok(err instanceof RegroupError);
        assert.match(err.message, new RegExp(`version ${SCHEMA_VERSION + 1}`));
        assert.equal(err.retryable, false);
        return true;
      });
      await assert.rejects(again.getGroup('x'), /not open/);
    } finally {
      await dropSchema(schema);
    }
  });

  void it('rejects a schema name that is not [a-z_][a-z0-9_]*, up to 63 characters', () => {
    for (const bad of ['', 'Regroup', 'a-b', '1abc', 'a b', 'x"; DROP', 'a'.repeat(64), 'pg_x']) {
      assert.throws(
        () => new PostgresStore({ url: PG_URL, schema: bad }),
        (err: unknown) => {
          assert.ok(err instanceof RegroupError, bad);
          assert.equal(err.code, 'validation_failed');
          assert.match(err.message, /schema/);
          return true;
        },
      );
    }
    for (const good of ['regroup', '_x', 'a1_b2', 'a'.repeat(63)]) {
      assert.doesNotThrow(() => new PostgresStore({ url: PG_URL, schema: good }));
    }
  });

  void it('sets search_path, application_name and idle_in_transaction_session_timeout per connection; int8 are numbers', async () => {
    await withStore(
      async (s) => {
        const r = await s.connections.query(
          `SELECT current_setting('search_path') AS path, current_setting('application_name') AS app,
                  current_setting('idle_in_transaction_session_timeout') AS idle,
                  9007199254740991::bigint AS big, count(*) AS n FROM leader`,
        );
        const row = r.rows[0] as Record<string, unknown>;
        assert.equal(row['path'], s.schema);
        assert.equal(row['app'], 'regroup:c1');
        assert.equal(row['idle'], '30s');
        assert.equal(row['big'], Number.MAX_SAFE_INTEGER);
        assert.equal(row['n'], 1);
        // Ids, times and seqs read back as numbers, times at today's magnitude too.
        const now = 1_760_000_000_000;
        const out = await s.commitTick({
          now,
          createGroups: [group('g', 1)],
          events: [{ type: 'group.created' }],
        });
        const g = await s.getGroup('g');
        assert.deepEqual(g, out.createGroups[0]?.group);
        assert.equal(g?.createdAt, now);
        const [t] = await s.readyTasks(['g'], now, 1);
        assert.ok(t);
        assert.equal(typeof t.taskId, 'number');
        const c = await s.commitTick({
          now: now + 1,
          claims: [{ taskId: t.taskId, workerId: 'w' }],
        });
        assert.equal(c.claimed[0]?.startedAt, now + 1);
        const [e] = await s.listEvents(0, 1);
        assert.equal(typeof e?.seq, 'number');
        assert.equal(e?.at, now);
        assert.deepEqual(
          (await s.recover()).leases.map((l) => [typeof l.taskId, l.startedAt]),
          [['number', now + 1]],
        );
        // A bigint beyond 2^53 is an error, never a rounded number.
        await assert.rejects(s.connections.query('SELECT 9007199254740993::bigint AS x'), /2\^53/);
      },
      { applicationName: 'regroup:c1' },
    );
  });

  void it('keeps JSON values exactly: NUL characters, astral and lone surrogates, deep nesting', async () => {
    await withStore(async (s) => {
      const input = {
        nul: 'a\u0000b',
        emoji: '😀',
        lone: '\ud800',
        deep: [[[{ x: [1.5, -0, 1e300] }]]],
      };
      await s.commitTick({ now: 1, createGroups: [{ ...group('g', 0), inputs: [input] }] });
      const [t] = await s.readyTasks(['g'], 1, 1);
      assert.ok(t);
      const out = await s.commitTick({ now: 2, claims: [{ taskId: t.taskId, workerId: 'w' }] });
      assert.deepEqual(out.claimed[0]?.input, JSON.parse(JSON.stringify(input)));
      const value = { ...input, quote: '"\\{},NULL' };
      await s.commitTick({
        now: 3,
        commits: [{ taskId: t.taskId, attempt: 1, workerId: 'w', value }],
        events: [{ type: 'group.done', data: value }],
      });
      const [v] = await s.listTasks('g', { limit: 1 });
      assert.deepEqual(v?.value, JSON.parse(JSON.stringify(value)));
      const [e] = await s.listEvents(0, 1);
      assert.equal(e?.type, 'group.done');
      assert.deepEqual(e?.data, JSON.parse(JSON.stringify(value)));
    });
  });

  void it('advisory lock keys are signed 64-bit integers, one per schema and purpose', () => {
    const keys = [
      lockKey('regroup', 'migrate'),
      lockKey('regroup', 'leader'),
      lockKey('other', 'migrate'),
    ];
    assert.equal(new Set(keys).size, 3);
    for (const k of keys) {
      assert.match(k, /^-?\d+$/);
      const n = BigInt(k);
      assert.ok(n >= -(2n ** 63n) && n < 2n ** 63n);
    }
    assert.equal(lockKey('regroup', 'migrate'), keys[0]);
  });

  void it('after beginTerm, a tick under a newer epoch throws not_leader and writes nothing', async () => {
    await withStore(async (s) => {
      const leader = `"${s.schema}".leader`;
      // Before any term: no check at all.
      await sql(`UPDATE ${leader} SET epoch = 7`);
      await s.commitTick({ now: 1, createGroups: [group('before', 1)] });
      await s.beginTerm(7);
      const ok = await s.commitTick({ now: 2, createGroups: [group('a', 2)] });
      assert.equal(ok.createGroups[0]?.status, 'created');
      const [t] = await s.readyTasks(['a'], 2, 1);
      assert.ok(t);
      await s.commitTick({ now: 3, claims: [{ taskId: t.taskId, workerId: 'w' }] });

      await sql(`UPDATE ${leader} SET epoch = 8`);
      const tick: Tick = {
        now: 4,
        createGroups: [group('b', 3)],
        commits: [{ taskId: t.taskId, attempt: 1, workerId: 'w', value: 1 }],
        workers: [
          {
            workerId: 'w',
            name: 'n',
            token: 't',
            state: 'alive',
            slots: 1,
            labels: [],
            handlers: ['h'],
            connectedAt: 4,
            seenAt: 4,
          },
        ],
        events: [{ type: 'group.created' }],
      };
      await assert.rejects(s.commitTick(tick), (err: unknown) => {
        assert.ok(err instanceof RegroupError);
        assert.equal(err.code, 'not_leader');
        assert.equal(err.retryable, true);
        assert.match(err.message, /epoch 8 > 7/);
        return true;
      });
      assert.equal(await s.getGroup('b'), null);
      assert.deepEqual(await s.listEvents(0, 10), []);
      assert.deepEqual(await s.listWorkers(), []);
      assert.equal((await s.listTasks('a', { limit: 10 }))[0]?.state, 'running');
      assert.equal((await s.getGroup('a'))?.running, 1);

      // A new term of this coordinator writes again, and finish_seq goes on.
      await s.beginTerm(8);
      const again = await s.commitTick(tick);
      assert.deepEqual(again.commits, ['applied']);
      const [done] = await s.finishedTasks('a', 0, 10);
      assert.equal(done?.seq, 1);
    });
  });

  void it('beginTerm reloads finish_seq that another coordinator advanced', async () => {
    const schema = freshSchema();
    const a = await openStore({ schema });
    const b = await openStore({ schema });
    try {
      await a.commitTick({ now: 1, createGroups: [group('g', 4)] });
      const ids = (await a.readyTasks(['g'], 1, 4)).map((r) => r.taskId);
      await a.commitTick({ now: 2, claims: ids.map((taskId) => ({ taskId, workerId: 'w' })) });
      const commit = (taskId: number) => ({ taskId, attempt: 1, workerId: 'w', value: taskId });
      await a.commitTick({ now: 3, commits: ids.slice(0, 2).map(commit) });
      await b.beginTerm(0);
      await b.commitTick({ now: 4, commits: ids.slice(2).map(commit) });
      const seqs = (await b.finishedTasks('g', 0, 10)).map((t) => t.seq);
      assert.deepEqual(seqs, [1, 2, 3, 4]);
    } finally {
      await a.close();
      await b.close();
      await dropSchema(schema);
    }
  });

  void it('a read whose pooled session was ended (a takeover, a restart) (or a tick that had not begun) is tried again on a fresh one', async () => {
    await withStore(
      async (s) => {
        await s.commitTick({ now: 1, createGroups: [group('g', 2)] });
        // Warm the pool, then end every session of this store, as a new leader does.
        await Promise.all([s.getGroup('g'), s.getGroup('g'), s.listWorkers()]);
        const ended = await sql<{ n: number }>(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
            WHERE application_name = 'regroup:ended' AND pid <> pg_backend_pid()`,
        );
        assert.ok((ended[0]?.n ?? 0) > 0, 'sessions were ended');
        // At once: the pool has not yet heard that its idle connections died.
        const g = await s.getGroup('g');
        assert.equal(g?.total, 2);
        assert.equal((await s.listTasks('g', { limit: 10 })).length, 2);
        // A tick on a session ended before it began is taken by another connection too.
        await Promise.all([s.getGroup('g'), s.getGroup('g'), s.listWorkers()]);
        await sql(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
            WHERE application_name = 'regroup:ended' AND pid <> pg_backend_pid()`,
        );
        const out = await s.commitTick({
          now: 2,
          seals: ['g'],
          events: [{ type: 'group.created' }],
        });
        assert.equal(out.seals[0]?.status, 'sealed');
      },
      { applicationName: 'regroup:ended' },
    );
  });

  void it('ticks called at once run one after another', async () => {
    await withStore(async (s) => {
      await s.commitTick({ now: 1, createGroups: [group('g', 40)] });
      const ids = (await s.readyTasks(['g'], 1, 40)).map((r) => r.taskId);
      await s.commitTick({ now: 2, claims: ids.map((taskId) => ({ taskId, workerId: 'w' })) });
      const outs = await Promise.all(
        ids.map((taskId, i) =>
          s.commitTick({ now: 3 + i, commits: [{ taskId, attempt: 1, workerId: 'w', value: i }] }),
        ),
      );
      assert.ok(outs.every((o) => o.commits[0] === 'applied'));
      const g = await s.getGroup('g');
      assert.deepEqual([g?.succeeded, g?.state], [40, 'done']);
      const seqs = (await s.finishedTasks('g', 0, 100)).map((t) => t.seq);
      assert.deepEqual(
        seqs,
        ids.map((_, i) => i + 1),
      );
    });
  });

  void it('a tick against a PostgreSQL that stopped answering rejects with unavailable within the timeout, and the store recovers', async () => {
    const target = new URL(PG_URL);
    const proxy = new FaultyProxy({
      targetHost: target.hostname,
      targetPort: Number(target.port || 5432),
    });
    const p = await proxy.start();
    const via = new URL(PG_URL);
    via.hostname = p.host;
    via.port = String(p.port);
    const schema = freshSchema();
    const s = await openStore({
      url: via.toString(),
      schema,
      queryTimeoutMs: 500,
      connectTimeoutMs: 500,
    });
    try {
      await s.commitTick({ now: 1, createGroups: [group('g', 1)] });
      proxy.blackhole(true);
      // Nothing to write: no transaction, no wait.
      assert.deepEqual((await s.commitTick({ now: 2 })).claimed, []);
      const t0 = Date.now();
      await assert.rejects(s.commitTick({ now: 2, createGroups: [group('h', 1)] }), unavailable);
      const took = Date.now() - t0;
      assert.ok(took < 2000, `rejected after ${took} ms`);
      await assert.rejects(s.getGroup('g'), unavailable);
      proxy.heal();
      proxy.cutAll();
      const out = await s.commitTick({ now: 3, createGroups: [group('h', 1)] });
      assert.equal(out.createGroups[0]?.status, 'created');
      assert.equal((await s.getGroup('h'))?.total, 1);
      await proxy.stop();
      await assert.rejects(s.commitTick({ now: 4, seals: ['h'] }), unavailable);
    } finally {
      await s.close();
      await proxy.stop().catch(() => {});
      await dropSchema(schema);
    }
  });

  void it('a store pointed at a closed port fails to open with unavailable', async () => {
    const target = new URL(PG_URL);
    target.hostname = '127.0.0.1';
    target.port = '1'; // nothing listens there
    const s = new PostgresStore({ url: target.toString(), connectTimeoutMs: 1000 });
    const t0 = Date.now();
    await assert.rejects(s.open(), (err: unknown) => {
      unavailable(err);
      assert.match((err as Error).message, /127\.0\.0\.1:1\//);
      assert.doesNotMatch((err as Error).message, /postgres@/);
      return true;
    });
    assert.ok(Date.now() - t0 < 2000);
    await assert.rejects(s.commitTick({ now: 1, seals: ['x'] }), /not open/);
  });

  void it('maps a full disk to storage_full and server shutdowns to unavailable', () => {
    const dbError = (code: string) => {
      const e = new pg.DatabaseError('boom', 0, 'error');
      e.code = code;
      return e;
    };
    const full = toStoreError(dbError('53100'), 'the tick was not committed', 'x');
    assert.ok(full instanceof RegroupError);
    assert.equal(full.code, 'storage_full');
    assert.match(full.message, /disk/);
    for (const code of ['08006', '57P01', '40001']) {
      const e = toStoreError(dbError(code), 'the tick was not committed', 'x');
      assert.ok(e instanceof RegroupError && e.code === 'unavailable', code);
    }
    const bug = dbError('42P01');
    assert.equal(toStoreError(bug, 'x', 'y'), bug, 'other errors go up as they are');
    const typo = new TypeError('x is not a function');
    assert.equal(toStoreError(typo, 'x', 'y'), typo);
  });

  void it('the hot statements use their index, and none scans tasks', async () => {
    await withStore(async (s) => {
      // Plans on empty tables tell nothing: a few thousand tasks in every state first.
      await s.commitTick({
        now: 1,
        createGroups: Array.from({ length: 20 }, (_, i) => group(`g${i}`, 200)),
      });
      for (let i = 0; i < 20; i++) {
        const ready = await s.readyTasks([`g${i}`], 1, 100);
        await s.commitTick({
          now: 2,
          claims: ready.map((r) => ({ taskId: r.taskId, workerId: 'w' })),
        });
        await s.commitTick({
          now: 3,
          commits: ready
            .slice(0, 80)
            .map((r) => ({ taskId: r.taskId, attempt: 1, workerId: 'w', value: 0 })),
          failures: ready.slice(80, 90).map((r) => ({
            taskId: r.taskId,
            attempt: 1,
            workerId: 'w',
            error: { kind: 'error', message: 'x' },
            retryAt: 1000,
            nodeFailure: false,
          })),
        });
      }
      await sql(`ANALYZE "${s.schema}".tasks`);
      await sql(`ANALYZE "${s.schema}".groups`);
      const c = await s.connections.connect();
      try {
        await c.query('BEGIN');
        // With sequential scans priced out, a Seq Scan left means no index fits.
        await c.query('SET LOCAL enable_seqscan = off');
        const plan = async (name: keyof typeof SQL, values: unknown[]) => {
          const r = await c.query(`EXPLAIN ${SQL[name]}`, values);
          return r.rows.map((x: Record<string, string>) => x['QUERY PLAN']).join('\n');
        };
        const expect: [keyof typeof SQL, unknown[], RegExp][] = [
          ['readyTasks', [['g1'], 1, 10], /Index Scan using tasks_ready/],
          ['finishedTasks', ['g1', 0, 10], /Index Scan using tasks_finished/],
          ['nextRunAt', [5], /tasks_run_at/],
          ['listTasks', ['g1', -1, 10], /tasks_group_id_idx_key/],
          ['taskPage', ['g1', -1, 10, 1000], /tasks_group_id_idx_key/],
          ['finishedPage', ['g1', 0, 10, 1000], /Index Scan using tasks_finished/],
          ['taskSummaries', ['g1', -1, 10], /tasks_group_id_idx_key/],
          ['pendingGroups', [], /groups_pending/],
          ['leases', [], /tasks_running/],
          ['claims', [[1, 2], ['w', 'w'], [0, 1], 5], /tasks_pkey/],
          ['commits', [1, [1, 2], [1, 1], ['w', 'w'], ['1', '1'], [1, 2]], /tasks_pkey/],
          ['lockRunTasks', [[1, 2]], /tasks_pkey/],
          ['cancelRest', ['g1', 1, 0], /tasks_running[\s\S]*tasks_ready/],
        ];
        for (const [name, values, re] of expect) {
          const p = await plan(name, values);
          assert.match(p, re, `${name}:\n${p}`);
          assert.doesNotMatch(p, /Seq Scan on tasks/, `${name}:\n${p}`);
        }
        // A page of a group's children is a range of groups_children_order (migration 4): no sort.
        for (const [name, values] of [
          ['listChildren', ['g1', 10]],
          ['listChildrenAfter', ['g1', 'g2', 10]],
        ] as const) {
          const p = await plan(name, [...values]);
          assert.match(p, /groups_children_order/, `${name}:\n${p}`);
          assert.doesNotMatch(p, /Sort|Seq Scan on groups/, `${name}:\n${p}`);
        }
        await c.query('ROLLBACK');
      } finally {
        c.release();
      }
    });
  });
});

function unavailable(err: unknown): true {
  assert.ok(err instanceof RegroupError, String(err));
  assert.equal(err.code, 'unavailable', err.message);
  assert.equal(err.retryable, true);
  assert.match(err.message, /PostgreSQL/);
  return true;
}
