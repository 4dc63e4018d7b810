/**
 * The PostgreSQL schema as numbered migrations, like sqlite-schema.ts.
 * Migration N is MIGRATIONS[N - 1]; the schema's version is the highest row of
 * `schema_migrations`. Never edit a migration that has shipped: append one.
 *
 * Every table lives in the store's own schema (set on each connection through
 * `search_path`, so the SQL names no schema). Times are bigint milliseconds.
 * JSON columns (input, value, error, checkpoint, options, data...) are `text`,
 * not jsonb: the store is handed JSON strings and hands JSON strings back and
 * never looks inside them, so text skips jsonb's parse and re-serialization on
 * every write and read, and keeps a value exactly as the handler produced it
 * (jsonb reorders keys, drops duplicate ones and refuses `\u0000`).
 */
import type pg from 'pg';
import { RegroupError } from '../core/errors.js';
import { lockKey } from './postgres-keys.js';

export { lockKey };

export const MIGRATIONS: readonly string[] = [
  // 1: groups, tasks, workers, events, meta; the leadership tables.
  `
  CREATE TABLE groups (
    id              text PRIMARY KEY,
    -- Insertion order: breaks created_at ties the way SQLite's rowid does.
    rowid           bigint GENERATED ALWAYS AS IDENTITY,
    handler         text NOT NULL,
    state           text NOT NULL CHECK (state IN ('open', 'sealed', 'done', 'canceled')),
    policy          text NOT NULL CHECK (policy IN ('collectAll', 'failFast')),
    idempotency_key text UNIQUE,
    options         text NOT NULL,
    total           integer NOT NULL DEFAULT 0,
    pending         integer NOT NULL DEFAULT 0,
    running         integer NOT NULL DEFAULT 0,
    succeeded       integer NOT NULL DEFAULT 0,
    failed          integer NOT NULL DEFAULT 0,
    canceled        integer NOT NULL DEFAULT 0,
    created_at      bigint NOT NULL,
    sealed_at       bigint,
    finished_at     bigint
  );
  -- pendingGroups: oldest first among groups with pending tasks.
  CREATE INDEX groups_pending ON groups (created_at, rowid) WHERE pending > 0;
  -- listGroups: newest first, paged by created_at.
  CREATE INDEX groups_created ON groups (created_at, rowid);

  -- group_id has no FOREIGN KEY (SQLite's has): its check, one per row, took
  -- two thirds of the time of inserting a group's tasks. The store inserts
  -- tasks only for a group it created or locked in the same transaction, and
  -- never deletes a group.
  CREATE TABLE tasks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id      text NOT NULL,
    idx           integer NOT NULL,
    state         text NOT NULL
                  CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'canceled')),
    attempt       integer NOT NULL DEFAULT 0,
    worker_id     text,
    errors        integer NOT NULL DEFAULT 0,
    node_failures integer NOT NULL DEFAULT 0,
    run_at        bigint NOT NULL DEFAULT 0,
    priority      integer NOT NULL DEFAULT 0,
    input         text NOT NULL,
    checkpoint    text,
    value         text,
    error         text,
    started_at    bigint,
    finished_at   bigint,
    finish_seq    bigint,
    UNIQUE (group_id, idx)
  );
  -- Every state change rewrites the row (state is indexed, so no HOT update)
  -- and adds an entry to each index whose predicate the new row meets. The
  -- partial indexes below keep that to the one or two that need the row.
  -- readyTasks and cancels: a group's pending tasks in dispatch order.
  CREATE INDEX tasks_ready ON tasks (group_id, priority DESC, idx) WHERE state = 'pending';
  -- recover() and cancels: a group's running tasks.
  CREATE INDEX tasks_running ON tasks (group_id, idx) WHERE state = 'running';
  -- finishedTasks: a group's final tasks in finishing order.
  CREATE INDEX tasks_finished ON tasks (group_id, finish_seq) WHERE finish_seq IS NOT NULL;
  -- nextRunAt: pending tasks waiting out a backoff (new tasks have run_at 0).
  CREATE INDEX tasks_run_at ON tasks (run_at) WHERE state = 'pending' AND run_at > 0;

  CREATE TABLE workers (
    worker_id    text PRIMARY KEY,
    name         text NOT NULL,
    token        text NOT NULL,
    state        text NOT NULL,
    slots        integer NOT NULL,
    labels       text NOT NULL,
    handlers     text NOT NULL,
    connected_at bigint NOT NULL,
    seen_at      bigint NOT NULL
  );

  CREATE TABLE events (
    seq       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        bigint NOT NULL,
    type      text NOT NULL,
    worker_id text,
    group_id  text,
    task_id   bigint,
    data      text
  );

  -- Store-wide counters kept across restarts (finish_seq: the last finishing sequence given).
  CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
  );
  INSERT INTO meta (key, value) VALUES ('finish_seq', 0);

  -- The epoch: incremented by every takeover; every tick checks it under FOR SHARE.
  CREATE TABLE leader (
    id      smallint PRIMARY KEY CHECK (id = 1),
    epoch   bigint NOT NULL,
    holder  text,          -- coordinator id of the leader of this epoch
    address text,          -- the URL clients and workers should use
    since   bigint         -- ms since epoch when it took over
  );
  INSERT INTO leader (id, epoch) VALUES (1, 0);
  -- The leader's lease, renewed about every second on its lock session (a separate row so renewals never wait on ticks).
  CREATE TABLE leader_lease (
    id         smallint PRIMARY KEY CHECK (id = 1),
    holder     text,
    pid        integer,      -- pg_backend_pid() of the session holding the advisory lock
    app_name   text,         -- application_name of the leader's connections
    expires_at timestamptz
  );
  INSERT INTO leader_lease (id) VALUES (1);
  `,
  // 2: the adds of running tasks (ctx.add), by task and key: a repeat of a key
  // answers the first add's indexes and adds nothing. No FOREIGN KEY, as for
  // tasks.group_id: the store writes a row only for a task it locked.
  `
  CREATE TABLE task_adds (
    task_id   bigint NOT NULL,
    key       text NOT NULL,
    first_idx integer NOT NULL,
    count     integer NOT NULL,
    PRIMARY KEY (task_id, key)
  );
  `,
  // 3: child groups (ctx.spawn), as SQLite's migration 3: the spawning task
  // and its group, the spawn's key (unique per task), keep_children.
  `
  ALTER TABLE groups ADD COLUMN parent_group_id text;
  ALTER TABLE groups ADD COLUMN parent_task_id bigint;
  ALTER TABLE groups ADD COLUMN spawn_key text;
  ALTER TABLE groups ADD COLUMN keep_children boolean NOT NULL DEFAULT false;
  CREATE UNIQUE INDEX groups_spawn ON groups (parent_task_id, spawn_key)
    WHERE parent_task_id IS NOT NULL;
  CREATE INDEX groups_children ON groups (parent_group_id) WHERE parent_group_id IS NOT NULL;
  `,
  // 4: a group's children are read in creation order (listChildren, paged):
  // the children index gets rowid, so a page is an index range, not a sort
  // of every child. (SQLite's index ends with the rowid already: no migration.)
  `
  CREATE INDEX groups_children_order ON groups (parent_group_id, rowid)
    WHERE parent_group_id IS NOT NULL;
  DROP INDEX groups_children;
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION = MIGRATIONS.length;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * A schema name the store accepts: lower-case letters, digits and `_`, at
 * most 63 characters (PostgreSQL's limit), so it needs no quoting in
 * `search_path` and is quoted anyway in SQL.
 */
export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema) || schema.startsWith('pg_')) {
    throw new RegroupError(
      'validation_failed',
      `PostgreSQL schema must match [a-z_][a-z0-9_]* (at most 63 characters, not pg_*), got ${JSON.stringify(schema)}`,
    );
  }
  return schema;
}

/**
 * Creates the schema and brings it to SCHEMA_VERSION in one transaction under
 * a transaction-level advisory lock on `lockKey(schema, 'migrate')`, so
 * coordinators opening at the same time migrate once: the others wait for
 * the lock, then find the schema current. A schema already at SCHEMA_VERSION
 * is left alone; a newer one is refused. `client` is a pool connection whose
 * search_path is the schema.
 */
export async function migrate(client: pg.ClientBase, schema: string, now: number): Promise<void> {
  checkSchemaName(schema);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey(schema, 'migrate')]);
    // IF NOT EXISTS is not safe against a concurrent CREATE: the lock makes it so.
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at bigint NOT NULL)',
    );
    const r = await client.query<{ v: number | null }>(
      'SELECT max(version) AS v FROM schema_migrations',
    );
    const current = r.rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new RegroupError(
        'internal',
        `the PostgreSQL schema "${schema}" is version ${current} but this regroup knows versions up to ${SCHEMA_VERSION}: ` +
          'it was written by a newer regroup; upgrade regroup or use another schema',
        { retryable: false },
      );
    }
    for (let v = current + 1; v <= SCHEMA_VERSION; v++) {
      await client.query(MIGRATIONS[v - 1] ?? '');
      await client.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [
        v,
        now,
      ]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
