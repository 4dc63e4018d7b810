import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { RegroupError } from '../../src/core/errors.js';
import { resolveTaskOptions } from '../../src/core/options.js';
import { SCHEMA_VERSION } from '../../src/store/sqlite-schema.js';
import { SQL } from '../../src/store/sqlite-statements.js';
import { SqliteStore } from '../../src/store/sqlite.js';
import type { Store } from '../../src/store/store.js';
import { storeContract, type StoreHarness } from './contract.js';
import { ModelStore } from './model.js';

const root = mkdtempSync(join(tmpdir(), 'regroup-sqlite-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;
/** Takes a file back to before migration 3 (ctx.spawn's columns and indexes). */
const UNDO_MIGRATION_3 = `
  DROP INDEX groups_spawn; DROP INDEX groups_children;
  ALTER TABLE groups DROP COLUMN parent_group_id; ALTER TABLE groups DROP COLUMN parent_task_id;
  ALTER TABLE groups DROP COLUMN spawn_key; ALTER TABLE groups DROP COLUMN keep_children;`;
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
      for (const suffix of ['', '-wal', '-shm', '.lock']) rmSync(path + suffix, { force: true });
    },
    writeOptionsText: async (groupId, text) => {
      current.database.prepare('UPDATE groups SET options = ? WHERE id = ?').run(text, groupId);
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

  void it('migrates a version 1 file (before ctx.add) with a task running: the task adds after', async () => {
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
    const [ready] = await s.readyTasks(['g'], 2, 1);
    assert.ok(ready);
    await s.commitTick({ now: 2, claims: [{ taskId: ready.taskId, workerId: 'w' }] });
    // What a regroup of schema version 1 left: no task_adds table, no parent columns.
    s.database.exec(UNDO_MIGRATION_3);
    s.database.exec('DROP TABLE task_adds; DELETE FROM schema_migrations WHERE version > 1');
    await s.close();
    await s.open();
    const versions = s.database.prepare('SELECT version FROM schema_migrations').all();
    assert.deepEqual(
      versions,
      Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })),
    );
    const op = { taskId: ready.taskId, attempt: 1, workerId: 'w', key: '#0', inputs: [2, 3] };
    const out = await s.commitTick({ now: 3, taskAdds: [op, op] });
    assert.deepEqual(out.taskAdds, [
      { status: 'added', first: 1, count: 2 },
      { status: 'duplicate', first: 1, count: 2 },
    ]);
    await s.close();
  });

  void it('migrates a version 2 file (before ctx.spawn) with a task running: old groups have no parent, the task spawns after', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    await s.open();
    const options = resolveTaskOptions(undefined);
    await s.commitTick({
      now: 1,
      createGroups: [
        {
          id: 'g',
          handler: 'h',
          policy: 'collectAll',
          idempotencyKey: null,
          open: false,
          options,
          inputs: [1],
        },
      ],
    });
    const [ready] = await s.readyTasks(['g'], 2, 1);
    assert.ok(ready);
    await s.commitTick({ now: 2, claims: [{ taskId: ready.taskId, workerId: 'w' }] });
    // What a regroup of schema version 2 left: groups without the parent columns.
    s.database.exec(UNDO_MIGRATION_3);
    s.database.exec('DELETE FROM schema_migrations WHERE version > 2');
    await s.close();
    await s.open();
    const versions = s.database.prepare('SELECT version FROM schema_migrations').all();
    assert.deepEqual(
      versions,
      Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })),
    );
    assert.equal((await s.getGroup('g'))?.parent, null);
    const group = { id: 'c', handler: 'k', policy: 'collectAll' as const, options, inputs: [1, 2] };
    const op = {
      taskId: ready.taskId,
      attempt: 1,
      workerId: 'w',
      key: '#0',
      group,
      keepChildren: false,
    };
    const out = await s.commitTick({
      now: 3,
      spawns: [op, { ...op, group: { ...group, id: 'd' } }],
    });
    assert.deepEqual(
      out.spawns.map((o) => [o.status, 'group' in o ? o.group.id : null]),
      [
        ['created', 'c'],
        ['existing', 'c'],
      ],
    );
    assert.deepEqual((await s.getGroup('c'))?.parent, { groupId: 'g', taskId: ready.taskId });
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
      assert.equal(err.code, 'store_open_failed');
      assert.match(err.message, new RegExp(`version ${SCHEMA_VERSION + 1}`));
      assert.ok(err.message.includes(path), err.message);
      assert.equal(err.retryable, false);
      return true;
    });
    assert.throws(() => again.database, /not open/);
    // The refusal let go of the writer lock: the file opens again (and is refused again).
    await assert.rejects(new SqliteStore({ path }).open(), /version/);
  });

  void it('one writer per file: a second store on the same path is refused with store_locked until the first closes', async () => {
    const path = freshPath();
    const first = new SqliteStore({ path });
    await first.open();
    await first.commitTick({ now: 1, events: [{ type: 'worker.joined' }] });
    // Beside the database: SQLite's WAL files and the lock file, no journal of the lock.
    const name = basename(path);
    assert.deepEqual(
      readdirSync(root)
        .filter((f) => f.startsWith(name))
        .sort(),
      [name, `${name}-shm`, `${name}-wal`, `${name}.lock`],
    );
    const isLocked = (err: unknown): boolean => {
      assert.ok(err instanceof RegroupError);
      assert.equal(err.code, 'store_locked');
      assert.equal(err.retryable, false);
      assert.ok(err.message.includes(path), err.message);
      assert.match(err.message, /stop the other coordinator first, or give this one another --db/);
      return true;
    };
    const second = new SqliteStore({ path, lockWaitMs: 0 });
    await assert.rejects(second.open(), isLocked);
    assert.throws(() => second.database, /not open/);
    // Another name of the same file (a symbolic link) shares the lock.
    const link = join(root, `link-${counter++}.sqlite`);
    symlinkSync(path, link);
    await assert.rejects(new SqliteStore({ path: link, lockWaitMs: 0 }).open(), (err: unknown) => {
      assert.ok(err instanceof RegroupError);
      assert.equal(err.code, 'store_locked');
      return true;
    });
    // The refusals changed nothing: the first store still writes.
    await first.commitTick({ now: 2, events: [{ type: 'worker.left' }] });
    await first.close();
    await second.open();
    assert.deepEqual(
      (await second.listEvents(0, 10)).map((e) => e.type),
      ['worker.joined', 'worker.left'],
    );
    // And now the first is the one refused.
    await assert.rejects(first.open(), isLocked);
    await second.close();
  });

  void it('a database another program keeps locked is refused with store_locked that says so', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    await s.open();
    await s.close();
    const other = new Database(path);
    other.exec('BEGIN IMMEDIATE');
    try {
      await assert.rejects(new SqliteStore({ path, busyTimeoutMs: 50 }).open(), (err: unknown) => {
        assert.ok(err instanceof RegroupError);
        assert.equal(err.code, 'store_locked');
        assert.ok(err.message.includes(path), err.message);
        assert.match(err.message, /not a regroup coordinator/);
        return true;
      });
    } finally {
      other.exec('ROLLBACK');
      other.close();
    }
    // The refusal let go of the writer lock too.
    await s.open();
    await s.close();
  });

  void it('other connections may read a live file (what sqlite3 ".backup" needs)', async () => {
    const path = freshPath();
    const s = new SqliteStore({ path });
    await s.open();
    await s.commitTick({ now: 1, events: [{ type: 'group.created' }] });
    const reader = new Database(path, { readonly: true });
    try {
      assert.deepEqual(reader.prepare('SELECT type FROM events').all(), [
        { type: 'group.created' },
      ]);
      const copy = freshPath();
      await reader.backup(copy);
      const back = new Database(copy, { readonly: true });
      assert.deepEqual(back.prepare('SELECT type FROM events').all(), [{ type: 'group.created' }]);
      back.close();
    } finally {
      reader.close();
      await s.close();
    }
  });

  void it('a file that cannot be opened is refused with store_open_failed naming it', async () => {
    const notDb = freshPath();
    writeFileSync(notDb, 'this is not a database, just some text that is long enough '.repeat(20));
    await assert.rejects(new SqliteStore({ path: notDb }).open(), (err: unknown) => {
      assert.ok(err instanceof RegroupError);
      assert.equal(err.code, 'store_open_failed');
      assert.match(err.message, /is not a SQLite database/);
      assert.ok(err.message.includes(notDb), err.message);
      return true;
    });
    const noDir = join(root, `missing-${counter++}`, 'r.db');
    await assert.rejects(new SqliteStore({ path: noDir }).open(), (err: unknown) => {
      assert.ok(err instanceof RegroupError);
      assert.equal(err.code, 'store_open_failed');
      assert.ok(err.message.includes(noDir), err.message);
      assert.match(err.message, /directory/);
      return true;
    });
    // A directory where the file should be.
    const dir = freshPath();
    mkdirSync(dir);
    await assert.rejects(new SqliteStore({ path: dir }).open(), (err: unknown) => {
      assert.ok(err instanceof RegroupError);
      assert.equal(err.code, 'store_open_failed');
      assert.ok(err.message.includes(dir), err.message);
      return true;
    });
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
      s.commitTick({
        now: 2,
        createGroups: [mk('big', 5000)],
        events: [{ type: 'group.created' }],
      }),
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
      ['pendingGroups', /USING INDEX groups_pending/],
      ['leases', /SEARCH t USING INDEX tasks_ready \(group_id=\? AND state=\?\)/],
      // A group's children: a range of the children index (it ends with the rowid).
      ['listChildren', /SEARCH groups USING INDEX groups_children \(parent_group_id=\?\)/],
      [
        'listChildrenAfter',
        /SEARCH groups USING INDEX groups_children \(parent_group_id=\? AND rowid>\?\)/,
      ],
      ['countChildren', /USING (COVERING )?INDEX groups_children/],
    ];
    for (const [name, re] of expect) assert.match(plan(SQL[name]), re, name);
    const ordered = [
      ...['readyTasks', 'finishedTasks', 'listTasks', 'taskSizes', 'taskRange'],
      ...['finishedSizes', 'finishedRange', 'taskSummaries', 'listChildren', 'listChildrenAfter'],
    ] as const;
    for (const name of ordered) {
      assert.doesNotMatch(plan(SQL[name]), /TEMP B-TREE/, `${name} sorts`);
    }
    await s.close();
  });
});
