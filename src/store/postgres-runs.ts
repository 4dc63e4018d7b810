/**
 * The fenced run ops of one tick on PostgreSQL: commits, failures, requeues,
 * checkpoints. The tasks they name are loaded once (`FOR UPDATE`); each op is
 * then decided in memory, in tick order, with the fencing rule of core
 * (checkFence) against the task as the earlier ops of the tick left it. That
 * gives the answers of an op-by-op applier: a task committed twice in one
 * tick is applied then already_final; a final failure in a failFast group
 * ends the group, and later ops about its runs are already_final. The
 * decisions are then written with one statement per kind, each fenced again
 * in SQL and checked to touch exactly the rows decided.
 *
 * Write order keeps the database in step with the decisions: commits, then
 * failures, then the failFast ends (which cancel what those left pending or
 * running), then requeues and checkpoints (which never touch an ended group).
 */
import { checkFence } from '../core/fence.js';
import type { GroupInfo, TaskState } from '../core/types.js';
import type { StatementName } from './postgres-sql.js';
import { toJson } from './rows.js';
import type { CheckpointOp, CommitOp, FailOp, RequeueOp, RunOutcome, Tick } from './store.js';
import { failsFast, type TickGroups } from './tick-groups.js';

/** The end of a group's pending and running tasks, decided; finish_seq from base + 1. */
export interface EndPlan {
  groupId: string;
  base: number;
  running: number;
  pending: number;
}

/** What the run ops need of the tick applier. */
export interface RunContext {
  readonly now: number;
  readonly groups: TickGroups;
  finishSeq: number;
  rows<R>(name: StatementName, values: unknown[]): Promise<R[]>;
  write(name: StatementName, values: unknown[], expected: number): Promise<void>;
  loadGroups(ids: Iterable<string>): Promise<void>;
  groupOf(id: string): GroupInfo;
  planEnd(g: GroupInfo): EndPlan;
  execEnd(plan: EndPlan): Promise<void>;
  /**
   * Child groups whose parent task ended without them (failed for good:
   * `taskIds`; canceled by failFast in `failFastGroups`), spawned without
   * keepChildren: each ends, with its descendants.
   */
  cancelUnkept(taskIds: number[], failFastGroups: string[]): Promise<void>;
}

export interface RunOutcomes {
  commits: RunOutcome[];
  failures: RunOutcome[];
  requeues: RunOutcome[];
  checkpoints: RunOutcome[];
}

interface RunTask {
  id: number;
  groupId: string;
  state: TaskState;
  attempt: number;
  workerId: string | null;
}

interface TaskRow {
  id: number;
  group_id: string;
  state: TaskState;
  attempt: number;
  worker_id: string | null;
}

type Fenced = { taskId: number; attempt: number; workerId: string };

/** One array per statement parameter, filled op by op. */
export type Columns = unknown[][];
export const columns = (n: number): Columns => Array.from({ length: n }, () => []);
export function push(cols: Columns, ...values: unknown[]): void {
  values.forEach((v, i) => cols[i]?.push(v));
}

export async function applyRunOps(cx: RunContext, tick: Tick): Promise<RunOutcomes> {
  const ops = new RunOps(cx);
  return ops.apply(tick);
}

class RunOps {
  private readonly tasks = new Map<number, RunTask>();
  private readonly commits = columns(5);
  private readonly failures = columns(8);
  private readonly requeues = columns(5);
  /** The last applied checkpoint of each task wins. */
  private readonly checkpoints = new Map<number, [number, string, string]>();
  private readonly ends: EndPlan[] = [];
  /** Tasks that failed for good in this tick: their unkept children are canceled after the writes. */
  private readonly failedIds: number[] = [];
  /** Groups that failed fast in this tick: their canceled tasks' unkept children are canceled too. */
  private readonly failFastGroups: string[] = [];

  constructor(private readonly cx: RunContext) {}

  async apply(t: Tick): Promise<RunOutcomes> {
    const commits = t.commits ?? [];
    const failures = t.failures ?? [];
    const requeues = t.requeues ?? [];
    const checkpoints = t.checkpoints ?? [];
    const ids = new Set<number>();
    for (const list of [commits, failures, requeues, checkpoints]) {
      for (const op of list) ids.add(op.taskId);
    }
    if (ids.size === 0) return { commits: [], failures: [], requeues: [], checkpoints: [] };
    await this.load([...ids]);
    const out: RunOutcomes = {
      commits: commits.map((c) => this.commit(c)),
      failures: failures.map((f) => this.fail(f)),
      requeues: requeues.map((r) => this.requeue(r)),
      checkpoints: checkpoints.map((c) => this.checkpoint(c)),
    };
    await this.write();
    return out;
  }

