/**
 * The embedded store: one SQLite file through better-sqlite3, in WAL mode with
 * `synchronous=FULL` by default. The coordinator is the single writer; every
 * method is one synchronous call (or transaction) wrapped in a promise. While
 * open it holds the file's writer lock (sqlite-lock.ts): a second store on the
 * same file is refused with `store_locked`.
 */
import Database from 'better-sqlite3';
import { RegroupError } from '../core/errors.js';
import type { GroupInfo, TaskOptions } from '../core/types.js';
import type { EventView, TaskView } from '../protocol/http.js';
import {
  eventFromRow,
  groupFromRow,
  taskRecordFromRow,
  taskSummaryFromRow,
  taskViewFromRow,
  withinBudget,
  workerFromRow,
  type EventRow,
  type GroupRow,
  type TaskViewRow,
  type WorkerRow,
  leaseFromRow,
  optionsFromText,
  type LeaseRow,
} from './rows.js';
import { isBusy, openFailed, storageErrorCode } from './sqlite-errors.js';
import { acquireWriterLock, lockFileOf, type WriterLock } from './sqlite-lock.js';
import { migrate } from './sqlite-schema.js';
import { prepareStatements, type Statements } from './sqlite-statements.js';
import { TickApplier } from './sqlite-tick.js';
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

export interface SqliteStoreOptions {
  /** The database file (created when missing). */
  path: string;
  /** FULL (default) survives power loss; NORMAL in WAL mode may lose the last commits on power loss. */
  synchronous?: 'FULL' | 'NORMAL';
  /** How long to wait for another connection's lock. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * How long open() waits for another store's writer lock on the file (one
   * that is closing) before it refuses with `store_locked`. Default 500 ms.
   */
  lockWaitMs?: number;
}

/** The static part of a group that dispatch reads on every pass. */
interface GroupStatic {
  handler: string;
  options: TaskOptions;
}

const STATIC_CACHE_MAX = 10_000;

/** A row of the size steps of taskPage and finishedPage: its key (idx or finish_seq) and bytes. */
interface RowSize {
  k: number;
  n: number;
}

