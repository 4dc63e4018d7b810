/**
 * An in-memory reference model of the Store contract, for tests only. It is
 * written to be obviously right rather than fast (whole-table scans), and
 * independently of the SQL stores, so that the property test in contract.ts
 * can run the same random ticks through both and compare every answer.
 * Not durable: `close()` keeps the data, so a reopened ModelStore is the same one.
 */
import { checkFence } from '../../src/core/fence.js';
import { nextGroupState } from '../../src/core/group.js';
import type { GroupInfo, TaskError, TaskState } from '../../src/core/types.js';
import type { EventView, TaskView } from '../../src/protocol/http.js';
import type {
  AddOutcome,
  AddTasks,
  CancelOutcome,
  ClaimedTask,
  CreateOutcome,
  Lease,
  NewGroup,
  ReadyTask,
  RetryOutcome,
  RevokedRun,
  RunOutcome,
  ScheduleTimeoutOp,
  SealOutcome,
  SpawnOp,
  SpawnOutcome,
  TaskAddOp,
  TaskAddOutcome,
  FinishedPageQuery,
  ChildrenQuery,
  GroupsQuery,
  LiveGroupCounts,
  Store,
  TaskCounts,
  TaskPage,
  TaskPageQuery,
  TaskQuery,
  TaskRecord,
  TaskSummary,
  Tick,
  TickOutcome,
  WorkerRecord,
} from '../../src/store/store.js';
import { taskViewFromRecord, withinBudget } from '../../src/store/rows.js';
import { applyOps } from '../../src/store/tick-ops.js';

export interface ModelTask {
  taskId: number;
  groupId: string;
  index: number;
  state: TaskState;
  attempt: number;
  workerId: string | null;
  errors: number;
  nodeFailures: number;
  runAt: number;
  priority: number;
  input: string;
  checkpoint: string | null;
  value: string | null;
  error: TaskError | null;
  startedAt: number | null;
  finishedAt: number | null;
  seq: number | null;
}

const json = (v: unknown): string => JSON.stringify(v) ?? 'null';
const clone = <T>(v: T): T => structuredClone(v);

export class ModelStore implements Store {
  readonly groups: GroupInfo[] = [];
  readonly tasks: ModelTask[] = [];
  private readonly workers = new Map<string, WorkerRecord>();
  private readonly events: EventView[] = [];
  /** The adds of running tasks, by `${taskId} ${key}`: the first add's indexes. */
  readonly taskAdds = new Map<string, { first: number; count: number }>();
  /** The spawns of running tasks, by `${taskId} ${key}`: the child group's id and keepChildren. */
  readonly spawns = new Map<string, { groupId: string; keep: boolean }>();
  private finishSeq = 0;

  async open(): Promise<void> {}
  async close(): Promise<void> {}

  async commitTick(tick: Tick): Promise<TickOutcome> {
    // All or nothing, like a transaction: work on a copy of the state.
    const saved = clone({
      g: this.groups,
      t: this.tasks,
      s: this.finishSeq,
      a: this.taskAdds,
      sp: this.spawns,
    });
    try {
      return new ModelTick(this, tick.now).run(tick);
    } catch (err) {
      this.groups.splice(0, this.groups.length, ...saved.g);
      this.tasks.splice(0, this.tasks.length, ...saved.t);
      this.finishSeq = saved.s;
      this.taskAdds.clear();
      for (const [k, v] of saved.a) this.taskAdds.set(k, v);
      this.spawns.clear();
      for (const [k, v] of saved.sp) this.spawns.set(k, v);
      throw err;
    }
  }

  /** @internal for ModelTick */
  nextSeq(): number {
    return ++this.finishSeq;
  }
  /** @internal for ModelTick */
  putWorker(w: WorkerRecord): void {
    this.workers.set(w.workerId, clone(w));
  }
  /** @internal for ModelTick */
  putEvent(e: EventView): void {
    this.events.push(e);
  }

  async pendingGroups(): Promise<GroupInfo[]> {
    return this.groups
      .map((g, i) => ({ g, i }))
      .filter(({ g }) => g.pending > 0 && g.state !== 'canceled')
      .sort((a, b) => a.g.createdAt - b.g.createdAt || a.i - b.i)
      .map(({ g }) => clone(g));
  }

