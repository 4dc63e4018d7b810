/** Every SQL statement of SqliteStore, prepared once per open connection. */
import type Database from 'better-sqlite3';
import { TASK_VIEW_COLUMNS } from './sqlite-rows.js';

/** The fence of every write about a run: running, that attempt, that worker. */
const FENCE = `id = @taskId AND state = 'running' AND attempt = @attempt AND worker_id = @workerId`;

const p = (sql: string) => sql;

const SQL = {
  // Groups.
  groupById: p('SELECT * FROM groups WHERE id = ?'),
  groupIdByKey: p('SELECT id FROM groups WHERE idempotency_key = ?'),
  groupStatic: p('SELECT handler, options FROM groups WHERE id = ?'),
  insertGroup: p(
    `INSERT INTO groups (id, handler, state, policy, idempotency_key, options, created_at, sealed_at)
       VALUES (@id, @handler, @state, @policy, @idempotencyKey, @options, @createdAt, @sealedAt)`,
  ),
  updateGroup: p(
    `UPDATE groups SET state = @state, total = @total, pending = @pending, running = @running,
         succeeded = @succeeded, failed = @failed, canceled = @canceled,
         sealed_at = @sealedAt, finished_at = @finishedAt
       WHERE id = @id`,
  ),
  groupsWithPending: p(
    'SELECT id FROM groups WHERE pending > 0 AND state <> ? ORDER BY created_at, rowid LIMIT ?',
  ),
  listGroups: p('SELECT * FROM groups ORDER BY created_at DESC, rowid DESC LIMIT ?'),
  listGroupsBefore: p(
    'SELECT * FROM groups WHERE created_at < ? ORDER BY created_at DESC, rowid DESC LIMIT ?',
  ),

  // Tasks: writes.
  insertTask: p(
    `INSERT INTO tasks (group_id, idx, state, priority, input) VALUES (?, ?, 'pending', ?, ?)`,
  ),
  taskState: p('SELECT state FROM tasks WHERE id = ?'),
  commit: p(
    `UPDATE tasks SET state = 'succeeded', value = @value, finished_at = @now, finish_seq = @seq
       WHERE ${FENCE} RETURNING group_id`,
  ),
  failFinal: p(
    `UPDATE tasks SET state = 'failed', error = @error, finished_at = @now, finish_seq = @seq,
         errors = errors + @errors, node_failures = node_failures + @nodeFailures
       WHERE ${FENCE} RETURNING group_id`,
  ),
  failRetry: p(
    `UPDATE tasks SET state = 'pending', error = @error, run_at = @runAt, worker_id = NULL,
         errors = errors + @errors, node_failures = node_failures + @nodeFailures
       WHERE ${FENCE} RETURNING group_id`,
  ),
  requeue: p(
    `UPDATE tasks SET state = 'pending', run_at = @runAt, worker_id = NULL,
         node_failures = node_failures + @nodeFailures
       WHERE ${FENCE} RETURNING group_id`,
  ),
  checkpoint: p(`UPDATE tasks SET checkpoint = @checkpoint WHERE ${FENCE}`),
  claim: p(
    `UPDATE tasks SET state = 'running', attempt = attempt + 1, worker_id = @workerId, started_at = @now
       WHERE id = @taskId AND state = 'pending' AND run_at <= @now
       RETURNING id, group_id, idx, attempt, errors, node_failures, input, checkpoint`,
  ),
  // Cancels every task of a group in one state, numbering finish_seq from @seq + 1 in input order.
  cancelRunning: p(
    `UPDATE tasks SET state = 'canceled', finished_at = @now, finish_seq = @seq + c.rn
       FROM (SELECT id, row_number() OVER (ORDER BY idx) AS rn FROM tasks
             WHERE group_id = @groupId AND state = 'running') AS c
       WHERE tasks.id = c.id
       RETURNING tasks.id AS id, tasks.attempt AS attempt, tasks.worker_id AS worker_id`,
  ),
  cancelPending: p(
    `UPDATE tasks SET state = 'canceled', finished_at = @now, finish_seq = @seq + c.rn
       FROM (SELECT id, row_number() OVER (ORDER BY idx) AS rn FROM tasks
             WHERE group_id = @groupId AND state = 'pending') AS c
       WHERE tasks.id = c.id`,
  ),

  // Tasks: reads.
  readyTasks: p(
    `SELECT id, priority FROM tasks
       WHERE group_id = ? AND state = 'pending' AND run_at <= ?
       ORDER BY priority DESC, idx LIMIT ?`,
  ),
  nextRunAt: p(`SELECT min(run_at) AS t FROM tasks WHERE state = 'pending' AND run_at > ?`),
  leases: p(
    `SELECT t.id, t.group_id, t.idx, t.attempt, t.worker_id, t.started_at, t.errors,
         t.node_failures, g.handler, g.options
       FROM tasks t JOIN groups g ON g.id = t.group_id
       WHERE t.state = 'running' ORDER BY t.id`,
  ),
  listTasks: p(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks WHERE group_id = ? AND idx > ? ORDER BY idx LIMIT ?`,
  ),
  listTasksInState: p(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
       WHERE group_id = ? AND state = ? AND idx > ? ORDER BY idx LIMIT ?`,
  ),
  finishedTasks: p(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
       WHERE group_id = ? AND finish_seq > ? ORDER BY finish_seq LIMIT ?`,
  ),

  // Workers and events.
  upsertWorker: p(
    `INSERT INTO workers (worker_id, name, token, state, slots, labels, handlers, connected_at, seen_at)
       VALUES (@workerId, @name, @token, @state, @slots, @labels, @handlers, @connectedAt, @seenAt)
       ON CONFLICT (worker_id) DO UPDATE SET name = excluded.name, token = excluded.token,
         state = excluded.state, slots = excluded.slots, labels = excluded.labels,
         handlers = excluded.handlers, connected_at = excluded.connected_at, seen_at = excluded.seen_at`,
  ),
  liveWorkers: p(
    `SELECT * FROM workers WHERE state NOT IN ('dead', 'left') ORDER BY connected_at, worker_id`,
  ),
  listWorkers: p('SELECT * FROM workers ORDER BY connected_at, worker_id'),
  insertEvent: p(
    `INSERT INTO events (at, type, worker_id, group_id, task_id, data)
       VALUES (@at, @type, @workerId, @groupId, @taskId, @data)`,
  ),
  listEvents: p('SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?'),

  // Meta.
  getFinishSeq: p(`SELECT value FROM meta WHERE key = 'finish_seq'`),
  setFinishSeq: p(`UPDATE meta SET value = ? WHERE key = 'finish_seq'`),
};

export type Statements = Record<keyof typeof SQL, Database.Statement>;

export function prepareStatements(db: Database.Database): Statements {
  const out: Partial<Statements> = {};
  for (const [name, sql] of Object.entries(SQL)) out[name as keyof Statements] = db.prepare(sql);
  return out as Statements;
}
