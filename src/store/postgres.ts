/**
 * The shared store: PostgreSQL through a `pg.Pool`. Several coordinators may
 * open the same schema; one leads (postgres-leader.ts) and only its ticks
 * write, which `beginTerm` enforces with the epoch of its term.
 *
 * Ticks run one at a time, each in one transaction on one pool connection
 * (postgres-tick.ts); reads run on the other connections. Columns are named
 * as in SQLite and bigint is read as number (postgres-pool.ts), so rows map to
 * store types with the functions of sqlite-rows.ts.
 */
import pg from 'pg';
import { RegroupError } from '../core/errors.js';
import type { GroupInfo, TaskOptions } from '../core/types.js';
import type { EventView, TaskView } from '../protocol/http.js';
import { describeTarget, isConnectionError, toStoreError } from './postgres-errors.js';
import {
  createPool,
  resolveOptions,
  type PostgresStoreOptions,
  type ResolvedPostgresStoreOptions,
} from './postgres-pool.js';
import { checkSchemaName, migrate } from './postgres-schema.js';
import { stmt, type StatementName } from './postgres-sql.js';
import { PgTickApplier } from './postgres-tick.js';
import { emptyOutcome, isEmptyTick } from './tick-ops.js';
import {
  eventFromRow,
  groupFromRow,
  taskRecordFromRow,
  taskSummaryFromRow,
  taskViewFromRow,
  workerFromRow,
  type EventRow,
  type GroupRow,
  type TaskViewRow,
  type WorkerRow,
  leaseFromRow,
  optionsFromText,
  type LeaseRow,
} from './rows.js';
import type {
  ChildrenQuery,
  FinishedPageQuery,
  GroupsQuery,
  LiveGroupCounts,
  Lease,
  ReadyTask,
  Store,
  TaskCounts,
  TaskPage,
  TaskPageQuery,
  TaskQuery,
  TaskSummary,
  Tick,
  TickOutcome,
  WorkerRecord,
} from './store.js';

export type { PostgresStoreOptions };

interface GroupStatic {
  handler: string;
  options: TaskOptions;
}

const STATIC_CACHE_MAX = 10_000;

export class PostgresStore implements Store {
  private readonly o: ResolvedPostgresStoreOptions;
  /** Where the store is, for messages (no credentials). */
  private readonly where: string;
  private pool: pg.Pool | null = null;
  private opening: Promise<void> | null = null;
  /** The last finish_seq given; null when unknown (loaded by the next tick). */
  private finishSeq: number | null = null;
  /** The epoch of this coordinator's term (beginTerm); null: no fencing. */
  private epoch: number | null = null;
  /** Ticks run one after another. */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly statics = new Map<string, GroupStatic>();

  constructor(options: PostgresStoreOptions) {
    this.o = resolveOptions(options);
    checkSchemaName(this.o.schema);
    this.where = describeTarget(this.o.url, this.o.schema);
  }