  async readyTasks(groupIds: string[], now: number, perGroup: number): Promise<ReadyTask[]> {
    const out: ReadyTask[] = [];
    for (const id of groupIds) {
      const g = this.groups.find((x) => x.id === id);
      if (!g) continue;
      const ready = this.tasks
        .filter((t) => t.groupId === id && t.state === 'pending' && t.runAt <= now)
        .sort((a, b) => b.priority - a.priority || a.index - b.index)
        .slice(0, perGroup);
      for (const t of ready) {
        const requires = [...g.options.requires];
        out.push({
          taskId: t.taskId,
          groupId: id,
          handler: g.handler,
          priority: t.priority,
          requires,
          maxConcurrency: g.options.maxConcurrency,
          concurrencyKey: g.options.concurrencyKey,
        });
      }
    }
    return out;
  }

  async nextRunAt(now: number): Promise<number | null> {
    const times = this.tasks
      .filter((t) => t.state === 'pending' && t.runAt > now)
      .map((t) => t.runAt);
    return times.length === 0 ? null : Math.min(...times);
  }

  async recover(): Promise<{ leases: Lease[]; workers: WorkerRecord[] }> {
    const leases = this.tasks.filter((t) => t.state === 'running').map((t) => this.lease(t));
    const workers = [...this.workers.values()]
      .filter((w) => w.state !== 'dead' && w.state !== 'left')
      .sort(byConnected)
      .map(clone);
    return { leases, workers };
  }

  /** @internal */
  lease(t: ModelTask): Lease {
    const g = this.groups.find((x) => x.id === t.groupId);
    if (!g) throw new Error(`task ${t.taskId} has no group`);
    return {
      taskId: t.taskId,
      groupId: t.groupId,
      index: t.index,
      handler: g.handler,
      attempt: t.attempt,
      workerId: t.workerId ?? '',
      startedAt: t.startedAt ?? 0,
      errors: t.errors,
      nodeFailures: t.nodeFailures,
      options: clone(g.options),
    };
  }

  async getGroup(id: string): Promise<GroupInfo | null> {
    const g = this.groups.find((x) => x.id === id);
    return g ? clone(g) : null;
  }

  async listGroups(query: GroupsQuery): Promise<GroupInfo[]> {
    const before = query.before;
    const newestFirst = this.groups
      .map((g, i) => ({ g, i }))
      .filter(({ g }) => before === undefined || g.createdAt < before)
      .sort((a, b) => b.g.createdAt - a.g.createdAt || b.i - a.i);
    // after: the groups that come after it in that order (none when it is no group).
    const from =
      query.after === undefined ? 0 : newestFirst.findIndex(({ g }) => g.id === query.after);
    if (from < 0) return [];
    return newestFirst
      .slice(query.after === undefined ? 0 : from + 1)
      .filter(({ g }) => query.roots !== true || !g.parent)
      .slice(0, query.limit)
      .map(({ g }) => clone(g));
  }

  async listChildren(groupId: string, query: ChildrenQuery): Promise<GroupInfo[]> {
    // this.groups is in insertion order: creation order.
    const children = this.groups.filter((g) => g.parent?.groupId === groupId);
    const from =
      query.after === undefined ? 0 : children.findIndex((g) => g.id === query.after) + 1;
    if (from === 0 && query.after !== undefined) return [];
    return children.slice(from, from + query.limit).map(clone);
  }

  async countChildren(groupIds: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const wanted = new Set(groupIds);
    for (const g of this.groups) {
      const p = g.parent?.groupId;
      if (p !== undefined && wanted.has(p)) out.set(p, (out.get(p) ?? 0) + 1);
    }
    return out;
  }

  async countLiveGroups(): Promise<LiveGroupCounts> {
    const live = this.groups.filter((g) => g.state === 'open' || g.state === 'sealed');
    const child = live.filter((g) => g.parent).length;
    return { root: live.length - child, child };
  }

  async listTasks(groupId: string, query: TaskQuery): Promise<TaskView[]> {
    return this.inputOrder(groupId, query).map(view);
  }

