/** Every SQL statement of SqliteStore, prepared once per open connection. */
import type Database from 'better-sqlite3';
import { TASK_SUMMARY_COLUMNS, TASK_VIEW_COLUMNS } from './rows.js';

/** A task row's bytes of value and error text (UTF-8), what a page's byte budget counts. */
const ROW_BYTES = 'coalesce(octet_length(value), 0) + coalesce(octet_length(error), 0)';

/**
 * The fence of every write about a run: running, that attempt, that worker.
 * Its parameters are the last three: taskId, attempt, workerId. The hot
 * statements take positional parameters: binding named ones costs about twice as much.
 */
const FENCE = `id = ? AND state = 'running' AND attempt = ? AND worker_id = ?`;

const p = (sql: string) => sql;

/** The SQL of every statement, by name (exported for the query-plan test). */
export const SQL = {
  // Groups.
  groupById: p('SELECT * FROM groups WHERE id = ?'),
  groupIdByKey: p('SELECT id FROM groups WHERE idempotency_key = ?'),
  groupStatic: p('SELECT handler, options FROM groups WHERE id = ?'),
  insertGroup: p(
    `INSERT INTO groups (id, handler, state, policy, idempotency_key, options, created_at, sealed_at,
         parent_group_id, parent_task_id, spawn_key, keep_children)
       VALUES (@id, @handler, @state, @policy, @idempotencyKey, @options, @createdAt, @sealedAt,
         @parentGroupId, @parentTaskId, @spawnKey, @keepChildren)`,
  ),
  // A task's child group by spawn key (ctx.spawn): (taskId, key).
  spawnedGroup: p(
    'SELECT id FROM groups WHERE parent_task_id = ? AND spawn_key = ? AND parent_task_id IS NOT NULL',
  ),
  // Every group under a group (spawned by its tasks, and so on down), whatever its state.
  descendants: p(
    `WITH RECURSIVE d(id) AS (
         SELECT id FROM groups WHERE parent_group_id = ?
         UNION ALL
         SELECT g.id FROM groups g JOIN d ON g.parent_group_id = d.id AND g.parent_group_id IS NOT NULL)
       SELECT id FROM d`,
  ),
  // The children that a group's canceled tasks spawned without keepChildren: what failFast cancels.
  unkeptChildrenOfCanceled: p(
    `SELECT c.id FROM groups c JOIN tasks t ON t.id = c.parent_task_id
       WHERE c.parent_group_id = ? AND c.parent_group_id IS NOT NULL AND c.keep_children = 0
         AND t.state = 'canceled'
       ORDER BY c.created_at, c.rowid`,
  ),
  // The children a task spawned without keepChildren: what its final failure cancels.
  unkeptChildren: p(
    'SELECT id FROM groups WHERE parent_task_id = ? AND parent_task_id IS NOT NULL AND keep_children = 0',
  ),
  updateGroup: p(
    `UPDATE groups SET state = @state, total = @total, pending = @pending, running = @running,
         succeeded = @succeeded, failed = @failed, canceled = @canceled,
         sealed_at = @sealedAt, finished_at = @finishedAt
       WHERE id = @id`,
  ),
  pendingGroups: p(
    'SELECT * FROM groups WHERE pending > 0 AND state <> ? ORDER BY created_at, rowid',
  ),
  listGroups: p('SELECT * FROM groups ORDER BY created_at DESC, rowid DESC LIMIT ?'),
  listGroupsBefore: p(
    'SELECT * FROM groups WHERE created_at < ? ORDER BY created_at DESC, rowid DESC LIMIT ?',
  ),
  // After the group named: (created_at, rowid) below its own, so groups of one millisecond are not skipped.
  listGroupsAfter: p(
    `SELECT * FROM groups WHERE (created_at, rowid) < (SELECT created_at, rowid FROM groups WHERE id = ?)
       ORDER BY created_at DESC, rowid DESC LIMIT ?`,
  ),
  // The client's groups only (no parent): the same order and paging.
  listRoots: p(
    'SELECT * FROM groups WHERE parent_group_id IS NULL ORDER BY created_at DESC, rowid DESC LIMIT ?',
  ),
  listRootsBefore: p(
    `SELECT * FROM groups WHERE parent_group_id IS NULL AND created_at < ?
       ORDER BY created_at DESC, rowid DESC LIMIT ?`,
  ),
  listRootsAfter: p(
    `SELECT * FROM groups WHERE parent_group_id IS NULL
       AND (created_at, rowid) < (SELECT created_at, rowid FROM groups WHERE id = ?)
       ORDER BY created_at DESC, rowid DESC LIMIT ?`,
  ),
  // A group's children in creation order: groups_children holds (parent_group_id, rowid), so no sort.
  listChildren: p(
    `SELECT * FROM groups WHERE parent_group_id = ? AND parent_group_id IS NOT NULL
       ORDER BY rowid LIMIT ?`,
  ),
  // (parent, after's id, parent again, limit): the children created after the child `after`.
  listChildrenAfter: p(
    `SELECT * FROM groups WHERE parent_group_id = ? AND parent_group_id IS NOT NULL
         AND rowid > (SELECT rowid FROM groups WHERE id = ? AND parent_group_id = ?)
       ORDER BY rowid LIMIT ?`,
  ),
  // How many children each group of a JSON array of ids has (only those with some).
  countChildren: p(
    `SELECT parent_group_id AS id, count(*) AS n FROM groups
       WHERE parent_group_id IN (SELECT value FROM json_each(?)) AND parent_group_id IS NOT NULL
       GROUP BY parent_group_id`,
  ),
  // Live groups (open or sealed), client's (root) and spawned (child): one pass over groups.
  countLiveGroups: p(
    `SELECT coalesce(sum(parent_group_id IS NULL), 0) AS root,
         coalesce(sum(parent_group_id IS NOT NULL), 0) AS child
       FROM groups WHERE state IN ('open', 'sealed')`,
  ),

  // Tasks: writes.
  insertTask: p(
    `INSERT INTO tasks (group_id, idx, state, priority, input) VALUES (?, ?, 'pending', ?, ?)`,
  ),
  taskState: p('SELECT state FROM tasks WHERE id = ?'),
  // (value, now, seq, ...fence)
  commit: p(
    `UPDATE tasks SET state = 'succeeded', value = ?, error = NULL, finished_at = ?, finish_seq = ?
       WHERE ${FENCE} RETURNING group_id`,
  ),
  // (error, now, seq, errors, nodeFailures, ...fence)
  failFinal: p(
    `UPDATE tasks SET state = 'failed', error = ?, finished_at = ?, finish_seq = ?,
         errors = errors + ?, node_failures = node_failures + ?
       WHERE ${FENCE} RETURNING group_id`,
  ),
  // (error, runAt, errors, nodeFailures, ...fence)
  failRetry: p(
    `UPDATE tasks SET state = 'pending', error = ?, run_at = ?, worker_id = NULL,
         errors = errors + ?, node_failures = node_failures + ?
       WHERE ${FENCE} RETURNING group_id`,
  ),
  // (runAt, nodeFailures, ...fence)
  requeue: p(
    `UPDATE tasks SET state = 'pending', run_at = ?, worker_id = NULL,
         node_failures = node_failures + ?
       WHERE ${FENCE} RETURNING group_id`,
  ),
  // The group of a task whose fence holds: (...fence).
  fencedGroup: p(`SELECT group_id FROM tasks WHERE ${FENCE}`),
  // A task's add by key (ctx.add): (taskId, key).
  taskAdd: p('SELECT first_idx, count FROM task_adds WHERE task_id = ? AND key = ?'),
  // (taskId, key, first, count)
  insertTaskAdd: p('INSERT INTO task_adds (task_id, key, first_idx, count) VALUES (?, ?, ?, ?)'),
  // (checkpoint, ...fence)
  checkpoint: p(`UPDATE tasks SET checkpoint = ? WHERE ${FENCE}`),
  // (workerId, now, taskId, now)
  claim: p(
    `UPDATE tasks SET state = 'running', attempt = attempt + 1, worker_id = ?, started_at = ?
       WHERE id = ? AND state = 'pending' AND run_at <= ?
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

  // A schedule timeout: every pending task of a group fails for good with one
  // error, numbering finish_seq from @seq + 1 in input order.
  failPending: p(
    `UPDATE tasks SET state = 'failed', error = @error, finished_at = @now, finish_seq = @seq + c.rn
       FROM (SELECT id, row_number() OVER (ORDER BY idx) AS rn FROM tasks
             WHERE group_id = @groupId AND state = 'pending') AS c
       WHERE tasks.id = c.id`,
  ),

  // Retry: every failed task of a group back to pending, its attempt budget
  // started over, its attempt kept (the next claim takes attempt + 1).
  retryFailed: p(
    `UPDATE tasks SET state = 'pending', worker_id = NULL, errors = 0, node_failures = 0,
         run_at = 0, finished_at = NULL, finish_seq = NULL
       WHERE group_id = ? AND state = 'failed'`,
  ),

  // Tasks: reads.
  readyTasks: p(
    `SELECT id, priority FROM tasks
       WHERE group_id = ? AND state = 'pending' AND run_at <= ?
       ORDER BY priority DESC, idx LIMIT ?`,
  ),
  // The `run_at > 0` term lets SQLite use the partial index tasks_run_at (now >= 0).
  nextRunAt: p(
    `SELECT min(run_at) AS t FROM tasks WHERE state = 'pending' AND run_at > 0 AND run_at > ?`,
  ),
  // CROSS JOIN keeps groups the outer loop: groups with running > 0, then each one's
  // running tasks through tasks_ready, never a pass over all tasks.
  leases: p(
    `SELECT t.id, t.group_id, t.idx, t.attempt, t.worker_id, t.started_at, t.errors,
         t.node_failures, g.handler, g.options
       FROM groups g CROSS JOIN tasks t ON t.group_id = g.id AND t.state = 'running'
       WHERE g.running > 0 ORDER BY t.id`,
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
  // Paged by bytes, in two steps: the sizes of the page's rows (octet_length
  // reads a text's length from the record header, not its content), then the
  // rows that fit, by key range. No value past the page is ever read.
  taskSizes: p(
    `SELECT idx AS k, ${ROW_BYTES} AS n FROM tasks
       WHERE group_id = ? AND idx > ? ORDER BY idx LIMIT ?`,
  ),
  taskSizesInState: p(
    `SELECT idx AS k, ${ROW_BYTES} AS n FROM tasks
       WHERE group_id = ? AND state = ? AND idx > ? ORDER BY idx LIMIT ?`,
  ),
  taskRange: p(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
       WHERE group_id = ? AND idx > ? AND idx <= ? ORDER BY idx`,
  ),
  taskRangeInState: p(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
       WHERE group_id = ? AND state = ? AND idx > ? AND idx <= ? ORDER BY idx`,
  ),
  finishedSizes: p(
    `SELECT finish_seq AS k, ${ROW_BYTES} AS n FROM tasks
       WHERE group_id = ? AND finish_seq > ? ORDER BY finish_seq LIMIT ?`,
  ),
  finishedRange: p(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
       WHERE group_id = ? AND finish_seq > ? AND finish_seq <= ? ORDER BY finish_seq`,
  ),
  // The dashboard's table: no value column.
  taskSummaries: p(
    `SELECT ${TASK_SUMMARY_COLUMNS} FROM tasks
       WHERE group_id = ? AND idx > ? ORDER BY idx LIMIT ?`,
  ),
  taskSummariesInState: p(
    `SELECT ${TASK_SUMMARY_COLUMNS} FROM tasks
       WHERE group_id = ? AND state = ? AND idx > ? ORDER BY idx LIMIT ?`,
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
  // countTasks: the group counters summed, one pass over groups (not tasks).
  countTasks: p(
    `SELECT coalesce(sum(pending), 0) AS pending, coalesce(sum(running), 0) AS running,
         coalesce(sum(succeeded), 0) AS succeeded, coalesce(sum(failed), 0) AS failed,
         coalesce(sum(canceled), 0) AS canceled
       FROM groups`,
  ),
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
