/**
 * Applies one Tick inside an open PostgreSQL transaction, set-based: each kind
 * of op is one statement over arrays (unnest), not one round trip per op.
 *
 * The touched groups are loaded once `FOR UPDATE` into memory (tick-groups.ts),
 * changed there as the ops are decided, and written back in one statement at
 * the end, with finish_seq. Outcomes stay per op and in order, the same as the
 * SQLite store's op-by-op applier gives: group ops and fenced run ops are
 * decided in memory against rows loaded first (postgres-runs.ts), then written
 * in batches.
 */
import type pg from 'pg';
import { RegroupError } from '../core/errors.js';
import type { GroupInfo } from '../core/types.js';
import { applyTaskAdds } from './postgres-adds.js';
import { applySpawns } from './postgres-spawns.js';
import { applyRunOps, type EndPlan, type RunContext } from './postgres-runs.js';
import { stmt, type StatementName } from './postgres-sql.js';
import { groupFromRow, toJson, type GroupRow } from './rows.js';
import type {
  AddOutcome,
  AddTasks,
  CancelOutcome,
  ClaimOp,
  ClaimedTask,
  CreateOutcome,
  NewEvent,
  NewGroup,
  RetryOutcome,
  RevokedRun,
  ScheduleTimeoutOp,
  SealOutcome,
  Tick,
  TickOutcome,
  WorkerRecord,
} from './store.js';
import { addVerdict, copyOptions, failsFast, isLive, snapshot, TickGroups } from './tick-groups.js';

interface ClaimRow {
  id: number;
  group_id: string;
  idx: number;
  attempt: number;
  worker_id: string;
  errors: number;
  node_failures: number;
  input: string;
  checkpoint: string | null;
  ord: number;
}

interface CancelRow {
  id: number;
  attempt: number;
  worker_id: string;
  was: 'running' | 'pending';
}

export class PgTickApplier implements RunContext {
  readonly now: number;
  readonly groups: TickGroups;
  private readonly revoked: RevokedRun[] = [];
  /** Idempotency key → group id, of loaded groups and groups created in this tick. */
  private readonly keys = new Map<string, string>();
  private readonly newGroups: unknown[][] = [[], [], [], [], [], [], []];
  private readonly newTasks: unknown[][] = [[], [], [], []];

  constructor(
    private readonly db: pg.ClientBase,
    private readonly tick: Tick,
    /** The last finish_seq given; advanced as tasks become final. */
    public finishSeq: number,
  ) {
    this.now = tick.now;
    this.groups = new TickGroups(tick.now);
  }

  async apply(): Promise<TickOutcome> {
    const t = this.tick;
    await this.lockGroups();
    const createGroups = (t.createGroups ?? []).map((n) => this.create(n));
    const addTasks = (t.addTasks ?? []).map((a) => this.add(a));
    const seals = (t.seals ?? []).map((id) => this.seal(id));
    await this.insertNew();
    const cancels: CancelOutcome[] = [];
    for (const id of t.cancels ?? []) cancels.push(await this.cancel(id));
    const retries: RetryOutcome[] = [];
    for (const id of t.retries ?? []) retries.push(await this.retry(id));
    const taskAdds = await applyTaskAdds(this, t.taskAdds ?? []);
    const spawns = await applySpawns(this, t.spawns ?? []);
    const runs = await applyRunOps(this, t);
    const scheduleTimeouts = await this.scheduleTimeouts(t.scheduleTimeouts ?? []);
    await this.upsertWorkers(t.workers ?? []);
    const claimed = await this.claim(t.claims ?? []);
    await this.insertEvents(t.events ?? []);
    const changed = this.groups.changed();
    await this.writeGroups(changed);
    return {
      createGroups,
      addTasks,
      seals,
      cancels,
      retries,
      taskAdds,
      spawns,
      ...runs,
      scheduleTimeouts,
      claimed,
      revoked: this.revoked,
      changedGroups: changed.map(snapshot),
    };
  }

  async rows<R>(name: StatementName, values: unknown[]): Promise<R[]> {
    return (await this.db.query(stmt(name, values))).rows as R[];
  }