  async finishedTasks(groupId: string, afterSeq: number, limit: number): Promise<TaskView[]> {
    return this.finishingOrder(groupId, afterSeq, limit).map(view);
  }

  async taskPage(groupId: string, query: TaskPageQuery): Promise<TaskPage> {
    return page(this.inputOrder(groupId, query), query.maxBytes);
  }

  async finishedPage(groupId: string, query: FinishedPageQuery): Promise<TaskPage> {
    const { afterSeq, limit, maxBytes } = query;
    return page(this.finishingOrder(groupId, afterSeq, limit), maxBytes);
  }

  async taskSummaries(groupId: string, query: TaskQuery): Promise<TaskSummary[]> {
    return this.inputOrder(groupId, query).map((t) => {
      const { value: _value, ...summary } = view({ ...t, value: null });
      return summary;
    });
  }

  private inputOrder(groupId: string, query: TaskQuery): ModelTask[] {
    const after = query.after ?? -1;
    return this.tasks
      .filter((t) => t.groupId === groupId && t.index > after)
      .filter((t) => query.state === undefined || t.state === query.state)
      .sort((a, b) => a.index - b.index)
      .slice(0, query.limit);
  }

  private finishingOrder(groupId: string, afterSeq: number, limit: number): ModelTask[] {
    return this.tasks
      .filter((t) => t.groupId === groupId && t.seq !== null && t.seq > afterSeq)
      .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0))
      .slice(0, limit);
  }

  async listEvents(afterSeq: number, limit: number): Promise<EventView[]> {
    return this.events
      .filter((e) => e.seq > afterSeq)
      .slice(0, limit)
      .map(clone);
  }

  async listWorkers(): Promise<WorkerRecord[]> {
    return [...this.workers.values()].sort(byConnected).map(clone);
  }

  /** Counted from the tasks themselves, not the group counters: the SQL stores sum those. */
  async countTasks(): Promise<TaskCounts> {
    const out: TaskCounts = { pending: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 };
    for (const t of this.tasks) out[t.state]++;
    return out;
  }

  /** @internal */
  eventCount(): number {
    return this.events.length;
  }
}

function byConnected(a: WorkerRecord, b: WorkerRecord): number {
  return (
    a.connectedAt - b.connectedAt ||
    (a.workerId < b.workerId ? -1 : a.workerId > b.workerId ? 1 : 0)
  );
}

function view(t: ModelTask): TaskView {
  return taskViewFromRecord(record(t));
}

function record(t: ModelTask): TaskRecord {
  return {
    taskId: t.taskId,
    groupId: t.groupId,
    index: t.index,
    state: t.state,
    attempt: t.attempt,
    workerId: t.workerId,
    startedAt: t.startedAt,
    finishedAt: t.finishedAt,
    seq: t.seq,
    valueJson: t.value,
    errorJson: t.error === null ? null : json(t.error),
  };
}

/** The page's rows cut by bytes, the way every store cuts them (withinBudget). */
function page(tasks: ModelTask[], maxBytes: number): TaskPage {
  const records = tasks.map(record);
  const bytes = (s: string | null): number => (s === null ? 0 : Buffer.byteLength(s));
  const fit = withinBudget(records, (r) => bytes(r.valueJson) + bytes(r.errorJson), maxBytes);
  return { tasks: fit.rows, cut: fit.cut };
}

type Fenced = { taskId: number; attempt: number; workerId: string };

/** One tick applied to the model, op by op, in the documented order. */
class ModelTick {
  private readonly changed: GroupInfo[] = [];
  private readonly revoked: RevokedRun[] = [];

  constructor(
    private readonly m: ModelStore,
    private readonly now: number,
  ) {}

