/**
 * Applies one Tick inside an open SQLite transaction. Task rows are written as
 * each op is applied; the touched groups are loaded once into memory (see
 * tick-groups.ts), their counters and state changed there, and written back
 * once per group at the end.
 */
import type { GroupInfo } from '../core/types.js';
import { groupFromRow, toJson, type GroupRow } from './rows.js';
import type { Statements } from './sqlite-statements.js';
import type {
  AddOutcome,
  AddTasks,
  CancelOutcome,
  CheckpointOp,
  ClaimOp,
  ClaimedTask,
  CommitOp,
  ReadyTask,
  CreateOutcome,
  FailOp,
  NewEvent,
  NewGroup,
  RequeueOp,
  RetryOutcome,
  RevokedRun,
  RunOutcome,
  ScheduleTimeoutOp,
  SealOutcome,
  SpawnOp,
  SpawnOutcome,
  TaskAddOp,
  TaskAddOutcome,
  Tick,
  TickOutcome,
  WorkerRecord,
} from './store.js';
import {
  addVerdict,
  copyOptions,
  failsFast,
  isLive,
  repeatedAdd,
  snapshot,
  TickGroups,
} from './tick-groups.js';
import { applyOps } from './tick-ops.js';

interface ClaimRow {
  id: number;
  group_id: string;
  idx: number;
  attempt: number;
  errors: number;
  node_failures: number;
  input: string;
  checkpoint: string | null;
}

type GroupIdRow = { group_id: string } | undefined;
type TaskAddRow = { first_idx: number; count: number };

export class TickApplier {
  private readonly groups: TickGroups;
  private readonly revoked: RevokedRun[] = [];
  private readonly now: number;
  /** Tasks inserted by this tick, for tick.claimNew (at most its max). */
  private readonly inserted: ReadyTask[] = [];

  constructor(
    private readonly st: Statements,
    private readonly tick: Tick,
    /** The last finish_seq given; advanced as tasks become final. */
    public finishSeq: number,
  ) {
    this.now = tick.now;
    this.groups = new TickGroups(tick.now);
  }

  apply(): TickOutcome {
    const t = this.tick;
    const ops = applyOps(t, {
      createGroups: (g) => this.create(g),
      addTasks: (a) => this.add(a),
      seals: (id) => this.seal(id),
      cancels: (id) => this.cancel(id),
      retries: (id) => this.retry(id),
      taskAdds: (a) => this.taskAdd(a),
      spawns: (o) => this.spawn(o),
      commits: (c) => this.commit(c),
      failures: (f) => this.fail(f),
      requeues: (r) => this.requeue(r),
      checkpoints: (c) => this.checkpoint(c),
      scheduleTimeouts: (s) => this.scheduleTimeout(s),
    });
    const out: TickOutcome = { ...ops, claimed: [], revoked: this.revoked, changedGroups: [] };
    for (const w of t.workers ?? []) this.worker(w);
    for (const c of t.claims ?? []) {
      const claimed = this.claim(c);
      if (claimed) out.claimed.push(claimed);
    }
    if (t.claimNew && this.inserted.length > 0) {
      for (const c of t.claimNew.plan(this.inserted)) {
        const claimed = this.claim(c);
        if (claimed) out.claimed.push(claimed);
      }
    }
    for (const e of t.events ?? []) this.event(e);
    for (const g of this.groups.changed()) {
      this.st.updateGroup.run({
        id: g.id,
        state: g.state,
        total: g.total,
        pending: g.pending,
        running: g.running,
        succeeded: g.succeeded,
        failed: g.failed,
        canceled: g.canceled,
        sealedAt: g.sealedAt,
        finishedAt: g.finishedAt,
      });
      out.changedGroups.push(snapshot(g));
    }
    return out;
  }

  /** The group as it stands in this tick (loaded once), or null when unknown. */
  private group(id: string): GroupInfo | null {
    let g = this.groups.get(id);
    if (g === undefined) {
      const row = this.st.groupById.get(id) as GroupRow | undefined;
      g = row ? groupFromRow(row) : null;
      this.groups.put(id, g);
    }
    return g;
  }

