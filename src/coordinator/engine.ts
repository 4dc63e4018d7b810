/**
 * The engine: the coordinator's only writer. Everything that arrives (client
 * requests, worker reports, liveness verdicts) becomes an op queued here. One
 * tick takes every queued op, adds the dispatch decided by core, and commits
 * all of it in ONE store transaction (group commit). Only then are the
 * callers answered, the runs sent and the waiters woken.
 */
import { RegroupError } from '../core/errors.js';
import { holdsLease } from '../core/fence.js';
import { planDispatch, type WorkerCredit } from '../core/dispatch.js';
import { isClientOp, OP_KINDS, perOpKind, type OpKind } from '../core/ops.js';
import { RunnableIndex, type WaitChange } from '../core/runnable.js';
import { CapRoom } from '../core/caps.js';
import { fact, type Fact } from '../core/events.js';
import type { GroupInfo, TaskOptions } from '../core/types.js';
import { unschedulableError, type GroupWaiting, type Offer } from '../core/waiting.js';
import type {
  ClaimOp,
  ClaimedTask,
  Lease,
  NewEvent,
  OpOf,
  OutcomeOf,
  ReadyTask,
  RevokedRun,
  ScheduleTimeoutOp,
  Store,
  Tick,
  TickOutcome,
  WorkerRecord,
} from '../store/store.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import type { Sessions } from './sessions.js';
import type { CoordinatorEvents, Emitter } from './emitter.js';
import { logFact } from './facts.js';

interface Queued<K extends OpKind> {
  op: OpOf<K>;
  resolve: (o: OutcomeOf<K>) => void;
  reject: (e: Error) => void;
  /** The fact the committed outcome makes, if any: recorded in the tick, in fact order. */
  fact?: FactOf<K> | undefined;
}

/** What an op's committed outcome means as a fact (null: nothing happened worth recording). */
export type FactOf<K extends OpKind> = (outcome: OutcomeOf<K>) => Fact | null;

type Queue = { [K in OpKind]: Queued<K>[] };

function emptyQueue(): Queue {
  return perOpKind(() => []);
}

/**
 * A tick asked for within this long of the previous tick's end waits out the
 * rest of it (or until BATCH_TARGET ops are queued): back-to-back ticks mean
 * load, and bigger ticks mean fewer commits. Small next to a commit's fsync.
 */
const BUSY_WINDOW_MS = 1;
/** Only after a tick this big: a lone request (latency) never waits. */
const BUSY_TICK_OPS = 32;
const BATCH_TARGET = 256;
/**
 * An event alone waits this long for a tick to ride with: events follow
 * facts already committed (a group done, a worker joined), and a tick of
 * its own would put one more commit (fsync) in front of the next request.
 */
const EVENT_LAZY_MS = 25;
/**
 * Dispatch reads at most this many groups a tick, from the index of runnable
 * work (core/runnable.ts): least recently served first, so every runnable
 * group is read within ceil(runnable groups / DISPATCH_WINDOW) ticks.
 */
const DISPATCH_WINDOW = 256;
/**
 * ...and at most this many per free slot (at least DISPATCH_WINDOW_MIN): a
 * tick with one slot free (a run reported, a parent suspended while it
 * waits on its children) reads a few groups, not 256.
 */
const DISPATCH_WINDOW_PER_SLOT = 4;
const DISPATCH_WINDOW_MIN = 16;
/** Most tasks remembered for retrying elsewhere (Engine.avoid). */
const AVOID_MAX = 100_000;

export interface EngineHooks {
  /** A tick committed: these runs were claimed (send them), revoked (tell the workers), groups changed (wake waiters). */
  afterTick(r: { claimed: ClaimedTask[]; revoked: RevokedRun[]; changedGroups: GroupInfo[] }): void;
  /**
   * The term is over: the store refused the tick (a newer leader took over),
   * or on a shared store its outcome is unknown. This engine has stopped.
   */
  termEnded?(e: RegroupError): void;
}