export class SqliteStore implements Store {
  private readonly path: string;
  private readonly synchronous: 'FULL' | 'NORMAL';
  private readonly busyTimeoutMs: number;
  private readonly lockWaitMs: number;
  private lock: WriterLock | null = null;
  private conn: Database.Database | null = null;
  private stmts: Statements | null = null;
  private finishSeq = 0;
  private readonly statics = new Map<string, GroupStatic>();

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    this.synchronous = options.synchronous ?? 'FULL';
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.lockWaitMs = options.lockWaitMs ?? 500;
  }

  /**
   * Takes the file's writer lock, then opens and migrates the database.
   * Rejects with `store_locked` (another store holds the file) or
   * `store_open_failed` (cannot open, not a database, no permission, a newer
   * schema), each naming the file.
   */
  async open(): Promise<void> {
    if (this.conn) return;
    const lock = acquireWriterLock(this.path, this.lockWaitMs);
    let db: Database.Database | null = null;
    try {
      db = new Database(this.path);
      db.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal' && this.path !== ':memory:') {
        throw new RegroupError(
          'store_open_failed',
          `could not put ${this.path} in WAL mode (got ${mode}): keep it on a local file system`,
        );
      }
      db.pragma(`synchronous = ${this.synchronous}`);
      db.pragma('foreign_keys = ON');
      migrate(db, Date.now());
      const st = prepareStatements(db);
      this.finishSeq = (st.getFinishSeq.get() as { value: number }).value;
      this.conn = db;
      this.stmts = st;
      this.lock = lock;
    } catch (err) {
      db?.close();
      lock?.release();
      throw this.openError(err);
    }
  }

  /**
   * SQLITE_BUSY from the database itself (at once, or after busy_timeout):
   * a process that is no regroup store holds it (those take the writer lock first).
   */
  private openError(err: unknown): RegroupError {
    if (!isBusy(err)) return openFailed(this.path, err);
    return new RegroupError(
      'store_locked',
      `${this.path} is locked by another process that is not a regroup coordinator ` +
        `(those hold ${lockFileOf(this.path)}): a sqlite3 shell or another program with a transaction open? ` +
        'End it, or give this coordinator another --db',
      { cause: err },
    );
  }

  async close(): Promise<void> {
    const db = this.conn;
    this.conn = null;
    this.stmts = null;
    this.statics.clear();
    db?.close();
    // After the database: the next store gets the lock only once this one has let go of the file.
    this.lock?.release();
    this.lock = null;
  }

  /** The open connection, for tests and operations tooling (pragmas, backups). */
  get database(): Database.Database {
    if (!this.conn) throw new RegroupError('closed', 'the SQLite store is not open');
    return this.conn;
  }

  private get st(): Statements {
    if (!this.stmts) throw new RegroupError('closed', 'the SQLite store is not open');
    return this.stmts;
  }

  async commitTick(tick: Tick): Promise<TickOutcome> {
    const db = this.database;
    const st = this.st;
    const before = this.finishSeq;
    const run = db.transaction(() => {
      const applier = new TickApplier(st, tick, before);
      const out = applier.apply();
      if (applier.finishSeq !== before) st.setFinishSeq.run(applier.finishSeq);
      return { out, finishSeq: applier.finishSeq };
    });
    try {
      const { out, finishSeq } = run.immediate();
      this.finishSeq = finishSeq;
      return out;
    } catch (err) {
      const code = storageErrorCode(err);
      if (code !== null) {
        throw new RegroupError(
          'storage_full',
          `the tick was not committed: SQLite could not write ${this.path} (${code}); free disk space`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async pendingGroups(): Promise<GroupInfo[]> {
    const rows = this.st.pendingGroups.all('canceled') as GroupRow[];
    return rows.map(groupFromRow);
  }

  async readyTasks(groupIds: string[], now: number, perGroup: number): Promise<ReadyTask[]> {
    const out: ReadyTask[] = [];
    for (const groupId of groupIds) {
      const g = this.groupStatic(groupId);
      if (!g) continue;
      const rows = this.st.readyTasks.all(groupId, now, perGroup) as {
        id: number;
        priority: number;
      }[];
      for (const r of rows) {
        out.push({
          taskId: r.id,
          groupId,
          handler: g.handler,
          priority: r.priority,
          requires: [...g.options.requires],
          maxConcurrency: g.options.maxConcurrency,
          concurrencyKey: g.options.concurrencyKey,
        });
      }
    }
    return out;
  }

  /** Handler and options never change after creation, so they are cached (bounded). */
  private groupStatic(id: string): GroupStatic | null {
    const hit = this.statics.get(id);
    if (hit) return hit;
    const row = this.st.groupStatic.get(id) as { handler: string; options: string } | undefined;
    if (!row) return null;
    if (this.statics.size >= STATIC_CACHE_MAX) this.statics.clear();
    const g = { handler: row.handler, options: optionsFromText(row.options) };
    this.statics.set(id, g);
    return g;
  }

  async nextRunAt(now: number): Promise<number | null> {
    return (this.st.nextRunAt.get(now) as { t: number | null }).t;
  }

  async recover(): Promise<{ leases: Lease[]; workers: WorkerRecord[] }> {
    const st = this.st;
    const read = this.database.transaction(() => ({
      leases: st.leases.all() as LeaseRow[],
      workers: st.liveWorkers.all() as WorkerRow[],
    }));
    const { leases, workers } = read();
    return { leases: leases.map(leaseFromRow), workers: workers.map(workerFromRow) };
  }

  async getGroup(id: string): Promise<GroupInfo | null> {
    const row = this.st.groupById.get(id) as GroupRow | undefined;
    return row ? groupFromRow(row) : null;
  }

  async listGroups(query: GroupsQuery): Promise<GroupInfo[]> {
    const st = this.st;
    const [all, before, after] =
      query.roots === true
        ? [st.listRoots, st.listRootsBefore, st.listRootsAfter]
        : [st.listGroups, st.listGroupsBefore, st.listGroupsAfter];
    const rows =
      query.after !== undefined
        ? after.all(query.after, query.limit)
        : query.before !== undefined
          ? before.all(query.before, query.limit)
          : all.all(query.limit);
    return (rows as GroupRow[]).map(groupFromRow);
  }

  async listChildren(groupId: string, query: ChildrenQuery): Promise<GroupInfo[]> {
    const rows =
      query.after === undefined
        ? this.st.listChildren.all(groupId, query.limit)
        : this.st.listChildrenAfter.all(groupId, query.after, groupId, query.limit);
    return (rows as GroupRow[]).map(groupFromRow);
  }

  async countChildren(groupIds: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (groupIds.length === 0) return out;
    const rows = this.st.countChildren.all(JSON.stringify(groupIds)) as { id: string; n: number }[];
    for (const r of rows) out.set(r.id, r.n);
    return out;
  }

  async countLiveGroups(): Promise<LiveGroupCounts> {
    return this.st.countLiveGroups.get() as LiveGroupCounts;
  }

  async listTasks(groupId: string, query: TaskQuery): Promise<TaskView[]> {
    const after = query.after ?? -1;
    const rows =
      query.state === undefined
        ? this.st.listTasks.all(groupId, after, query.limit)
        : this.st.listTasksInState.all(groupId, query.state, after, query.limit);
    return (rows as TaskViewRow[]).map(taskViewFromRow);
  }

  async finishedTasks(groupId: string, afterSeq: number, limit: number): Promise<TaskView[]> {
    const rows = this.st.finishedTasks.all(groupId, afterSeq, limit) as TaskViewRow[];
    return rows.map(taskViewFromRow);
  }

  async taskPage(groupId: string, query: TaskPageQuery): Promise<TaskPage> {
    const st = this.st;
    const after = query.after ?? -1;
    const { state, limit, maxBytes } = query;
    const read = this.database.transaction((): TaskPage => {
      const sizes =
        state === undefined
          ? st.taskSizes.iterate(groupId, after, limit)
          : st.taskSizesInState.iterate(groupId, state, after, limit);
      const fit = withinBudget(sizes as Iterable<RowSize>, (r) => r.n, maxBytes);
      const last = fit.rows.at(-1);
      if (last === undefined) return { tasks: [], cut: false };
      const rows =
        state === undefined
          ? st.taskRange.all(groupId, after, last.k)
          : st.taskRangeInState.all(groupId, state, after, last.k);
      return { tasks: (rows as TaskViewRow[]).map(taskRecordFromRow), cut: fit.cut };
    });
    return read();
  }

  async finishedPage(groupId: string, query: FinishedPageQuery): Promise<TaskPage> {
    const st = this.st;
    const { afterSeq, limit, maxBytes } = query;
    const read = this.database.transaction((): TaskPage => {
      const sizes = st.finishedSizes.iterate(groupId, afterSeq, limit) as Iterable<RowSize>;
      const fit = withinBudget(sizes, (r) => r.n, maxBytes);
      const last = fit.rows.at(-1);
      if (last === undefined) return { tasks: [], cut: false };
      const rows = st.finishedRange.all(groupId, afterSeq, last.k) as TaskViewRow[];
      return { tasks: rows.map(taskRecordFromRow), cut: fit.cut };
    });
    return read();
  }

  async taskSummaries(groupId: string, query: TaskQuery): Promise<TaskSummary[]> {
    const after = query.after ?? -1;
    const rows =
      query.state === undefined
        ? this.st.taskSummaries.all(groupId, after, query.limit)
        : this.st.taskSummariesInState.all(groupId, query.state, after, query.limit);
    return (rows as Omit<TaskViewRow, 'value'>[]).map(taskSummaryFromRow);
  }

  async listEvents(afterSeq: number, limit: number): Promise<EventView[]> {
    return (this.st.listEvents.all(afterSeq, limit) as EventRow[]).map(eventFromRow);
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    return (this.st.listWorkers.all() as WorkerRow[]).map(workerFromRow);
  }

  async countTasks(): Promise<TaskCounts> {
    return this.st.countTasks.get() as TaskCounts;
  }
}