  /** A group that a task row points at: it exists (foreign key). */
  private groupOf(id: string): GroupInfo {
    const g = this.group(id);
    if (!g) throw new Error(`task of unknown group ${id}`);
    return g;
  }

  private nextSeq(): number {
    return ++this.finishSeq;
  }

  private create(n: NewGroup): CreateOutcome {
    if (n.idempotencyKey !== null) {
      const row = this.st.groupIdByKey.get(n.idempotencyKey) as { id: string } | undefined;
      const existing = row ? this.group(row.id) : null;
      if (existing) {
        const status = existing.handler === n.handler ? 'existing' : 'conflict';
        return { status, group: snapshot(existing) };
      }
    }
    const g = this.groups.create(n);
    this.insertGroup(g, null);
    this.insertTasks(g, n.inputs);
    this.groups.settle(g);
    return { status: 'created', group: snapshot(g) };
  }

  private insertGroup(g: GroupInfo, spawn: { key: string; keepChildren: boolean } | null): void {
    this.st.insertGroup.run({
      id: g.id,
      handler: g.handler,
      state: g.state,
      policy: g.policy,
      idempotencyKey: g.idempotencyKey,
      options: JSON.stringify(g.options),
      createdAt: g.createdAt,
      sealedAt: g.sealedAt,
      parentGroupId: g.parent?.groupId ?? null,
      parentTaskId: g.parent?.taskId ?? null,
      spawnKey: spawn?.key ?? null,
      keepChildren: spawn?.keepChildren ? 1 : 0,
    });
  }

  /** A running task's child group (SpawnOp): fenced, then keyed. */
  private spawn(o: SpawnOp): SpawnOutcome {
    const row = this.st.fencedGroup.get(...fence(o)) as GroupIdRow;
    if (!row) return { status: this.miss(o.taskId) };
    const prev = this.st.spawnedGroup.get(o.taskId, o.key) as { id: string } | undefined;
    if (prev) {
      const existing = this.groupOf(prev.id);
      const status = existing.handler === o.group.handler ? 'existing' : 'conflict';
      return { status, group: snapshot(existing) };
    }
    const n = { ...o.group, idempotencyKey: null, open: false };
    const g = this.groups.create(n, { groupId: row.group_id, taskId: o.taskId });
    this.insertGroup(g, { key: o.key, keepChildren: o.keepChildren });
    this.insertTasks(g, o.group.inputs);
    this.groups.settle(g);
    return { status: 'created', group: snapshot(g) };
  }

  private insertTasks(g: GroupInfo, inputs: unknown[]): void {
    const priority = g.options.priority;
    const keep = Math.min(inputs.length, (this.tick.claimNew?.max ?? 0) - this.inserted.length);
    const requires = g.options.requires;
    for (let i = 0; i < inputs.length; i++) {
      const r = this.st.insertTask.run(g.id, g.total + i, priority, toJson(inputs[i]));
      if (i < keep) {
        const taskId = Number(r.lastInsertRowid);
        const { maxConcurrency, concurrencyKey } = g.options;
        this.inserted.push({
          taskId,
          groupId: g.id,
          handler: g.handler,
          priority,
          requires,
          maxConcurrency,
          concurrencyKey,
        });
      }
    }
    this.groups.move(g, null, 'pending', inputs.length);
  }

  private add(a: AddTasks): AddOutcome {
    const g = this.group(a.groupId);
    if (!g) return { status: 'not_found' };
    const verdict = addVerdict(g, a);
    if (verdict !== 'added') return { status: verdict, group: snapshot(g) };
    this.insertTasks(g, a.inputs);
    return { status: 'added', group: snapshot(g) };
  }

  private seal(id: string): SealOutcome {
    const g = this.group(id);
    if (!g) return { status: 'not_found' };
    if (g.state === 'open') this.groups.seal(g);
    return { status: 'sealed', group: snapshot(g) };
  }