export class Engine {
  /** Every running lease, by taskId. The store is the truth; this is its exact cache (single writer). */
  readonly leases = new Map<number, Lease>();
  /** Leases by group: what a group's options.maxConcurrency is held against (core/caps.ts). */
  private readonly leasedByGroup = new Map<string, number>();
  /** Leases by concurrencyKey: what the key's limit is held against. */
  private readonly leasedByKey = new Map<string, number>();
  /** The key limits live groups propose (options.concurrencyKeyLimit), by key, then group. */
  private readonly keyProposals = new Map<
    string,
    Map<string, { createdAt: number; limit: number }>
  >();
  /** The room the caps leave in the tick being planned. */
  private capRoom = this.newCapRoom();
  /**
   * taskId -> the worker its last attempt died or timed out on: its next
   * attempt prefers another worker (core/dispatch.ts, `avoid`). In memory:
   * a new term starts without it. At most AVOID_MAX, oldest dropped first.
   */
  private readonly avoid = new Map<number, string>();
  private queue: Queue = emptyQueue();
  private workers = new Map<string, WorkerRecord>();
  private workerWaiters: (() => void)[] = [];
  private events: NewEvent[] = [];
  private scheduled = false;
  /** When the last tick ended (performance.now()); -Infinity before the first. */
  private lastTickEnd = -Infinity;
  /** Ops, claims and records the last tick carried: a big one means load. */
  private lastTickOps = 0;
  /** Ops queued for the next tick (client ops and worker reports). */
  private queued = 0;
  private batchTimer: NodeJS.Timeout | null = null;
  private eventTimer: NodeJS.Timeout | null = null;
  /** The event timer ran out: the next tick commits the events even alone. */
  private eventsDue = false;
  private ticking = false;
  private dispatchDirty = true;
  /** Every group with pending tasks, by shape: what dispatch reads, and why a group waits. */
  private readonly runnable = new RunnableIndex();
  /** Groups read since the last tick that claimed: a sweep of the index with nothing to give ends. */
  private sweep = 0;
  /** Wakes the engine when the next schedule timeout runs out. */
  private expiryTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Commits failed in a row; the retry waits longer each time (250 ms doubling, at most 5 s). */
  private failedCommits = 0;
  private idle: (() => void)[] = [];
  /** quiet() waiting for the tick in flight. */
  private tickEnded: (() => void)[] = [];
  ticks = 0;

  constructor(
    private readonly o: ResolvedCoordinatorOptions,
    private readonly store: Store,
    private readonly sessions: Sessions,
    private readonly hooks: EngineHooks,
    private readonly emitter: Emitter<CoordinatorEvents>,
  ) {}

  /**
   * Queues one op for the next tick; resolves with its outcome once committed.
   * `fact`: what the outcome means, recorded by the tick that commits it
   * before the group facts that follow from it (a task failed, then its group done).
   */
  request<K extends OpKind>(kind: K, op: OpOf<K>, fact?: FactOf<K>): Promise<OutcomeOf<K>> {
    if (this.stopped)
      return Promise.reject(
        new RegroupError(
          'shutting_down',
          'the coordinator is shutting down; retry against it once it is back',
        ),
      );
    return new Promise<OutcomeOf<K>>((resolve, reject) => {
      (this.queue[kind] as Queued<K>[]).push({ op, resolve, reject, fact });
      this.queued++;
      this.schedule();
      this.gathered();
    });
  }

  /**
   * Hands a run back to pending (fenced, in the next tick). Fire and forget:
   * a stale answer means the run already ended, which is what we wanted.
   */
  requeue(
    run: { taskId: number; attempt: number; workerId: string },
    nodeFailure: boolean,
    runAt = this.o.now(),
    fact?: FactOf<'requeues'>,
  ): void {
    this.request('requeues', { ...run, nodeFailure, runAt }, fact).catch((e: unknown) =>
      this.o.logger('warn', 'requeue not committed', {
        taskId: run.taskId,
        err: (e as Error).message,
      }),
    );
  }

  /** Writes a worker's record in the next tick (state changes only, not beats); resolves once committed. */
  recordWorker(r: WorkerRecord): Promise<void> {
    this.workers.set(r.workerId, r);
    this.schedule();
    return new Promise<void>((resolve) => this.workerWaiters.push(resolve));
  }