  private async load(ids: number[]): Promise<void> {
    const rows = await this.cx.rows<TaskRow>('lockRunTasks', [ids]);
    for (const r of rows) {
      this.tasks.set(r.id, {
        id: r.id,
        groupId: r.group_id,
        state: r.state,
        attempt: r.attempt,
        workerId: r.worker_id,
      });
    }
    await this.cx.loadGroups(rows.map((r) => r.group_id));
  }

  /** The task when the op's fence holds, else why not. */
  private fence(op: Fenced): RunTask | RunOutcome {
    const t = this.tasks.get(op.taskId);
    if (!t) return 'stale';
    const f = checkFence(t, op.attempt, op.workerId);
    return f === 'ok' ? t : f;
  }

  private nextSeq(): number {
    return ++this.cx.finishSeq;
  }

  private commit(c: CommitOp): RunOutcome {
    const t = this.fence(c);
    if (typeof t === 'string') return t;
    t.state = 'succeeded';
    push(this.commits, t.id, c.attempt, c.workerId, toJson(c.value), this.nextSeq());
    this.cx.groups.move(this.cx.groupOf(t.groupId), 'running', 'succeeded');
    return 'applied';
  }

  private fail(f: FailOp): RunOutcome {
    const t = this.fence(f);
    if (typeof t === 'string') return t;
    const error = JSON.stringify(f.error);
    const errors = f.nodeFailure ? 0 : 1;
    const nodeFailures = f.nodeFailure ? 1 : 0;
    const g = this.cx.groupOf(t.groupId);
    if (f.retryAt !== null) {
      t.state = 'pending';
      t.workerId = null;
      push(
        this.failures,
        t.id,
        f.attempt,
        f.workerId,
        error,
        f.retryAt,
        errors,
        nodeFailures,
        null,
      );
      this.cx.groups.move(g, 'running', 'pending');
      return 'applied';
    }
    t.state = 'failed';
    this.failedIds.push(t.id);
    const seq = this.nextSeq();
    push(this.failures, t.id, f.attempt, f.workerId, error, null, errors, nodeFailures, seq);
    this.cx.groups.move(g, 'running', 'failed');
    if (failsFast(g)) {
      this.failFastGroups.push(g.id);
      this.ends.push(this.cx.planEnd(g));
      for (const other of this.tasks.values()) {
        if (other.groupId === g.id && (other.state === 'running' || other.state === 'pending')) {
          other.state = 'canceled';
        }
      }
      if (g.state === 'open') this.cx.groups.seal(g);
    }
    return 'applied';
  }

  private requeue(r: RequeueOp): RunOutcome {
    const t = this.fence(r);
    if (typeof t === 'string') return t;
    t.state = 'pending';
    t.workerId = null;
    push(this.requeues, t.id, r.attempt, r.workerId, r.runAt, r.nodeFailure ? 1 : 0);
    this.cx.groups.move(this.cx.groupOf(t.groupId), 'running', 'pending');
    return 'applied';
  }

  private checkpoint(c: CheckpointOp): RunOutcome {
    const t = this.fence(c);
    if (typeof t === 'string') return t;
    this.checkpoints.set(t.id, [c.attempt, c.workerId, toJson(c.state)]);
    return 'applied';
  }

  private async write(): Promise<void> {
    const cx = this.cx;
    const count = (cols: Columns) => cols[0]?.length ?? 0;
    if (count(this.commits) > 0) {
      await cx.write('commits', [cx.now, ...this.commits], count(this.commits));
    }
    if (count(this.failures) > 0) {
      await cx.write('failures', [cx.now, ...this.failures], count(this.failures));
    }
    for (const plan of this.ends) await cx.execEnd(plan);
    if (this.failedIds.length + this.failFastGroups.length > 0) {
      await cx.cancelUnkept(this.failedIds, this.failFastGroups);
    }
    if (count(this.requeues) > 0) {
      await cx.write('requeues', this.requeues, count(this.requeues));
    }
    if (this.checkpoints.size > 0) {
      const cols = columns(4);
      for (const [id, c] of this.checkpoints) push(cols, id, ...c);
      await cx.write('checkpoints', cols, this.checkpoints.size);
    }
  }
}