  private cancel(id: string): CancelOutcome {
    const g = this.group(id);
    if (!g) return { status: 'not_found' };
    const changed = this.endGroup(g);
    const descendants = this.cancelDescendants(id);
    return { status: 'canceled', group: snapshot(g), changed, descendants };
  }

  /** Cancels a live group (its pending and running tasks); false when it had ended. */
  private endGroup(g: GroupInfo): boolean {
    if (!isLive(g)) return false;
    this.cancelRest(g);
    this.groups.endCanceled(g);
    return true;
  }

  /** Cancels every live group under the group (any depth); how many it canceled. */
  private cancelDescendants(id: string): number {
    const rows = this.st.descendants.all(id) as { id: string }[];
    let n = 0;
    for (const r of rows) if (this.endGroup(this.groupOf(r.id))) n++;
    return n;
  }

  /**
   * failFast: the rest of the group is canceled (an open group sealed), and
   * the live children its canceled tasks spawned without keepChildren end.
   */
  private failFast(g: GroupInfo): void {
    this.cancelRest(g);
    if (g.state === 'open') this.groups.seal(g);
    this.cancelUnkept(this.st.unkeptChildrenOfCanceled.all(g.id));
  }

  /** Child groups whose parent task ended without them: each ends, with its descendants. */
  private cancelUnkept(rows: unknown[]): void {
    for (const r of rows as { id: string }[]) {
      this.endGroup(this.groupOf(r.id));
      this.cancelDescendants(r.id);
    }
  }

  /** Cancels every pending and running task of a group; running ones are revoked. */
  private cancelRest(g: GroupInfo): void {
    if (g.running > 0) {
      const rows = this.st.cancelRunning.all({ now: this.now, seq: this.finishSeq, groupId: g.id });
      const runs = (rows as { id: number; attempt: number; worker_id: string }[])
        .map((r) => ({ taskId: r.id, attempt: r.attempt, workerId: r.worker_id }))
        .sort((x, y) => x.taskId - y.taskId);
      this.revoked.push(...runs);
      this.finishSeq += runs.length;
      this.groups.move(g, 'running', 'canceled', runs.length);
    }
    if (g.pending > 0) {
      const r = this.st.cancelPending.run({ now: this.now, seq: this.finishSeq, groupId: g.id });
      this.finishSeq += r.changes;
      this.groups.move(g, 'pending', 'canceled', r.changes);
    }
  }

  /** The retry op: every failed task of the group back to pending (see store.ts). */
  private retry(id: string): RetryOutcome {
    const g = this.group(id);
    if (!g) return { status: 'not_found' };
    if (g.state === 'canceled') return { status: 'canceled', group: snapshot(g) };
    const n = g.failed > 0 ? this.st.retryFailed.run(id).changes : 0;
    this.groups.retryFailed(g, n);
    return { status: 'retried', retried: n, group: snapshot(g) };
  }

  /** A running task's add (TaskAddOp): fenced, then keyed. */
  private taskAdd(a: TaskAddOp): TaskAddOutcome {
    const row = this.st.fencedGroup.get(...fence(a)) as GroupIdRow;
    if (!row) return { status: this.miss(a.taskId) };
    const count = a.inputs.length;
    const prev = this.st.taskAdd.get(a.taskId, a.key) as TaskAddRow | undefined;
    if (prev) return repeatedAdd({ first: prev.first_idx, count: prev.count }, count);
    const g = this.groupOf(row.group_id);
    const first = g.total;
    this.insertTasks(g, a.inputs);
    this.st.insertTaskAdd.run(a.taskId, a.key, first, count);
    return { status: 'added', first, count };
  }

  /** Why a fenced write did not apply. */
  private miss(taskId: number): Exclude<RunOutcome, 'applied'> {
    const row = this.st.taskState.get(taskId) as { state: string } | undefined;
    const s = row?.state;
    return s === 'succeeded' || s === 'failed' || s === 'canceled' ? 'already_final' : 'stale';
  }