  async open(): Promise<void> {
    if (this.pool) return;
    this.opening ??= this.connect().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private async connect(): Promise<void> {
    const o = this.o;
    const pool = createPool(o);
    try {
      const client = await pool.connect();
      try {
        await migrate(client, o.schema, Date.now());
        client.release();
      } catch (err) {
        client.release(true);
        throw err;
      }
      this.finishSeq = await this.loadFinishSeq(pool);
    } catch (err) {
      await pool.end().catch(() => {});
      throw toStoreError(err, 'could not open the store', this.where);
    }
    this.pool = pool;
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.statics.clear();
    this.epoch = null;
    await this.chain.catch(() => {});
    await pool?.end();
  }

  /** The pool, for tests and operations tooling. */
  get connections(): pg.Pool {
    if (!this.pool) throw new RegroupError('closed', 'the PostgreSQL store is not open');
    return this.pool;
  }

  get schema(): string {
    return this.o.schema;
  }

  async beginTerm(epoch: number): Promise<void> {
    const pool = this.connections;
    await this.serial(async () => {
      this.epoch = epoch;
      this.finishSeq = null;
      try {
        this.finishSeq = await this.loadFinishSeq(pool);
      } catch (err) {
        // The first tick of the term loads it then.
        throw toStoreError(err, 'could not begin the term', this.where);
      }
    });
  }

  async commitTick(tick: Tick): Promise<TickOutcome> {
    const pool = this.connections;
    if (isEmptyTick(tick)) return emptyOutcome();
    return this.serial(() => this.runTick(pool, tick));
  }

  /** Runs `fn` after every tick before it has settled. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => {});
    return run;
  }

  private async runTick(pool: pg.Pool, tick: Tick, attempt = 1): Promise<TickOutcome> {
    let client: pg.PoolClient;
    let begun = false;
    try {
      client = await pool.connect();
    } catch (err) {
      throw toStoreError(err, 'the tick was not committed', this.where);
    }
    try {
      // One round trip: BEGIN, the epoch check, and finish_seq when it is not known.
      const begin = ['BEGIN'];
      if (this.epoch !== null) begin.push('SELECT epoch FROM leader WHERE id = 1 FOR SHARE');
      if (this.finishSeq === null) begin.push(`SELECT value FROM meta WHERE key = 'finish_seq'`);
      const res: pg.QueryResult | pg.QueryResult[] = await client.query(begin.join('; '));
      begun = true;
      const results = Array.isArray(res) ? res : [res];
      let at = 1;
      if (this.epoch !== null) this.checkEpoch(results[at++]);
      const start =
        this.finishSeq ?? (results[at]?.rows[0] as { value: number } | undefined)?.value ?? 0;
      const applier = new PgTickApplier(client, tick, start);
      const out = await applier.apply();
      await client.query('COMMIT');
      this.finishSeq = applier.finishSeq;
      client.release();
      return out;
    } catch (err) {
      // Unknown now whether the tick committed (a lost COMMIT reply): the next tick reloads.
      this.finishSeq = null;
      // A broken connection is thrown away at once: a ROLLBACK on it would only wait out the timeout.
      const usable =
        !isConnectionError(err) &&
        (await client.query('ROLLBACK').then(
          () => true,
          () => false,
        ));
      client.release(usable ? undefined : true);
      // A pooled session that was ended before this tick began wrote nothing:
      // take another connection (each pooled one may be dead).
      if (!begun && sessionEnded(err) && attempt <= this.o.poolSize) {
        return this.runTick(pool, tick, attempt + 1);
      }
      throw toStoreError(err, 'the tick was not committed', this.where);
    }
  }

  private checkEpoch(r: pg.QueryResult | undefined): void {
    const current = (r?.rows[0] as { epoch: number } | undefined)?.epoch;
    if (current !== this.epoch) {
      throw new RegroupError(
        'not_leader',
        `another coordinator leads now (epoch ${current} > ${this.epoch}); this one stopped writing`,
      );
    }
  }

  private async loadFinishSeq(pool: pg.Pool): Promise<number> {
    const r = await pool.query<{ value: number }>(stmt('getFinishSeq', []));
    return r.rows[0]?.value ?? 0;
  }

  /**
   * One statement on any pool connection, errors mapped. A read that met a
   * broken connection (a session ended by a takeover, a server restart) is
   * tried again, up to once per pooled connection (each may be dead): reads
   * change nothing, so that is safe.
   */
  private async rows<R>(name: StatementName, values: unknown[]): Promise<R[]> {
    const pool = this.connections;
    for (let attempt = 1; ; attempt++) {
      try {
        return (await pool.query(stmt(name, values))).rows as R[];
      } catch (err) {
        if (attempt > this.o.poolSize || !sessionEnded(err)) {
          throw toStoreError(err, `could not read the store (${name})`, this.where);
        }
      }
    }
  }

  async pendingGroups(): Promise<GroupInfo[]> {
    return (await this.rows<GroupRow>('pendingGroups', [])).map(groupFromRow);
  }

  async readyTasks(groupIds: string[], now: number, perGroup: number): Promise<ReadyTask[]> {
    if (groupIds.length === 0) return [];
    await this.loadStatics(groupIds);
    const rows = await this.rows<{ group_id: string; id: number; priority: number }>('readyTasks', [
      groupIds,
      now,
      perGroup,
    ]);
    const out: ReadyTask[] = [];
    for (const r of rows) {
      const g = this.statics.get(r.group_id);
      if (!g) continue;
      out.push({
        taskId: r.id,
        groupId: r.group_id,
        handler: g.handler,
        priority: r.priority,
        requires: [...g.options.requires],
        maxConcurrency: g.options.maxConcurrency,
        concurrencyKey: g.options.concurrencyKey,
      });
    }
    return out;
  }

  /** Handler and options never change after creation, so they are cached (bounded). */
  private async loadStatics(ids: string[]): Promise<void> {
    const missing = [...new Set(ids)].filter((id) => !this.statics.has(id));
    if (missing.length === 0) return;
    const rows = await this.rows<{ id: string; handler: string; options: string }>('groupStatics', [
      missing,
    ]);
    if (this.statics.size + rows.length > STATIC_CACHE_MAX) this.statics.clear();
    for (const r of rows) {
      this.statics.set(r.id, {
        handler: r.handler,
        options: optionsFromText(r.options),
      });
    }
  }

  async nextRunAt(now: number): Promise<number | null> {
    const rows = await this.rows<{ t: number | null }>('nextRunAt', [now]);
    return rows[0]?.t ?? null;
  }

  /** Leases and workers from one snapshot (REPEATABLE READ). */
  async recover(): Promise<{ leases: Lease[]; workers: WorkerRecord[] }> {
    const pool = this.connections;
    let client: pg.PoolClient | null = null;
    try {
      client = await pool.connect();
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const leases = (await client.query(stmt('leases', []))).rows as LeaseRow[];
      const workers = (await client.query(stmt('liveWorkers', []))).rows as WorkerRow[];
      await client.query('COMMIT');
      client.release();
      return { leases: leases.map(leaseFromRow), workers: workers.map(workerFromRow) };
    } catch (err) {
      client?.release(true);
      throw toStoreError(err, 'could not read the store (recover)', this.where);
    }
  }

  async getGroup(id: string): Promise<GroupInfo | null> {
    const [row] = await this.rows<GroupRow>('groupById', [id]);
    return row ? groupFromRow(row) : null;
  }

  async listGroups(query: GroupsQuery): Promise<GroupInfo[]> {
    const roots = query.roots === true;
    const rows =
      query.after !== undefined
        ? await this.rows<GroupRow>(roots ? 'listRootsAfter' : 'listGroupsAfter', [
            query.after,
            query.limit,
          ])
        : query.before !== undefined
          ? await this.rows<GroupRow>(roots ? 'listRootsBefore' : 'listGroupsBefore', [
              query.before,
              query.limit,
            ])
          : await this.rows<GroupRow>(roots ? 'listRoots' : 'listGroups', [query.limit]);
    return rows.map(groupFromRow);
  }

  async listChildren(groupId: string, query: ChildrenQuery): Promise<GroupInfo[]> {
    const rows =
      query.after === undefined
        ? await this.rows<GroupRow>('listChildren', [groupId, query.limit])
        : await this.rows<GroupRow>('listChildrenAfter', [groupId, query.after, query.limit]);
    return rows.map(groupFromRow);
  }

  async countChildren(groupIds: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (groupIds.length === 0) return out;
    const rows = await this.rows<{ id: string; n: number }>('countChildren', [[...groupIds]]);
    for (const r of rows) out.set(r.id, r.n);
    return out;
  }

  async countLiveGroups(): Promise<LiveGroupCounts> {
    const [row] = await this.rows<LiveGroupCounts>('countLiveGroups', []);
    return row ?? { root: 0, child: 0 };
  }

  async listTasks(groupId: string, query: TaskQuery): Promise<TaskView[]> {
    const after = query.after ?? -1;
    const rows =
      query.state === undefined
        ? await this.rows<TaskViewRow>('listTasks', [groupId, after, query.limit])
        : await this.rows<TaskViewRow>('listTasksInState', [
            groupId,
            query.state,
            after,
            query.limit,
          ]);
    return rows.map(taskViewFromRow);
  }

  async finishedTasks(groupId: string, afterSeq: number, limit: number): Promise<TaskView[]> {
    const rows = await this.rows<TaskViewRow>('finishedTasks', [groupId, afterSeq, limit]);
    return rows.map(taskViewFromRow);
  }

  async taskPage(groupId: string, query: TaskPageQuery): Promise<TaskPage> {
    const after = query.after ?? -1;
    const { state, limit, maxBytes } = query;
    const rows =
      state === undefined
        ? await this.rows<PageRow>('taskPage', [groupId, after, limit, maxBytes])
        : await this.rows<PageRow>('taskPageInState', [groupId, state, after, limit, maxBytes]);
    return pageFromRows(rows);
  }

  async finishedPage(groupId: string, query: FinishedPageQuery): Promise<TaskPage> {
    const { afterSeq, limit, maxBytes } = query;
    const rows = await this.rows<PageRow>('finishedPage', [groupId, afterSeq, limit, maxBytes]);
    return pageFromRows(rows);
  }

  async taskSummaries(groupId: string, query: TaskQuery): Promise<TaskSummary[]> {
    const after = query.after ?? -1;
    const rows =
      query.state === undefined
        ? await this.rows<SummaryRow>('taskSummaries', [groupId, after, query.limit])
        : await this.rows<SummaryRow>('taskSummariesInState', [
            groupId,
            query.state,
            after,
            query.limit,
          ]);
    return rows.map(taskSummaryFromRow);
  }

  async listEvents(afterSeq: number, limit: number): Promise<EventView[]> {
    return (await this.rows<EventRow>('listEvents', [afterSeq, limit])).map(eventFromRow);
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    return (await this.rows<WorkerRow>('listWorkers', [])).map(workerFromRow);
  }

  async countTasks(): Promise<TaskCounts> {
    const [row] = await this.rows<TaskCounts>('countTasks', []);
    return row ?? { pending: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
  }
}

/** A row of a byte-bounded page: the task, and how many rows the limit gave (postgres-sql.ts `budgeted`). */
type PageRow = TaskViewRow & { page_rows: number };
type SummaryRow = Omit<TaskViewRow, 'value'>;

function pageFromRows(rows: PageRow[]): TaskPage {
  const limited = rows[0]?.page_rows ?? 0;
  return { tasks: rows.map(taskRecordFromRow), cut: rows.length < limited };
}

/** The connection's session was ended under it (not a timeout: those are not worth a second wait). */
function sessionEnded(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (code === '57P01' || code === '57P02' || code === 'ECONNRESET' || code === 'EPIPE')
    return true;
  return err instanceof Error && /Connection terminated unexpectedly/.test(err.message);
}