  run(tick: Tick): TickOutcome {
    const ops = applyOps(tick, {
      createGroups: (g) => this.create(g),
      addTasks: (a) => this.add(a),
      seals: (id) => this.seal(id),
      cancels: (id) => this.cancel(id),
      retries: (id) => this.retry(id),
      taskAdds: (a) => this.taskAdd(a),
      spawns: (o) => this.spawn(o),
      commits: (c) => this.fenced(c, (t) => this.finish(t, 'succeeded', { value: json(c.value) })),
      failures: (f) =>
        this.fenced(f, (t) => {
          if (f.nodeFailure) t.nodeFailures++;
          else t.errors++;
          t.error = clone(f.error);
          if (f.retryAt !== null) return this.toPending(t, f.retryAt);
          this.finish(t, 'failed', {});
          this.cancelUnkept(t.taskId);
          this.failFast(t.groupId);
        }),
      requeues: (r) =>
        this.fenced(r, (t) => {
          if (r.nodeFailure) t.nodeFailures++;
          this.toPending(t, r.runAt);
        }),
      checkpoints: (c) =>
        this.fenced(c, (t) => {
          t.checkpoint = json(c.state);
        }),
      scheduleTimeouts: (s) => this.scheduleTimeout(s),
    });
    const out: TickOutcome = { ...ops, claimed: [], revoked: this.revoked, changedGroups: [] };
    for (const w of tick.workers ?? []) this.m.putWorker(w);
    for (const c of tick.claims ?? []) {
      const t = this.m.tasks.find((x) => x.taskId === c.taskId);
      if (!t || t.state !== 'pending' || t.runAt > this.now) continue;
      t.state = 'running';
      t.attempt++;
      t.workerId = c.workerId;
      t.startedAt = this.now;
      this.bump(t.groupId, 'pending', 'running');
      out.claimed.push(this.claimed(t));
    }
    for (const e of tick.events ?? []) {
      this.m.putEvent({
        seq: this.m.eventCount() + 1,
        at: e.at ?? this.now,
        type: e.type,
        workerId: e.workerId ?? null,
        groupId: e.groupId ?? null,
        taskId: e.taskId ?? null,
        ...(e.data === undefined ? {} : { data: clone(e.data) }),
      });
    }
    out.changedGroups = this.changed.map(clone);
    return out;
  }

  private claimed(t: ModelTask): ClaimedTask {
    return {
      ...this.m.lease(t),
      input: JSON.parse(t.input),
      checkpoint: t.checkpoint === null ? undefined : JSON.parse(t.checkpoint),
    };
  }

  private group(id: string): GroupInfo | undefined {
    return this.m.groups.find((g) => g.id === id);
  }

  private touch(g: GroupInfo): void {
    const next = nextGroupState(g.state, g);
    if (next !== g.state) {
      g.state = next;
      if (next === 'done') g.finishedAt = this.now;
    }
    if (!this.changed.includes(g)) this.changed.push(g);
  }

  private bump(
    groupId: string,
    from: keyof GroupInfo & TaskState,
    to: keyof GroupInfo & TaskState,
  ): void {
    const g = this.group(groupId);
    if (!g) throw new Error(`no group ${groupId}`);
    g[from]--;
    g[to]++;
    this.touch(g);
  }

  private fenced(op: Fenced, apply: (t: ModelTask) => void): RunOutcome {
    const t = this.m.tasks.find((x) => x.taskId === op.taskId);
    if (!t) return 'stale';
    const f = checkFence(t, op.attempt, op.workerId);
    if (f !== 'ok') return f;
    apply(t);
    return 'applied';
  }

  /** A final failure in a failFast group cancels the rest of it. */
  private failFast(groupId: string): void {
    const g = this.group(groupId);
    if (g?.policy === 'failFast' && (g.state === 'open' || g.state === 'sealed')) {
      this.cancelRest(g);
      if (g.state === 'open') this.sealOpen(g);
      const canceled = this.m.tasks.filter((t) => t.groupId === g.id && t.state === 'canceled');
      for (const t of canceled) this.cancelUnkept(t.taskId);
    }
  }

  /** Every pending task of a live group fails for good, in input order. */
  private scheduleTimeout(s: ScheduleTimeoutOp): number {
    const g = this.group(s.groupId);
    if (!g || (g.state !== 'open' && g.state !== 'sealed')) return 0;
    const pending = this.m.tasks
      .filter((t) => t.groupId === g.id && t.state === 'pending')
      .sort((a, b) => a.index - b.index);
    for (const t of pending) {
      t.error = clone(s.error);
      this.finish(t, 'failed', {});
    }
    if (pending.length > 0) this.failFast(g.id);
    return pending.length;
  }