  private commit(c: CommitOp): RunOutcome {
    const seq = this.finishSeq + 1;
    const row = this.st.commit.get(toJson(c.value), this.now, seq, ...fence(c)) as GroupIdRow;
    if (!row) return this.miss(c.taskId);
    this.nextSeq();
    this.groups.move(this.groupOf(row.group_id), 'running', 'succeeded');
    return 'applied';
  }

  private fail(f: FailOp): RunOutcome {
    const error = JSON.stringify(f.error);
    const errors = f.nodeFailure ? 0 : 1;
    const nodeFailures = f.nodeFailure ? 1 : 0;
    if (f.retryAt !== null) {
      const row = this.st.failRetry.get(
        error,
        f.retryAt,
        errors,
        nodeFailures,
        ...fence(f),
      ) as GroupIdRow;
      if (!row) return this.miss(f.taskId);
      this.groups.move(this.groupOf(row.group_id), 'running', 'pending');
      return 'applied';
    }
    const seq = this.finishSeq + 1;
    const row = this.st.failFinal.get(
      error,
      this.now,
      seq,
      errors,
      nodeFailures,
      ...fence(f),
    ) as GroupIdRow;
    if (!row) return this.miss(f.taskId);
    this.nextSeq();
    const g = this.groupOf(row.group_id);
    this.groups.move(g, 'running', 'failed');
    this.cancelUnkept(this.st.unkeptChildren.all(f.taskId));
    if (failsFast(g)) this.failFast(g);
    return 'applied';
  }

  /** Every pending task of the group fails for good (ScheduleTimeoutOp). */
  private scheduleTimeout(s: ScheduleTimeoutOp): number {
    const g = this.group(s.groupId);
    if (!g || !isLive(g) || g.pending === 0) return 0;
    const error = JSON.stringify(s.error);
    const args = { error, now: this.now, seq: this.finishSeq, groupId: g.id };
    const n = this.st.failPending.run(args).changes;
    this.finishSeq += n;
    this.groups.move(g, 'pending', 'failed', n);
    if (failsFast(g)) this.failFast(g);
    return n;
  }

  private requeue(r: RequeueOp): RunOutcome {
    const row = this.st.requeue.get(r.runAt, r.nodeFailure ? 1 : 0, ...fence(r)) as GroupIdRow;
    if (!row) return this.miss(r.taskId);
    this.groups.move(this.groupOf(row.group_id), 'running', 'pending');
    return 'applied';
  }

  private checkpoint(c: CheckpointOp): RunOutcome {
    const r = this.st.checkpoint.run(toJson(c.state), ...fence(c));
    return r.changes > 0 ? 'applied' : this.miss(c.taskId);
  }

  private worker(w: WorkerRecord): void {
    this.st.upsertWorker.run({
      ...w,
      labels: JSON.stringify(w.labels),
      handlers: JSON.stringify(w.handlers),
    });
  }

  private claim(c: ClaimOp): ClaimedTask | null {
    const row = this.st.claim.get(c.workerId, this.now, c.taskId, this.now) as ClaimRow | undefined;
    if (!row) return null;
    const g = this.groupOf(row.group_id);
    this.groups.move(g, 'pending', 'running');
    return {
      taskId: row.id,
      groupId: row.group_id,
      index: row.idx,
      handler: g.handler,
      attempt: row.attempt,
      workerId: c.workerId,
      startedAt: this.now,
      errors: row.errors,
      nodeFailures: row.node_failures,
      options: copyOptions(g.options),
      input: JSON.parse(row.input),
      checkpoint: row.checkpoint === null ? undefined : JSON.parse(row.checkpoint),
    };
  }

  private event(e: NewEvent): void {
    this.st.insertEvent.run({
      at: e.at ?? this.now,
      type: e.type,
      workerId: e.workerId ?? null,
      groupId: e.groupId ?? null,
      taskId: e.taskId ?? null,
      data: e.data === undefined ? null : JSON.stringify(e.data),
    });
  }
}

/** The fence parameters, in the order of FENCE in sqlite-statements.ts. */
function fence(op: {
  taskId: number;
  attempt: number;
  workerId: string;
}): [number, number, string] {
  return [op.taskId, op.attempt, op.workerId];
}
