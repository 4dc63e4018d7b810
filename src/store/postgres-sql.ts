/**
 * Every SQL statement of PostgresStore, by name. Each runs as a named
 * (prepared) statement: parsed and planned once per connection. Batches pass
 * one array per column and unnest them, so a tick costs a few round trips
 * whatever its size.
 */
import type pg from 'pg';
import { TASK_SUMMARY_COLUMNS, TASK_VIEW_COLUMNS } from './rows.js';

/** The fence of every write about a run, against the op row `c`: running, that attempt, that worker. */
const FENCE = `t.id = c.id AND t.state = 'running' AND t.attempt = c.attempt AND t.worker_id = c.worker`;

/**
 * A page of `rows` (a limited query of TASK_VIEW_COLUMNS ordered by `key`)
 * bounded by bytes in SQL, so values past the budget never leave the server:
 * a running sum of each row's value and error bytes (octet_length reads a
 * TOASTed text's size without fetching it) keeps the rows within `budget`,
 * and always the first (the rule of withinBudget in rows.ts). `page_rows` is
 * how many rows the limit gave: fewer returned means the page was cut.
 */
function budgeted(rows: string, key: string, budget: string): string {
  const bytes = 'coalesce(octet_length(value), 0) + coalesce(octet_length(error), 0)';
  return `SELECT ${TASK_VIEW_COLUMNS}, page_rows FROM (
      SELECT l.*, row_number() OVER w AS rn, sum(${bytes}) OVER w AS upto,
             count(*) OVER () AS page_rows
        FROM (${rows}) AS l
      WINDOW w AS (ORDER BY ${key} ROWS UNBOUNDED PRECEDING)) AS b
     WHERE rn = 1 OR upto <= ${budget} ORDER BY ${key}`;
}