  /**
   * Records a fact, the one way: to the durable event log (with the next
   * tick, within EVENT_LAZY_MS), to the emitter (`fact`) and to the log.
   * Stamped now unless it says when it happened.
   */
  record(f: Fact): void {
    const e = { ...f, at: f.at ?? this.o.now() };
    this.events.push(e);
    this.scheduleLazy();
    this.emitter.emit('fact', e);
    logFact(this.o.logger, e);
  }

  /**
   * Records what a committed op's outcome means. The commit happened: a
   * fact that cannot be made is logged, never allowed to fail the tick (its
   * ops would be answered as if they had not been committed).
   */
  private recordOutcome(fact: FactOf<OpKind>, outcome: unknown): void {
    try {
      const f = fact(outcome as never);
      if (f) this.record(f);
    } catch (e) {
      this.o.logger('error', 'a fact could not be recorded', { err: (e as Error).message });
    }
  }

  /** A tick within EVENT_LAZY_MS, unless one comes sooner. */
  private scheduleLazy(): void {
    if (this.eventTimer !== null || this.eventsDue || this.stopped) return;
    this.eventTimer = setTimeout(() => {
      this.eventTimer = null;
      this.eventsDue = true;
      this.schedule();
    }, EVENT_LAZY_MS);
  }

  /** Something may now be dispatchable: new tasks, freed slots, a new worker, a backoff that ran out. */
  markDispatch(): void {
    this.dispatchDirty = true;
    this.schedule();
  }

  schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    // Under load, ticks come back to back: gather a little longer, so one
    // commit (one fsync) carries more. An idle coordinator ticks at once.
    const sinceLast = performance.now() - this.lastTickEnd;
    const wait =
      this.lastTickOps >= BUSY_TICK_OPS && sinceLast < BUSY_WINDOW_MS && this.queued < BATCH_TARGET;
    const run = (): void => {
      this.scheduled = false;
      this.batchTimer = null;
      void this.tick();
    };
    if (wait) this.batchTimer = setTimeout(run, BUSY_WINDOW_MS - sinceLast);
    else setImmediate(run);
  }

  /** Called as ops arrive: a tick waiting to gather more goes now once it has enough. */
  private gathered(): void {
    if (this.batchTimer === null || this.queued < BATCH_TARGET) return;
    clearTimeout(this.batchTimer);
    this.batchTimer = null;
    setImmediate(() => {
      this.scheduled = false;
      void this.tick();
    });
  }

  /** Events waiting for company are written by the next tick, now (stop, tests). False when none wait. */
  flushEvents(): boolean {
    if (this.events.length === 0 || this.stopped) return false;
    if (this.eventTimer) clearTimeout(this.eventTimer);
    this.eventTimer = null;
    this.eventsDue = true;
    this.schedule();
    return true;
  }

  /** Resolves once no tick is running and nothing is queued. */
  async settle(): Promise<void> {
    while (this.ticking || this.scheduled || this.hasWork()) {
      await new Promise<void>((r) => this.idle.push(r));
    }
  }

  /**
   * Commits what is queued, waiting at most `graceMs` (a store that keeps
   * failing must not hold the shutdown forever); what is left is answered
   * `shutting_down` (workers keep such reports in their outbox).
   */
  async stop(graceMs = 5000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    if (graceMs > 0) this.flushEvents();
    await Promise.race([this.settle(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.batchTimer) clearTimeout(this.batchTimer);
    if (this.eventTimer) clearTimeout(this.eventTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const err = new RegroupError(
      'shutting_down',
      'the coordinator stopped before this was committed; retry against it once it is back',
    );
    for (const k of OP_KINDS) for (const q of this.queue[k].splice(0)) q.reject(err);
    for (const r of this.idle.splice(0)) r();
  }

  /**
   * Resolves once no commit of this engine is in flight. After stop() no new
   * tick starts, but one already committing goes on (its store call cannot
   * be taken back): a new term on the same store waits for this first, so
   * that no commit of the old term lands after the new term's epoch is set.
   */
  async quiet(): Promise<void> {
    if (this.ticking) await new Promise<void>((r) => this.tickEnded.push(r));
  }

  /** Anything queued; `events`: counting events that wait for a tick to ride with. */
  private hasWork(events = true): boolean {
    return (
      OP_KINDS.some((k) => this.queue[k].length > 0) ||
      this.workers.size > 0 ||
      (events && this.events.length > 0) ||
      this.workerWaiters.length > 0
    );
  }

  private async tick(): Promise<void> {
    if (this.ticking || this.retryTimer || this.stopped) return;
    this.ticking = true;
    const now = this.o.now();
    const batch = this.queue;
    const workers = [...this.workers.values()];
    const events = this.events;
    const workerWaiters = this.workerWaiters;
    this.workerWaiters = [];
    this.queue = emptyQueue();
    this.workers = new Map();
    this.events = [];
    this.lastTickOps = this.queued + workers.length;
    this.queued = 0;
    try {
      // Sessions may have changed since the last tick (a worker joined, left, drains).
      this.judge(now);
      const scheduleTimeouts = this.expired(now);
      this.capRoom = this.newCapRoom();
      const { claims, credits } = await this.planClaims(now);
      if (
        !OP_KINDS.some((k) => batch[k].length > 0) &&
        scheduleTimeouts.length === 0 &&
        workers.length === 0 &&
        claims.length === 0 &&
        (events.length === 0 || !this.eventsDue)
      ) {
        // Nothing to commit but events that can still wait for company.
        this.events.unshift(...events);
        for (const w of workerWaiters) w();
        return;
      }
      this.eventsDue = false;
      if (this.eventTimer) {
        clearTimeout(this.eventTimer);
        this.eventTimer = null;
      }
      const tick: Tick = {
        now,
        workers,
        events,
        claims,
        claimNew: this.claimNew(batch, credits, now),
      };
      for (const k of OP_KINDS) (tick as Record<OpKind, unknown[]>)[k] = batch[k].map((q) => q.op);
      tick.scheduleTimeouts = [...(tick.scheduleTimeouts ?? []), ...scheduleTimeouts];
      this.lastTickOps += claims.length;
      const started = performance.now();
      const outcome = await this.store.commitTick(tick);
      this.ticks++;
      if (this.emitter.has('tick')) {
        const ms = performance.now() - started;
        this.emitter.emit('tick', { tick, outcome, ms, leases: this.leases });
      }
      this.apply(tick, outcome);
      // Facts in the order they happened: what each op did, then why groups
      // wait (before the answers: a submit's reply says it at once), the
      // schedule timeouts that failed tasks, and last the groups that ended.
      for (const k of OP_KINDS) {
        const results = outcome[k] as unknown[];
        (batch[k] as Queued<OpKind>[]).forEach((q, i) => {
          if (q.fact) this.recordOutcome(q.fact, results[i]);
        });
      }
      for (const g of outcome.changedGroups) {
        this.runnable.update(g);
        this.noteKeyLimit(g);
      }
      this.judge(now);
      this.timedOut(tick.scheduleTimeouts, outcome.scheduleTimeouts);
      for (const g of outcome.changedGroups) if (g.state === 'done') this.record(doneFact(g));
      for (const k of OP_KINDS) {
        const results = outcome[k] as unknown[];
        (batch[k] as Queued<OpKind>[]).forEach((q, i) => q.resolve(results[i] as never));
      }
      for (const w of workerWaiters) w();
      this.hooks.afterTick({
        claimed: outcome.claimed,
        revoked: outcome.revoked,
        changedGroups: outcome.changedGroups,
      });
      if (outcome.claimed.length > 0) this.dispatchDirty = true;
      this.failedCommits = 0;
    } catch (e) {
      this.onTickFailed(e, batch, workers, events);
      this.workerWaiters.unshift(...workerWaiters);
    } finally {
      this.ticking = false;
      this.lastTickEnd = performance.now();
      for (const r of this.tickEnded.splice(0)) r();
      this.armExpiry();
      // Events whose timer ran out during this tick go with the next one.
      const eventsDue = this.eventsDue && this.events.length > 0;
      if (this.hasWork(false) || this.dispatchDirty || eventsDue) this.schedule();
      else if (this.events.length > 0) this.scheduleLazy();
      else for (const r of this.idle.splice(0)) r();
    }
  }

  /** A commit failed (disk full, I/O error): client ops get the error; worker and internal ops are kept and retried. */
  private onTickFailed(
    e: unknown,
    batch: Queue,
    workers: WorkerRecord[],
    events: NewEvent[],
  ): void {
    const err =
      e instanceof RegroupError
        ? e
        : new RegroupError('internal', `store commit failed: ${(e as Error).message}`, {
            cause: e,
          });
    if (err.code === 'not_leader' || (err.code === 'unavailable' && this.o.leadership)) {
      // not_leader: a newer leader owns the store. unavailable on a shared store:
      // the commit may or may not have happened (a lost COMMIT reply), so this
      // term's lease cache can no longer be trusted; the next term recovers
      // from the store, and workers resume and reconcile what they hold.
      for (const k of OP_KINDS) for (const q of batch[k]) q.reject(err);
      this.stopped = true;
      this.hooks.termEnded?.(err);
      return;
    }
    this.o.logger('error', 'tick commit failed; retrying worker reports shortly', {
      code: err.code,
      err: err.message,
    });
    for (const k of OP_KINDS) {
      if (isClientOp(k)) for (const q of batch[k]) q.reject(err);
      else {
        (this.queue[k] as Queued<OpKind>[]).unshift(...(batch[k] as Queued<OpKind>[]));
        this.queued += batch[k].length;
      }
    }
    for (const w of workers) if (!this.workers.has(w.workerId)) this.workers.set(w.workerId, w);
    this.events.unshift(...events);
    this.failedCommits++;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = null;
        this.schedule();
      },
      Math.min(5000, 250 * 2 ** (this.failedCommits - 1)),
    );
  }

  private avoidNext(taskId: number, workerId: string): void {
    this.avoid.delete(taskId);
    this.avoid.set(taskId, workerId);
    if (this.avoid.size > AVOID_MAX) this.avoid.delete(this.avoid.keys().next().value!);
  }

  /** The ready tasks with the worker each should not run on again, where there is one. */
  private withAvoid(ready: ReadyTask[]): ReadyTask[] {
    if (this.avoid.size === 0) return ready;
    return ready.map((t) => {
      const avoid = this.avoid.get(t.taskId);
      return avoid === undefined ? t : { ...t, avoid };
    });
  }

  private lease(l: Lease): void {
    const had = this.leases.get(l.taskId);
    if (had) this.unlease(had);
    this.leases.set(l.taskId, l);
    count(this.leasedByGroup, l.groupId, 1);
    if (l.options.concurrencyKey) count(this.leasedByKey, l.options.concurrencyKey, 1);
  }

  private unlease(l: Lease): void {
    if (!this.leases.delete(l.taskId)) return;
    count(this.leasedByGroup, l.groupId, -1);
    if (l.options.concurrencyKey) count(this.leasedByKey, l.options.concurrencyKey, -1);
  }

  private newCapRoom(): CapRoom {
    return new CapRoom({
      group: (g) => this.leasedByGroup.get(g) ?? 0,
      key: (k) => this.leasedByKey.get(k) ?? 0,
      keyLimit: (k) => this.keyLimit(k),
    });
  }

  /**
   * A key's limit: the coordinator's (concurrencyLimits), else the
   * concurrencyKeyLimit of the oldest live group that proposes one; 0: none.
   */
  keyLimit(key: string): number {
    const set = this.o.concurrencyLimits[key];
    if (set !== undefined) return set;
    let oldest: { createdAt: number; limit: number } | undefined;
    for (const p of this.keyProposals.get(key)?.values() ?? [])
      if (oldest === undefined || p.createdAt < oldest.createdAt) oldest = p;
    return oldest?.limit ?? 0;
  }

  /**
   * A new group's options with its key's limit written in when it names a
   * key and proposes no limit: the limit the key has now. So a key's limit,
   * once the first group set it, lives in every group naming it (durably,
   * with the group) and outlasts the group that set it.
   */
  withKeyLimit(o: TaskOptions): TaskOptions {
    if (o.concurrencyKey === '' || o.concurrencyKeyLimit > 0) return o;
    const limit = this.keyLimit(o.concurrencyKey);
    return limit > 0 ? { ...o, concurrencyKeyLimit: limit } : o;
  }

  /** A live group that proposes a key limit counts until it is done. */
  private noteKeyLimit(g: GroupInfo): void {
    this.propose(g.id, g.options, g.createdAt, g.state === 'open' || g.state === 'sealed');
  }

  private propose(id: string, options: TaskOptions, createdAt: number, live: boolean): void {
    const { concurrencyKey: key, concurrencyKeyLimit: limit } = options;
    if (!key || limit <= 0) return;
    let proposals = this.keyProposals.get(key);
    if (live) {
      if (!proposals) this.keyProposals.set(key, (proposals = new Map()));
      proposals.set(id, { createdAt, limit });
    } else if (proposals?.delete(id) && proposals.size === 0) this.keyProposals.delete(key);
  }

  /** Updates the lease cache and the sessions from what was really committed. */
  private apply(tick: Tick, outcome: TickOutcome): void {
    const drop = (taskId: number, attempt: number, workerId: string, finished: boolean): void => {
      const lease = this.leases.get(taskId);
      if (!holdsLease(lease, attempt, workerId)) return;
      this.unlease(lease);
      this.sessions.get(workerId)?.forget(taskId, finished);
      this.dispatchDirty = true;
    };
    if (this.emitter.has('committed')) {
      (tick.commits ?? []).forEach((c, i) => {
        if (outcome.commits[i] === 'applied')
          this.emitter.emit('committed', {
            taskId: c.taskId,
            attempt: c.attempt,
            workerId: c.workerId,
          });
      });
    }
    // A run that ended frees its lease. A stale or final answer for a run the
    // cache still holds means the cache is behind the store: drop it too.
    // A worker's count of tasks done (`regroup status` DONE) takes a run that
    // brought its task to an end: a result, or a failure that is not retried.
    (tick.commits ?? []).forEach((c, i) => {
      drop(c.taskId, c.attempt, c.workerId, outcome.commits[i] === 'applied');
    });
    (tick.failures ?? []).forEach((f, i) => {
      const final = outcome.failures[i] === 'applied' && f.retryAt === null;
      drop(f.taskId, f.attempt, f.workerId, final);
    });
    (tick.requeues ?? []).forEach((r) => drop(r.taskId, r.attempt, r.workerId, false));
    for (const r of outcome.revoked) drop(r.taskId, r.attempt, r.workerId, false);
    // A run that ended by its worker's death or a timeout, and runs again: elsewhere if it can.
    (tick.requeues ?? []).forEach((r, i) => {
      if (r.nodeFailure && outcome.requeues[i] === 'applied') this.avoidNext(r.taskId, r.workerId);
    });
    (tick.failures ?? []).forEach((f, i) => {
      const retried = f.retryAt !== null && outcome.failures[i] === 'applied';
      if (retried && (f.nodeFailure || f.error.kind === 'timeout'))
        this.avoidNext(f.taskId, f.workerId);
    });
    for (const c of outcome.claimed) {
      this.avoid.delete(c.taskId);
      this.lease(stripPayload(c));
      this.sessions.get(c.workerId)?.claim(c.taskId);
    }
    if (outcome.createGroups.length > 0 || outcome.addTasks.length > 0) this.dispatchDirty = true;
    // Tasks added by running tasks (ctx.add) run at once.
    if (outcome.taskAdds.some((a) => a.status === 'added' && a.count > 0))
      this.dispatchDirty = true;
    // Retried tasks are pending again: dispatch them.
    if (outcome.retries.some((r) => r.status === 'retried' && r.retried > 0))
      this.dispatchDirty = true;
  }

  /**
   * Reads ready tasks and asks core which worker gets which. Empty when no
   * worker has a free slot. `credits` is what the plan leaves free; null
   * when dispatch was not due (the sessions were not looked at).
   */
  private async planClaims(
    now: number,
  ): Promise<{ claims: ClaimOp[]; credits: WorkerCredit[] | null }> {
    if (!this.dispatchDirty) return { claims: [], credits: null };
    this.dispatchDirty = false;
    const credits = this.sessions.credits(now, this.o);
    const totalFree = credits.reduce((a, c) => a + c.free, 0);
    if (totalFree === 0) return { claims: [], credits };
    const window = Math.min(
      DISPATCH_WINDOW,
      Math.max(DISPATCH_WINDOW_MIN, DISPATCH_WINDOW_PER_SLOT * totalFree),
    );
    const { ids: order, candidates } = this.runnable.pick(credits, window);
    if (order.length === 0) return { claims: [], credits };
    const perGroup = Math.min(
      totalFree,
      Math.max(16, Math.ceil((2 * totalFree) / order.length)),
      2000,
    );
    // Tasks past their group's maxConcurrency wait: read, not claimed (their group goes on in line).
    const ready = this.withAvoid(
      this.capRoom.fit(await this.store.readyTasks(order, now, perGroup)),
    );
    const claims = assign(ready, order, credits);
    this.capRoom.took(claimedTasks(ready, claims));
    const left = remaining(credits, claims);
    this.served(order, ready, claims);
    // More runnable groups than one read takes, and slots left: read on next
    // tick, until a whole sweep of the index found nothing to give.
    this.sweep = claims.length > 0 ? 0 : this.sweep + order.length;
    if (candidates > order.length && left.length > 0 && this.sweep < candidates)
      this.dispatchDirty = true;
    return { claims, credits: left };
  }

  /**
   * The groups read that were served go to the back of the index's line: the
   * ones given a run and the ones with nothing ready (a retry backoff). A
   * group with ready tasks that got no slot keeps its place.
   */
  private served(order: string[], ready: ReadyTask[], claims: ClaimOp[]): void {
    const groupOf = new Map(ready.map((t) => [t.taskId, t.groupId]));
    const withReady = new Set(groupOf.values());
    const given = new Set(claims.map((c) => groupOf.get(c.taskId)));
    this.runnable.served(order.filter((id) => given.has(id) || !withReady.has(id)));
  }

  /**
   * Lets the store claim the tasks this tick inserts, in the same commit, for
   * the slots the plan left free: a new group's first runs go out with the
   * answer to its submit instead of one commit later.
   */
  private claimNew(batch: Queue, planned: WorkerCredit[] | null, now: number): Tick['claimNew'] {
    const adds = batch.createGroups.length + batch.addTasks.length + batch.taskAdds.length;
    if (adds === 0) return undefined;
    const credits = planned ?? this.sessions.credits(now, this.o);
    const max = credits.reduce((a, c) => a + c.free, 0);
    if (max === 0) return undefined;
    return {
      max,
      plan: (tasks) => {
        // A group created in this tick proposes its key limit before its first tasks are claimed.
        const inserted = new Set(tasks.map((t) => t.groupId));
        for (const q of batch.createGroups)
          if (inserted.has(q.op.id)) this.propose(q.op.id, q.op.options, now, true);
        const fitted = this.capRoom.fit(tasks);
        const order = [...new Set(fitted.map((t) => t.groupId))];
        const claims = assign(fitted, order, credits);
        this.capRoom.took(claimedTasks(fitted, claims));
        return claims;
      },
    };
  }

  /**
   * Loads what a new term starts from: the running leases, and every group
   * with pending tasks (the index of runnable work; waits are timed from now).
   */
  restore(leases: Lease[], pending: GroupInfo[]): void {
    for (const l of leases) this.lease(l);
    for (const g of pending) {
      this.runnable.update(g);
      this.noteKeyLimit(g);
    }
  }

  /** Why the group waits: no connected worker could run its pending tasks at the last tick. */
  waiting(groupId: string): GroupWaiting | undefined {
    return this.runnable.waiting(groupId);
  }

  /**
   * Judges the index against the connected workers: alive or suspect (a
   * restored session still in its resume grace counts), not draining.
   * Each group that starts waiting is logged and recorded once; one that
   * can run again is logged.
   */
  private judge(now: number): void {
    const connected: Offer[] = [];
    for (const s of this.sessions.all()) {
      const h = s.health(now, this.o);
      if ((h === 'alive' || h === 'suspect') && !s.draining) connected.push(s);
    }
    for (const c of this.runnable.judge(connected, now)) this.waitChanged(c);
  }

  private waitChanged(c: WaitChange): void {
    if (c.waiting) {
      const { code, message } = c.waiting;
      this.record(
        fact('group.waiting', { handler: c.handler, code, message }, { groupId: c.groupId }),
      );
    } else {
      this.o.logger('info', 'group runnable again', { groupId: c.groupId, handler: c.handler });
    }
  }

  /** The schedule timeouts that ran out: this tick fails those groups' pending tasks. */
  private expired(now: number): ScheduleTimeoutOp[] {
    return this.runnable.expired(now).expired.map((e) => ({
      groupId: e.groupId,
      error: unschedulableError(e.reason, e.scheduleTimeoutMs),
    }));
  }

  /** Logs and records the groups whose pending tasks a schedule timeout failed. */
  private timedOut(ops: ScheduleTimeoutOp[] | undefined, failed: number[]): void {
    (ops ?? []).forEach((op, i) => {
      const n = failed[i] ?? 0;
      if (n === 0) return;
      const data = { failed: n, message: op.error.message };
      this.record(fact('group.unschedulable', data, { groupId: op.groupId }));
    });
  }

  /** A tick when the next schedule timeout runs out (the engine may be idle until then). */
  private armExpiry(): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = null;
    if (this.stopped) return;
    const { next } = this.runnable.expired(this.o.now());
    if (next === null) return;
    this.expiryTimer = setTimeout(
      () => {
        this.expiryTimer = null;
        this.schedule();
      },
      Math.max(0, next - this.o.now()),
    );
  }
}

