/**
 * The SQLite schema as numbered migrations. Migration N is MIGRATIONS[N - 1];
 * a file's version is the highest row of `schema_migrations`. Never edit a
 * migration that has shipped: append a new one.
 */
import type Database from 'better-sqlite3';
import { RegroupError } from '../core/errors.js';

export const MIGRATIONS: readonly string[] = [
  // 1: groups, tasks, workers, events, meta.
  `
  CREATE TABLE groups (
    id              TEXT PRIMARY KEY,
    handler         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('open', 'sealed', 'done', 'canceled')),
    policy          TEXT NOT NULL CHECK (policy IN ('collectAll', 'failFast')),
    idempotency_key TEXT UNIQUE,
    options         TEXT NOT NULL,
    total           INTEGER NOT NULL DEFAULT 0,
    pending         INTEGER NOT NULL DEFAULT 0,
    running         INTEGER NOT NULL DEFAULT 0,
    succeeded       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    canceled        INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    sealed_at       INTEGER,
    finished_at     INTEGER
  );
  -- pendingGroups: oldest first among groups with pending tasks.
  CREATE INDEX groups_pending ON groups (created_at) WHERE pending > 0;
  -- listGroups: newest first, paged by created_at.
  CREATE INDEX groups_created ON groups (created_at);

  CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY,
    group_id      TEXT NOT NULL REFERENCES groups (id),
    idx           INTEGER NOT NULL,
    -- pending | running | succeeded | failed | canceled. No CHECK constraint on
    -- purpose: it more than halves the speed of the hot UPDATEs (claim, commit).
    state         TEXT NOT NULL,
    attempt       INTEGER NOT NULL DEFAULT 0,
    worker_id     TEXT,
    errors        INTEGER NOT NULL DEFAULT 0,
    node_failures INTEGER NOT NULL DEFAULT 0,
    run_at        INTEGER NOT NULL DEFAULT 0,
    priority      INTEGER NOT NULL DEFAULT 0,
    input         TEXT NOT NULL,
    checkpoint    TEXT,
    value         TEXT,
    error         TEXT,
    started_at    INTEGER,
    finished_at   INTEGER,
    finish_seq    INTEGER,
    UNIQUE (group_id, idx)
  );
  -- readyTasks: a group's pending tasks in dispatch order.
  CREATE INDEX tasks_ready ON tasks (group_id, state, priority DESC, idx);
  -- finishedTasks: a group's final tasks in finishing order.
  CREATE INDEX tasks_finished ON tasks (group_id, finish_seq) WHERE finish_seq IS NOT NULL;
  -- nextRunAt: pending tasks waiting out a backoff. New tasks have run_at 0 and
  -- stay out of it, so claiming them does not touch this index. recover() finds
  -- running leases through groups.running > 0 and tasks_ready: no index of its own.
  CREATE INDEX tasks_run_at ON tasks (run_at) WHERE state = 'pending' AND run_at > 0;

  CREATE TABLE workers (
    worker_id    TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    token        TEXT NOT NULL,
    state        TEXT NOT NULL,
    slots        INTEGER NOT NULL,
    labels       TEXT NOT NULL,
    handlers     TEXT NOT NULL,
    connected_at INTEGER NOT NULL,
    seen_at      INTEGER NOT NULL
  );

  CREATE TABLE events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    type      TEXT NOT NULL,
    worker_id TEXT,
    group_id  TEXT,
    task_id   INTEGER,
    data      TEXT
  );

  -- Store-wide counters kept across restarts (finish_seq: the last finishing sequence given).
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  );
  INSERT INTO meta (key, value) VALUES ('finish_seq', 0);
  `,
  // 2: the adds of running tasks (ctx.add), by task and key: a repeat of a key
  // answers the first add's indexes and adds nothing.
  `
  CREATE TABLE task_adds (
    task_id   INTEGER NOT NULL REFERENCES tasks (id),
    key       TEXT NOT NULL,
    first_idx INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (task_id, key)
  ) WITHOUT ROWID;
  `,
  // 3: child groups (ctx.spawn). A spawned group records the task that
  // spawned it and that task's group, under the spawn's key; the pair
  // (parent_task_id, spawn_key) is unique, so a repeat finds the first
  // spawn's group. keep_children: the spawn asked to outlive its parent's
  // final failure. Client groups have nulls (and stay out of both indexes).
  `
  ALTER TABLE groups ADD COLUMN parent_group_id TEXT;
  ALTER TABLE groups ADD COLUMN parent_task_id INTEGER;
  ALTER TABLE groups ADD COLUMN spawn_key TEXT;
  ALTER TABLE groups ADD COLUMN keep_children INTEGER NOT NULL DEFAULT 0;
  CREATE UNIQUE INDEX groups_spawn ON groups (parent_task_id, spawn_key)
    WHERE parent_task_id IS NOT NULL;
  CREATE INDEX groups_children ON groups (parent_group_id) WHERE parent_group_id IS NOT NULL;
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the file to SCHEMA_VERSION under `BEGIN IMMEDIATE` (the write lock,
 * so two processes opening the same file cannot both migrate). A file already
 * at SCHEMA_VERSION is left alone; a newer file is refused.
 */
export function migrate(db: Database.Database, now: number): void {
  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)',
    );
    const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as {
      v: number | null;
    };
    const current = row.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new RegroupError(
        'store_open_failed',
        `the database schema of ${db.name} is version ${current} but this regroup knows versions up to ${SCHEMA_VERSION}: ` +
          'it was written by a newer regroup; upgrade regroup or open another file',
      );
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)');
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      db.exec(MIGRATIONS[v - 1] ?? '');
      record.run(v, now);
    }
    db.exec('COMMIT');
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}