  private toPending(t: ModelTask, runAt: number): void {
    t.state = 'pending';
    t.runAt = runAt;
    t.workerId = null;
    this.bump(t.groupId, 'running', 'pending');
  }

  private finish(
    t: ModelTask,
    state: 'succeeded' | 'failed' | 'canceled',
    f: { value?: string },
  ): void {
    const from = t.state as 'pending' | 'running';
    t.state = state;
    if (f.value !== undefined) t.value = f.value;
    // A success leaves no error behind from the attempts before it.
    if (state === 'succeeded') t.error = null;
    t.finishedAt = this.now;
    t.seq = this.m.nextSeq();
    this.bump(t.groupId, from, state);
  }

  private create(n: NewGroup, parent: GroupInfo['parent'] = null): CreateOutcome {
    const same =
      n.idempotencyKey === null
        ? undefined
        : this.m.groups.find((g) => g.idempotencyKey === n.idempotencyKey);
    if (same)
      return { status: same.handler === n.handler ? 'existing' : 'conflict', group: clone(same) };
    const g: GroupInfo = {
      id: n.id,
      handler: n.handler,
      state: n.open ? 'open' : 'sealed',
      policy: n.policy,
      idempotencyKey: n.idempotencyKey,
      createdAt: this.now,
      sealedAt: n.open ? null : this.now,
      finishedAt: null,
      options: clone(n.options),
      parent: parent ? { ...parent } : null,
      total: 0,
      pending: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      canceled: 0,
    };
    this.m.groups.push(g);
    this.append(g, n.inputs);
    return { status: 'created', group: clone(g) };
  }

  private append(g: GroupInfo, inputs: unknown[]): void {
    for (const input of inputs) {
      this.m.tasks.push({
        taskId: this.m.tasks.length + 1,
        groupId: g.id,
        index: g.total++,
        state: 'pending',
        attempt: 0,
        workerId: null,
        errors: 0,
        nodeFailures: 0,
        runAt: 0,
        priority: g.options.priority,
        input: json(input),
        checkpoint: null,
        value: null,
        error: null,
        startedAt: null,
        finishedAt: null,
        seq: null,
      });
      g.pending++;
    }
    this.touch(g);
  }

  private add(a: AddTasks): AddOutcome {
    const g = this.group(a.groupId);
    if (!g) return { status: 'not_found' };
    const end = (a.offset ?? 0) + a.inputs.length;
    if (a.offset !== null && a.offset < g.total && end <= g.total)
      return { status: 'duplicate', group: clone(g) };
    if (g.state !== 'open') return { status: 'sealed', group: clone(g) };
    if (a.offset !== null && a.offset !== g.total)
      return { status: 'offset_mismatch', group: clone(g) };
    if (a.inputs.length > 0) this.append(g, a.inputs);
    return { status: 'added', group: clone(g) };
  }

  /** Fenced, then keyed: a repeat of a key adds nothing and answers the first add. */
  private taskAdd(a: TaskAddOp): TaskAddOutcome {
    const t = this.m.tasks.find((x) => x.taskId === a.taskId);
    if (!t) return { status: 'stale' };
    const f = checkFence(t, a.attempt, a.workerId);
    if (f !== 'ok') return { status: f };
    const key = `${a.taskId} ${a.key}`;
    const count = a.inputs.length;
    const prev = this.m.taskAdds.get(key);
    if (prev) {
      const status = prev.count === count ? 'duplicate' : 'conflict';
      return { status, first: prev.first, count: prev.count };
    }
    const g = this.group(t.groupId);
    if (!g) throw new Error(`task ${t.taskId} has no group`);
    const first = g.total;
    if (count > 0) this.append(g, a.inputs);
    this.m.taskAdds.set(key, { first, count });
    return { status: 'added', first, count };
  }

  private sealOpen(g: GroupInfo): void {
    g.state = 'sealed';
    g.sealedAt = this.now;
    this.touch(g);
  }