  /** Runs a batch write that must touch exactly `expected` rows: anything else means the rows moved under the tick. */
  async write(name: StatementName, values: unknown[], expected: number): Promise<void> {
    const r = await this.db.query(stmt(name, values));
    if (r.rowCount !== expected) {
      throw new RegroupError(
        'internal',
        `PostgreSQL store: ${name} wrote ${r.rowCount} rows where ${expected} were decided; the tick was rolled back`,
      );
    }
  }

  /** Loads (and locks) the groups of these ids that this tick has not loaded yet. */
  async loadGroups(ids: Iterable<string>): Promise<void> {
    const missing = [...new Set(ids)].filter((id) => this.groups.get(id) === undefined);
    if (missing.length === 0) return;
    for (const r of await this.rows<GroupRow>('lockGroupsById', [missing])) {
      this.groups.put(r.id, groupFromRow(r));
    }
    for (const id of missing) if (this.groups.get(id) === undefined) this.groups.put(id, null);
  }

  /** Every group the group ops name, by id or idempotency key, in one statement. */
  private async lockGroups(): Promise<void> {
    const t = this.tick;
    const ids = new Set([...(t.addTasks ?? []).map((a) => a.groupId), ...(t.seals ?? [])]);
    for (const id of t.cancels ?? []) ids.add(id);
    for (const id of t.retries ?? []) ids.add(id);
    const keys = new Set<string>();
    for (const n of t.createGroups ?? []) if (n.idempotencyKey !== null) keys.add(n.idempotencyKey);
    if (ids.size === 0 && keys.size === 0) return;
    for (const r of await this.rows<GroupRow>('lockGroups', [[...ids], [...keys]])) {
      this.groups.put(r.id, groupFromRow(r));
      if (r.idempotency_key !== null) this.keys.set(r.idempotency_key, r.id);
    }
    for (const id of ids) if (this.groups.get(id) === undefined) this.groups.put(id, null);
  }

  private create(n: NewGroup): CreateOutcome {
    if (n.idempotencyKey !== null) {
      const id = this.keys.get(n.idempotencyKey);
      const existing = id === undefined ? null : this.groups.get(id);
      if (existing) {
        const status = existing.handler === n.handler ? 'existing' : 'conflict';
        return { status, group: snapshot(existing) };
      }
    }
    const g = this.groups.create(n);
    if (n.idempotencyKey !== null) this.keys.set(n.idempotencyKey, g.id);
    const options = JSON.stringify(g.options);
    const row = [g.id, g.handler, g.state, g.policy, g.idempotencyKey, options, g.sealedAt];
    row.forEach((v, i) => this.newGroups[i]?.push(v));
    this.append(g, n.inputs);
    this.groups.settle(g);
    return { status: 'created', group: snapshot(g) };
  }

  private append(g: GroupInfo, inputs: unknown[]): void {
    const [groupIds, idxs, priorities, texts] = this.newTasks as [
      string[],
      number[],
      number[],
      string[],
    ];
    for (let i = 0; i < inputs.length; i++) {
      groupIds.push(g.id);
      idxs.push(g.total + i);
      priorities.push(g.options.priority);
      texts.push(toJson(inputs[i]));
    }
    this.groups.move(g, null, 'pending', inputs.length);
  }

  private add(a: AddTasks): AddOutcome {
    const g = this.groups.get(a.groupId);
    if (!g) return { status: 'not_found' };
    const verdict = addVerdict(g, a);
    if (verdict !== 'added') return { status: verdict, group: snapshot(g) };
    this.append(g, a.inputs);
    return { status: 'added', group: snapshot(g) };
  }

  private seal(id: string): SealOutcome {
    const g = this.groups.get(id);
    if (!g) return { status: 'not_found' };
    if (g.state === 'open') this.groups.seal(g);
    return { status: 'sealed', group: snapshot(g) };
  }