export const SQL = {
  // Groups.
  lockGroups: `SELECT * FROM groups WHERE id = ANY($1::text[]) OR idempotency_key = ANY($2::text[])
     FOR UPDATE`,
  lockGroupsById: `SELECT * FROM groups WHERE id = ANY($1::text[]) FOR UPDATE`,
  insertGroups: `INSERT INTO groups (id, handler, state, policy, idempotency_key, options, created_at, sealed_at)
     SELECT n.id, n.handler, n.state, n.policy, n.key, n.options, $1, n.sealed_at
       FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
            WITH ORDINALITY AS n(id, handler, state, policy, key, options, sealed_at, ord)
      ORDER BY n.ord`,
  // One child group (ctx.spawn), sealed: ($1 now, id, handler, state, policy, options, parent group, parent task, key, keep).
  insertSpawnedGroup: `INSERT INTO groups (id, handler, state, policy, options, created_at, sealed_at,
         parent_group_id, parent_task_id, spawn_key, keep_children)
       VALUES ($2, $3, $4, $5, $6, $1, $1, $7, $8, $9, $10)`,
  // A task's child group by spawn key: (taskId, key).
  spawnedGroup: `SELECT id FROM groups WHERE parent_task_id = $1 AND spawn_key = $2`,
  // Every group under a group (spawned by its tasks, and so on down), whatever its state.
  descendants: `WITH RECURSIVE d(id) AS (
         SELECT id FROM groups WHERE parent_group_id = $1
         UNION ALL
         SELECT g.id FROM groups g JOIN d ON g.parent_group_id = d.id)
       SELECT id FROM d`,
  // The children that these groups' canceled tasks spawned without keepChildren: what failFast cancels.
  unkeptChildrenOfCanceled: `SELECT c.id FROM groups c JOIN tasks t ON t.id = c.parent_task_id
     WHERE c.parent_group_id = ANY($1::text[]) AND NOT c.keep_children AND t.state = 'canceled'
     ORDER BY c.created_at, c.rowid`,
  // The children these tasks spawned without keepChildren: what their final failure cancels.
  unkeptChildren: `SELECT id FROM groups
     WHERE parent_task_id = ANY($1::bigint[]) AND NOT keep_children ORDER BY created_at, rowid`,
  // Every changed group, and finish_seq with them ($11; it only moves when groups change).
  updateGroups: `WITH m AS (UPDATE meta SET value = $11 WHERE key = 'finish_seq' AND value <> $11)
     UPDATE groups g SET state = c.state, total = c.total, pending = c.pending, running = c.running,
         succeeded = c.succeeded, failed = c.failed, canceled = c.canceled,
         sealed_at = c.sealed_at, finished_at = c.finished_at
       FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], $6::int[], $7::int[],
                   $8::int[], $9::bigint[], $10::bigint[])
            AS c(id, state, total, pending, running, succeeded, failed, canceled, sealed_at, finished_at)
      WHERE g.id = c.id`,
  groupById: 'SELECT * FROM groups WHERE id = $1',
  groupStatics: 'SELECT id, handler, options FROM groups WHERE id = ANY($1::text[])',
  pendingGroups: `SELECT * FROM groups WHERE pending > 0 AND state <> 'canceled'
     ORDER BY created_at, rowid`,
  listGroups: 'SELECT * FROM groups ORDER BY created_at DESC, rowid DESC LIMIT $1',
  listGroupsBefore: `SELECT * FROM groups WHERE created_at < $1
     ORDER BY created_at DESC, rowid DESC LIMIT $2`,
  // The client's groups only (no parent): the same order and paging.
  listRoots: `SELECT * FROM groups WHERE parent_group_id IS NULL
     ORDER BY created_at DESC, rowid DESC LIMIT $1`,
  listRootsBefore: `SELECT * FROM groups WHERE parent_group_id IS NULL AND created_at < $1
     ORDER BY created_at DESC, rowid DESC LIMIT $2`,
  // After the group named ($1): (created_at, rowid) below its own, so groups of one millisecond are not skipped.
  listGroupsAfter: `SELECT * FROM groups
     WHERE (created_at, rowid) < (SELECT created_at, rowid FROM groups WHERE id = $1)
     ORDER BY created_at DESC, rowid DESC LIMIT $2`,
  listRootsAfter: `SELECT * FROM groups WHERE parent_group_id IS NULL
     AND (created_at, rowid) < (SELECT created_at, rowid FROM groups WHERE id = $1)
     ORDER BY created_at DESC, rowid DESC LIMIT $2`,
  // A group's children in creation order, from groups_children_order (parent_group_id, rowid): no sort.
  listChildren: `SELECT * FROM groups WHERE parent_group_id = $1 ORDER BY rowid LIMIT $2`,
  // ($1 parent, $2 after's id, $3 limit): the children created after the child `after`.
  listChildrenAfter: `SELECT * FROM groups WHERE parent_group_id = $1
       AND rowid > (SELECT rowid FROM groups WHERE id = $2 AND parent_group_id = $1)
     ORDER BY rowid LIMIT $3`,
  // How many children each group of a list of ids has (only those with some).
  countChildren: `SELECT parent_group_id AS id, count(*)::bigint AS n FROM groups
     WHERE parent_group_id = ANY($1::text[]) GROUP BY parent_group_id`,
  // Live groups (open or sealed), client's (root) and spawned (child): one pass over groups.
  countLiveGroups: `SELECT count(*) FILTER (WHERE parent_group_id IS NULL)::bigint AS root,
         count(*) FILTER (WHERE parent_group_id IS NOT NULL)::bigint AS child
       FROM groups WHERE state IN ('open', 'sealed')`,

  // Tasks: writes.
  insertTasks: `INSERT INTO tasks (group_id, idx, state, priority, input)
     SELECT n.group_id, n.idx, 'pending', n.priority, n.input
       FROM unnest($1::text[], $2::int[], $3::int[], $4::text[])
            WITH ORDINALITY AS n(group_id, idx, priority, input, ord)
      ORDER BY n.ord`,
  // The tasks that the run ops of a tick name, as they are before those ops.
  lockRunTasks: `SELECT id, group_id, state, attempt, worker_id FROM tasks
     WHERE id = ANY($1::bigint[]) FOR UPDATE`,
  commits: `UPDATE tasks t SET state = 'succeeded', value = c.value, error = NULL, finished_at = $1, finish_seq = c.seq
       FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::bigint[])
            AS c(id, attempt, worker, value, seq)
      WHERE ${FENCE}`,
  // A retried failure (seq null) goes back to pending; a final one is failed with its seq.
  failures: `UPDATE tasks t SET state = CASE WHEN c.seq IS NULL THEN 'pending' ELSE 'failed' END,
         error = c.error, run_at = COALESCE(c.run_at, t.run_at),
         worker_id = CASE WHEN c.seq IS NULL THEN NULL ELSE t.worker_id END,
         errors = t.errors + c.errors, node_failures = t.node_failures + c.node_failures,
         finished_at = CASE WHEN c.seq IS NULL THEN t.finished_at ELSE $1 END,
         finish_seq = COALESCE(c.seq, t.finish_seq)
       FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::bigint[], $7::int[],
                   $8::int[], $9::bigint[])
            AS c(id, attempt, worker, error, run_at, errors, node_failures, seq)
      WHERE ${FENCE}`,
  requeues: `UPDATE tasks t SET state = 'pending', run_at = c.run_at, worker_id = NULL,
         node_failures = t.node_failures + c.node_failures
       FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::int[])
            AS c(id, attempt, worker, run_at, node_failures)
      WHERE ${FENCE}`,
  checkpoints: `UPDATE tasks t SET checkpoint = c.checkpoint
       FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[])
            AS c(id, attempt, worker, checkpoint)
      WHERE ${FENCE}`,
  // The adds of running tasks (ctx.add) already made under these (task, key) pairs.
  taskAddsByKey: `SELECT a.task_id, a.key, a.first_idx, a.count
       FROM task_adds a JOIN unnest($1::bigint[], $2::text[]) AS k(task_id, key)
         ON a.task_id = k.task_id AND a.key = k.key`,
  insertTaskAdds: `INSERT INTO task_adds (task_id, key, first_idx, count)
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[], $4::int[])`,
  // Retry: every failed task of a group ($1) back to pending, its attempt
  // budget started over, its attempt kept (the next claim takes attempt + 1).
  retryFailed: `UPDATE tasks SET state = 'pending', worker_id = NULL, errors = 0, node_failures = 0,
         run_at = 0, finished_at = NULL, finish_seq = NULL
       WHERE group_id = $1 AND state = 'failed'`,
  // Cancels every running, then every pending task of a group, each in input
  // order, numbering finish_seq from $3 + 1 (cancel and failFast).
  // A schedule timeout: every pending task of a group fails for good with one
  // error ($2), finish_seq numbered from $4 + 1 in input order.
  failPending: `UPDATE tasks t SET state = 'failed', error = $2, finished_at = $3, finish_seq = $4 + c.rn
       FROM (SELECT id, row_number() OVER (ORDER BY idx) AS rn
               FROM tasks WHERE group_id = $1 AND state = 'pending') AS c
      WHERE t.id = c.id`,
  cancelRest: `UPDATE tasks t SET state = 'canceled', finished_at = $2, finish_seq = $3 + c.rn
       FROM (SELECT id, was, row_number() OVER (ORDER BY was <> 'running', idx) AS rn
               FROM (SELECT id, idx, state AS was FROM tasks WHERE group_id = $1 AND state = 'running'
                     UNION ALL
                     SELECT id, idx, state FROM tasks WHERE group_id = $1 AND state = 'pending') AS x
            ) AS c
      WHERE t.id = c.id
      RETURNING t.id, t.attempt, t.worker_id, c.was`,
  // Claims the first claim of each task (the caller dedupes) whose task is
  // pending and due; a row another transaction holds is skipped, not waited
  // for. The state test is on the locked row (f), not on t: a test of
  // t.state = 'pending' would let the planner scan the whole of tasks_ready
  // instead of the primary key when its statistics lag behind the table.
  claims: `WITH c AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::int[]) AS u(id, worker, ord)),
     f AS (SELECT id, state, run_at FROM tasks WHERE id = ANY($1::bigint[]) FOR UPDATE SKIP LOCKED)
     UPDATE tasks t SET state = 'running', attempt = t.attempt + 1, worker_id = c.worker, started_at = $4
       FROM c JOIN f ON f.id = c.id
      WHERE t.id = c.id AND f.state = 'pending' AND f.run_at <= $4
      RETURNING t.id, t.group_id, t.idx, t.attempt, t.worker_id, t.errors, t.node_failures, t.input,
                t.checkpoint, c.ord`,

  // Tasks: reads.
  taskStates: 'SELECT id, state FROM tasks WHERE id = ANY($1::bigint[])',
  readyTasks: `SELECT g.id AS group_id, r.id, r.priority
       FROM unnest($1::text[]) WITH ORDINALITY AS g(id, ord)
       CROSS JOIN LATERAL (
         SELECT id, priority, idx FROM tasks
          WHERE group_id = g.id AND state = 'pending' AND run_at <= $2
          ORDER BY priority DESC, idx LIMIT $3) AS r
      ORDER BY g.ord, r.priority DESC, r.idx`,
  nextRunAt: `SELECT min(run_at) AS t FROM tasks WHERE state = 'pending' AND run_at > 0 AND run_at > $1`,
  leases: `SELECT t.id, t.group_id, t.idx, t.attempt, t.worker_id, t.started_at, t.errors,
         t.node_failures, g.handler, g.options
       FROM groups g JOIN tasks t ON t.group_id = g.id AND t.state = 'running'
      WHERE g.running > 0 ORDER BY t.id`,
  listTasks: `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
     WHERE group_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`,
  listTasksInState: `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
     WHERE group_id = $1 AND state = $2 AND idx > $3 ORDER BY idx LIMIT $4`,
  finishedTasks: `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
     WHERE group_id = $1 AND finish_seq > $2 ORDER BY finish_seq LIMIT $3`,
  taskPage: budgeted(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
      WHERE group_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`,
    'idx',
    '$4',
  ),
  taskPageInState: budgeted(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
      WHERE group_id = $1 AND state = $2 AND idx > $3 ORDER BY idx LIMIT $4`,
    'idx',
    '$5',
  ),
  finishedPage: budgeted(
    `SELECT ${TASK_VIEW_COLUMNS} FROM tasks
      WHERE group_id = $1 AND finish_seq > $2 ORDER BY finish_seq LIMIT $3`,
    'finish_seq',
    '$4',
  ),
  // The dashboard's table: no value column.
  taskSummaries: `SELECT ${TASK_SUMMARY_COLUMNS} FROM tasks
     WHERE group_id = $1 AND idx > $2 ORDER BY idx LIMIT $3`,
  taskSummariesInState: `SELECT ${TASK_SUMMARY_COLUMNS} FROM tasks
     WHERE group_id = $1 AND state = $2 AND idx > $3 ORDER BY idx LIMIT $4`,

  // Workers and events.
  upsertWorkers: `INSERT INTO workers (worker_id, name, token, state, slots, labels, handlers, connected_at, seen_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],
                          $7::text[], $8::bigint[], $9::bigint[])
     ON CONFLICT (worker_id) DO UPDATE SET name = excluded.name, token = excluded.token,
       state = excluded.state, slots = excluded.slots, labels = excluded.labels,
       handlers = excluded.handlers, connected_at = excluded.connected_at, seen_at = excluded.seen_at`,
  liveWorkers: `SELECT * FROM workers WHERE state NOT IN ('dead', 'left')
     ORDER BY connected_at, worker_id`,
  listWorkers: 'SELECT * FROM workers ORDER BY connected_at, worker_id',
  // countTasks: the group counters summed, one pass over groups (not tasks).
  countTasks: `SELECT coalesce(sum(pending), 0)::bigint AS pending,
         coalesce(sum(running), 0)::bigint AS running,
         coalesce(sum(succeeded), 0)::bigint AS succeeded,
         coalesce(sum(failed), 0)::bigint AS failed,
         coalesce(sum(canceled), 0)::bigint AS canceled
       FROM groups`,
  insertEvents: `INSERT INTO events (at, type, worker_id, group_id, task_id, data)
     SELECT COALESCE(e.at, $1), e.type, e.worker_id, e.group_id, e.task_id, e.data
       FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[])
            WITH ORDINALITY AS e(type, worker_id, group_id, task_id, data, at, ord)
      ORDER BY e.ord`,
  listEvents: 'SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT $2',

  // Meta and leadership.
  getFinishSeq: `SELECT value FROM meta WHERE key = 'finish_seq'`,
  epoch: 'SELECT epoch FROM leader WHERE id = 1 FOR SHARE',
} as const;

export type StatementName = keyof typeof SQL;

/** A named statement with its values, as `pg` takes it. */
export function stmt(name: StatementName, values: unknown[]): pg.QueryConfig {
  return { name: `regroup_${name}`, text: SQL[name], values };
}