  private seal(id: string): SealOutcome {
    const g = this.group(id);
    if (!g) return { status: 'not_found' };
    if (g.state === 'open') this.sealOpen(g);
    return { status: 'sealed', group: clone(g) };
  }

  /** Running tasks first, then pending ones, each in input order (the finishing order SQL gives). */
  private cancelRest(g: GroupInfo): void {
    const mine = this.m.tasks.filter((t) => t.groupId === g.id).sort((a, b) => a.index - b.index);
    for (const t of mine.filter((x) => x.state === 'running')) {
      this.revoked.push({ taskId: t.taskId, attempt: t.attempt, workerId: t.workerId ?? '' });
      this.finish(t, 'canceled', {});
    }
    for (const t of mine.filter((x) => x.state === 'pending')) this.finish(t, 'canceled', {});
  }

  private cancel(id: string): CancelOutcome {
    const g = this.group(id);
    if (!g) return { status: 'not_found' };
    const changed = this.endGroup(g);
    let descendants = 0;
    for (const d of this.descendants(id)) if (this.endGroup(d)) descendants++;
    return { status: 'canceled', group: clone(g), changed, descendants };
  }

  private endGroup(g: GroupInfo): boolean {
    const live = g.state === 'open' || g.state === 'sealed';
    if (live) {
      this.cancelRest(g);
      g.state = 'canceled';
      g.finishedAt = this.now;
      this.touch(g);
    }
    return live;
  }

  /** Every group under the group, parents before children. */
  private descendants(id: string): GroupInfo[] {
    const out: GroupInfo[] = [];
    const queue = [id];
    while (queue.length > 0) {
      const p = queue.shift();
      for (const g of this.m.groups.filter((x) => x.parent?.groupId === p)) {
        out.push(g);
        queue.push(g.id);
      }
    }
    return out;
  }

  /** A task failed for good: the children it spawned without keepChildren end, with theirs. */
  private cancelUnkept(taskId: number): void {
    for (const [k, v] of this.m.spawns) {
      if (v.keep || !k.startsWith(`${taskId} `)) continue;
      const g = this.group(v.groupId);
      if (!g) continue;
      this.endGroup(g);
      for (const d of this.descendants(g.id)) this.endGroup(d);
    }
  }

  /** Fenced, then keyed: a repeat of a key creates nothing and answers the first spawn's group. */
  private spawn(o: SpawnOp): SpawnOutcome {
    const t = this.m.tasks.find((x) => x.taskId === o.taskId);
    if (!t) return { status: 'stale' };
    const f = checkFence(t, o.attempt, o.workerId);
    if (f !== 'ok') return { status: f };
    const key = `${o.taskId} ${o.key}`;
    const prev = this.m.spawns.get(key);
    const existing = prev && this.group(prev.groupId);
    if (existing) {
      const status = existing.handler === o.group.handler ? 'existing' : 'conflict';
      return { status, group: clone(existing) };
    }
    const n = { ...o.group, idempotencyKey: null, open: false };
    const out = this.create(n, { groupId: t.groupId, taskId: t.taskId });
    this.m.spawns.set(key, { groupId: o.group.id, keep: o.keepChildren });
    if (out.status !== 'created')
      throw new Error('a spawn without an idempotency key is always new');
    return { status: 'created', group: out.group };
  }

  /** Every failed task of a live or done group back to pending, budget reset, attempt kept. */
  private retry(id: string): RetryOutcome {
    const g = this.group(id);
    if (!g) return { status: 'not_found' };
    if (g.state === 'canceled') return { status: 'canceled', group: clone(g) };
    const failed = this.m.tasks.filter((t) => t.groupId === id && t.state === 'failed');
    for (const t of failed) {
      t.state = 'pending';
      t.workerId = null;
      t.errors = 0;
      t.nodeFailures = 0;
      t.runAt = 0;
      t.finishedAt = null;
      t.seq = null;
    }
    if (failed.length > 0) {
      if (g.state === 'done') {
        g.state = 'sealed';
        g.finishedAt = null;
      }
      g.failed -= failed.length;
      g.pending += failed.length;
      this.touch(g);
    }
    return { status: 'retried', retried: failed.length, group: clone(g) };
  }
}