  /** The new groups, then their tasks, ids in op order. */
  private async insertNew(): Promise<void> {
    if (this.newGroups[0]?.length) await this.rows('insertGroups', [this.now, ...this.newGroups]);
    if (this.newTasks[0]?.length) await this.rows('insertTasks', this.newTasks);
  }

  private async cancel(id: string): Promise<CancelOutcome> {
    const g = this.groups.get(id);
    if (!g) return { status: 'not_found' };
    const changed = await this.endGroup(g);
    const descendants = await this.cancelDescendants(id);
    return { status: 'canceled', group: snapshot(g), changed, descendants };
  }

  /** Cancels a live group (its pending and running tasks); false when it had ended. */
  private async endGroup(g: GroupInfo): Promise<boolean> {
    if (!isLive(g)) return false;
    await this.execEnd(this.planEnd(g));
    this.groups.endCanceled(g);
    return true;
  }

  /** Cancels every live group under the group (any depth), locked first; how many it canceled. */
  private async cancelDescendants(id: string): Promise<number> {
    const ids = (await this.rows<{ id: string }>('descendants', [id])).map((r) => r.id);
    if (ids.length === 0) return 0;
    await this.loadGroups(ids);
    let n = 0;
    for (const d of ids) if (await this.endGroup(this.groupOf(d))) n++;
    return n;
  }

  async cancelUnkept(taskIds: number[], failFastGroups: string[]): Promise<void> {
    const of = async (name: 'unkeptChildren' | 'unkeptChildrenOfCanceled', keys: unknown[]) =>
      keys.length === 0 ? [] : (await this.rows<{ id: string }>(name, [keys])).map((r) => r.id);
    const ids = [
      ...(await of('unkeptChildren', taskIds)),
      ...(await of('unkeptChildrenOfCanceled', failFastGroups)),
    ];
    if (ids.length === 0) return;
    await this.loadGroups(ids);
    for (const id of ids) {
      await this.endGroup(this.groupOf(id));
      await this.cancelDescendants(id);
    }
  }

  /** The retry op: every failed task of the group back to pending (see store.ts). */
  private async retry(id: string): Promise<RetryOutcome> {
    const g = this.groups.get(id);
    if (!g) return { status: 'not_found' };
    if (g.state === 'canceled') return { status: 'canceled', group: snapshot(g) };
    const n = g.failed;
    if (n > 0) await this.write('retryFailed', [id], n);
    this.groups.retryFailed(g, n);
    return { status: 'retried', retried: n, group: snapshot(g) };
  }

  /**
   * Decides the end of a group's pending and running tasks (a cancel, or
   * failFast): counters move now and finish_seq numbers are reserved, running
   * ones first, each in input order; `execEnd` writes it.
   */
  planEnd(g: GroupInfo): EndPlan {
    const plan = { groupId: g.id, base: this.finishSeq, running: g.running, pending: g.pending };
    this.finishSeq += plan.running + plan.pending;
    this.groups.move(g, 'running', 'canceled', plan.running);
    this.groups.move(g, 'pending', 'canceled', plan.pending);
    return plan;
  }

  async execEnd(plan: EndPlan): Promise<void> {
    if (plan.running + plan.pending === 0) return;
    const rows = await this.rows<CancelRow>('cancelRest', [plan.groupId, this.now, plan.base]);
    const runs = rows.filter((r) => r.was === 'running');
    if (rows.length !== plan.running + plan.pending || runs.length !== plan.running) {
      throw new RegroupError(
        'internal',
        `PostgreSQL store: group ${plan.groupId} had ${runs.length} running and ${rows.length - runs.length} pending tasks, ` +
          `its counters said ${plan.running} and ${plan.pending}; the tick was rolled back`,
      );
    }
    runs.sort((x, y) => x.id - y.id);
    for (const r of runs) {
      this.revoked.push({ taskId: r.id, attempt: r.attempt, workerId: r.worker_id });
    }
  }