/** Round robin across `order`'s groups; a group of higher priority is served earlier in each round. */
function assign(ready: ReadyTask[], order: string[], credits: WorkerCredit[]): ClaimOp[] {
  const byGroup = new Map<string, ReadyTask[]>(order.map((id) => [id, []]));
  for (const t of ready) byGroup.get(t.groupId)?.push(t);
  const lists = [...byGroup.values()].sort((x, y) => (y[0]?.priority ?? 0) - (x[0]?.priority ?? 0));
  return planDispatch(lists, credits).map((a) => ({ taskId: a.taskId, workerId: a.workerId }));
}

/** The ready task of each claim. */
function claimedTasks(ready: readonly ReadyTask[], claims: readonly ClaimOp[]): ReadyTask[] {
  const byId = new Map(ready.map((t) => [t.taskId, t]));
  return claims.map((c) => byId.get(c.taskId)!);
}

/** Adds `by` to a count, dropping it at 0. */
function count(m: Map<string, number>, k: string, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n > 0) m.set(k, n);
  else m.delete(k);
}

/** The credits left after `claims` (a claim that does not take frees nothing: the next plan retries). */
function remaining(credits: WorkerCredit[], claims: ClaimOp[]): WorkerCredit[] {
  if (claims.length === 0) return credits;
  const used = new Map<string, number>();
  for (const c of claims) used.set(c.workerId, (used.get(c.workerId) ?? 0) + 1);
  return credits
    .map((w) => ({ ...w, free: w.free - (used.get(w.workerId) ?? 0) }))
    .filter((w) => w.free > 0);
}

function stripPayload(c: ClaimedTask): Lease {
  const { input: _input, checkpoint: _checkpoint, ...lease } = c;
  return lease;
}

/** A group that ended: its counts. */
function doneFact(g: GroupInfo): Fact {
  const data = { total: g.total, succeeded: g.succeeded, failed: g.failed, canceled: g.canceled };
  return fact('group.done', data, { groupId: g.id });
}
