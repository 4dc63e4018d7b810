import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { RegroupError } from '../core/errors.js';
import { resolveTaskOptions } from '../core/options.js';
import { storeContract, type StoreHarness } from './contract.js';
import { ModelStore } from './model.js';
import { SCHEMA_VERSION } from './sqlite-schema.js';
import { SQL } from './sqlite-statements.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

const root = mkdtempSync(join(tmpdir(), 'regroup-sqlite-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
const freshPath = () => join(root, `db-${process.pid}-${counter++}.sqlite`);

async function harness(): Promise<StoreHarness> {
  const path = freshPath();
  let current = new SqliteStore({ path });
  await current.open();
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = new SqliteStore({ path });
      await current.open();
      return current;
    },
    cleanup: async () => {
      await current.close();
      for (const suffix of ['', '-wal', '-shm']) rmSync(path + suffix, { force: true });
    },
  };
}

storeContract('sqlite', harness);

// The reference model passes the same suite, so the suite does not lean on SQLite details.
storeContract('model', async () => {
  const store: Store = new ModelStore();
  return { store, reopen: async () => store, cleanup: async () => {} };
});

void describe('SqliteStore', () => {
  void it('runs in WAL mode with synchronous FULL by default, NORMAL on request', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    await s.open();
    assert.equal(s.database.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(s.database.pragma('synchronous', { simple: true }), 2); // FULL
    assert.equal(s.database.pragma('foreign_keys', { simple: true }), 1);
    assert.ok(Number(s.database.pragma('busy_timeout', { simple: true })) > 0);
    await s.close();
    const n = new SqliteStore({ path, synchronous: 'NORMAL' });
    await n.open();
    assert.equal(n.database.pragma('synchronous', { simple: true }), 1); // NORMAL
    await n.close();
  });

  void it('migrates once: reopening a migrated file is a no-op', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    await s.open();
    await s.commitTick({
      now: 1,
      createGroups: [
        {
          id: 'g',
          handler: 'h',
          policy: 'collectAll',
          idempotencyKey: null,
          open: false,
          options: resolveTaskOptions(undefined),
          inputs: [1],
        },
      ],
    });
    await s.close();
    await s.open();
    const rows = s.database.prepare('SELECT version FROM schema_migrations').all();
    assert.deepEqual(
      rows,
      Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })),
    );
    assert.equal((await s.getGroup('g'))?.total, 1);
    await s.close();
  });

  void it('refuses a file written by a newer schema version', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    await s.open();
    s.database
      .prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, 0)')
      .run(SCHEMA_VERSION + 1);
    await s.close();
    const again = new SqliteStore({ path });
    await assert.rejects(again.open(), (err: unknown) => {
      assert.ok(err instanceof RegroupError);
      assert.match(err.message, new RegExp(`version ${SCHEMA_VERSION + 1}`));
      assert.equal(err.retryable, false);
      return true;
    });
    assert.throws(() => again.database, /not open/);
  });

  void it('a closed store refuses calls with a clear error', async () => {
    const s = new SqliteStore({ path: freshPath() });
    await assert.rejects(s.getGroup('x'), (err: unknown) => {
      assert.ok(err instanceof RegroupError);
      assert.equal(err.code, 'closed');
      return true;
    });
  });

  void it('a full disk fails the tick with storage_full, rolls it back, and the store stays usable', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    await s.open();
    const options = resolveTaskOptions(undefined);
    const mk = (id: string, n: number) => ({
      id,
      handler: 'h',
      policy: 'collectAll' as const,
      idempotencyKey: null,
      open: false,
      options,
      inputs: Array.from({ length: n }, () => 'x'.repeat(200)),
    });
    await s.commitTick({ now: 1, createGroups: [mk('small', 2)] });
    const pages = Number(s.database.pragma('page_count', { simple: true }));
    s.database.pragma(`max_page_count = ${pages + 5}`);
    await assert.rejects(
      s.commitTick({ now: 2, createGroups: [mk('big', 5000)], events: [{ type: 'x' }] }),
      (err: unknown) => {
        assert.ok(err instanceof RegroupError);
        assert.equal(err.code, 'storage_full');
        assert.equal(err.retryable, true);
        assert.ok(err.cause instanceof Database.SqliteError);
        return true;
      },
    );
    assert.equal(await s.getGroup('big'), null);
    assert.deepEqual(await s.listEvents(0, 10), []);
    // Still usable: small ticks commit, and after space is freed big ones too.
    const [t0] = await s.readyTasks(['small'], 3, 1);
    assert.ok(t0);
    const out = await s.commitTick({ now: 3, claims: [{ taskId: t0.taskId, workerId: 'w' }] });
    assert.equal(out.claimed.length, 1);
    s.database.pragma('max_page_count = 1073741823');
    const big = await s.commitTick({ now: 4, createGroups: [mk('big', 5000)] });
    assert.equal(big.createGroups[0]?.status, 'created');
    assert.equal((await s.getGroup('big'))?.total, 5000);
    await s.close();
  });

  void it('no statement scans the whole tasks table, and the hot ones use the intended index', async () => {
    const s = new SqliteStore({ path: freshPath() });
    await s.open();
    const plan = (sql: string) => {
      const bare = sql.replace(/@\w+/g, 'NULL').replace(/\?/g, 'NULL');
      const rows = s.database.prepare(`EXPLAIN QUERY PLAN ${bare}`).all() as { detail: string }[];
      return rows.map((r) => r.detail).join('\n');
    };
    for (const [name, sql] of Object.entries(SQL)) {
      assert.doesNotMatch(plan(sql), /^SCAN (tasks|t)\b/m, `${name} scans tasks`);
    }
    const expect: [keyof typeof SQL, RegExp][] = [
      ['claim', /USING INTEGER PRIMARY KEY/],
      ['commit', /USING INTEGER PRIMARY KEY/],
      ['failFinal', /USING INTEGER PRIMARY KEY/],
      ['requeue', /USING INTEGER PRIMARY KEY/],
      ['readyTasks', /USING INDEX tasks_ready/],
      ['finishedTasks', /USING INDEX tasks_finished/],
      ['nextRunAt', /USING (COVERING )?INDEX tasks_run_at/],
      ['listTasks', /USING INDEX sqlite_autoindex_tasks_1/],
      ['taskSizes', /USING INDEX sqlite_autoindex_tasks_1/],
      ['taskRange', /USING INDEX sqlite_autoindex_tasks_1/],
      ['taskSummaries', /USING INDEX sqlite_autoindex_tasks_1/],
      ['finishedSizes', /USING INDEX tasks_finished/],
      ['finishedRange', /USING INDEX tasks_finished/],
      ['groupsWithPending', /USING INDEX groups_pending/],
      ['leases', /SEARCH t USING INDEX tasks_ready \(group_id=\? AND state=\?\)/],
    ];
    for (const [name, re] of expect) assert.match(plan(SQL[name]), re, name);
    const ordered = [
      ...['readyTasks', 'finishedTasks', 'listTasks', 'taskSizes', 'taskRange'],
      ...['finishedSizes', 'finishedRange', 'taskSummaries'],
    ] as const;
    for (const name of ordered) {
      assert.doesNotMatch(plan(SQL[name]), /TEMP B-TREE/, `${name} sorts`);
    }
    await s.close();
  });
});