  /** Every pending task of each group fails for good (ScheduleTimeoutOp), one statement a group. */
  private async scheduleTimeouts(ops: ScheduleTimeoutOp[]): Promise<number[]> {
    if (ops.length === 0) return [];
    await this.loadGroups(ops.map((s) => s.groupId));
    const out: number[] = [];
    for (const s of ops) {
      const g = this.groups.get(s.groupId);
      if (!g || !isLive(g) || g.pending === 0) {
        out.push(0);
        continue;
      }
      const n = g.pending;
      const error = JSON.stringify(s.error);
      await this.write('failPending', [g.id, error, this.now, this.finishSeq], n);
      this.finishSeq += n;
      this.groups.move(g, 'pending', 'failed', n);
      if (failsFast(g)) {
        await this.execEnd(this.planEnd(g));
        if (g.state === 'open') this.groups.seal(g);
        await this.cancelUnkept([], [g.id]);
      }
      out.push(n);
    }
    return out;
  }

  /** One upsert; a worker named twice in one tick keeps its last record. */
  private async upsertWorkers(workers: WorkerRecord[]): Promise<void> {
    if (workers.length === 0) return;
    const last = new Map(workers.map((w) => [w.workerId, w]));
    const ws = [...last.values()];
    await this.rows('upsertWorkers', [
      ws.map((w) => w.workerId),
      ws.map((w) => w.name),
      ws.map((w) => w.token),
      ws.map((w) => w.state),
      ws.map((w) => w.slots),
      ws.map((w) => JSON.stringify(w.labels)),
      ws.map((w) => JSON.stringify(w.handlers)),
      ws.map((w) => w.connectedAt),
      ws.map((w) => w.seenAt),
    ]);
  }

  /**
   * One statement for every claim. Only the first claim of a task can take
   * (it is running after), so later ones are left out before it runs.
   */
  private async claim(claims: ClaimOp[]): Promise<ClaimedTask[]> {
    if (claims.length === 0) return [];
    const seen = new Set<number>();
    const ids: number[] = [];
    const workers: string[] = [];
    const ords: number[] = [];
    claims.forEach((c, i) => {
      if (seen.has(c.taskId)) return;
      seen.add(c.taskId);
      ids.push(c.taskId);
      workers.push(c.workerId);
      ords.push(i);
    });
    const rows = await this.rows<ClaimRow>('claims', [ids, workers, ords, this.now]);
    rows.sort((a, b) => a.ord - b.ord);
    await this.loadGroups(rows.map((r) => r.group_id));
    return rows.map((r) => {
      const g = this.groupOf(r.group_id);
      this.groups.move(g, 'pending', 'running');
      return {
        taskId: r.id,
        groupId: r.group_id,
        index: r.idx,
        handler: g.handler,
        attempt: r.attempt,
        workerId: r.worker_id,
        startedAt: this.now,
        errors: r.errors,
        nodeFailures: r.node_failures,
        options: copyOptions(g.options),
        input: JSON.parse(r.input),
        checkpoint: r.checkpoint === null ? undefined : JSON.parse(r.checkpoint),
      };
    });
  }

  /** A group that a task row points at: it exists (foreign key) and was loaded. */
  groupOf(id: string): GroupInfo {
    const g = this.groups.get(id);
    if (!g) throw new Error(`task of unknown group ${id}`);
    return g;
  }

  private async insertEvents(events: NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.rows('insertEvents', [
      this.now,
      events.map((e) => e.type),
      events.map((e) => e.workerId ?? null),
      events.map((e) => e.groupId ?? null),
      events.map((e) => e.taskId ?? null),
      events.map((e) => (e.data === undefined ? null : JSON.stringify(e.data))),
      events.map((e) => e.at ?? null),
    ]);
  }

  private async writeGroups(changed: GroupInfo[]): Promise<void> {
    if (changed.length === 0) return;
    const col = <K extends keyof GroupInfo>(k: K) => changed.map((g) => g[k]);
    await this.write(
      'updateGroups',
      [
        col('id'),
        col('state'),
        col('total'),
        col('pending'),
        col('running'),
        col('succeeded'),
        col('failed'),
        col('canceled'),
        col('sealedAt'),
        col('finishedAt'),
        this.finishSeq,
      ],
      changed.length,
    );
  }
}
