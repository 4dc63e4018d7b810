/**
 * Prometheus metrics of one coordinator, served at GET /metrics. Each
 * Coordinator has its own Registry (several coordinators in one process, as in
 * tests, never share a counter); process metrics (CPU, memory, event loop) are
 * per process, so they live in one registry of their own, made on first use.
 *
 * Counters and histograms are fed by the coordinator's events (emitter.ts):
 * `tick` (one per committed store transaction), `dispatched`, `fact` (worker.dead),
 * `groupChanged`. Gauges are read when scraped: tasks by state from the store
 * (the group counters summed), live groups root/child from the store (both
 * cached until a group changes), workers by state from the sessions in memory.
 * docs/operations.md lists every metric and what exactly it measures.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { judgeWorker, type LivenessOptions } from '../core/liveness.js';
import { TASK_STATES, type WorkerHealth } from '../core/types.js';
import { holdsLease } from '../core/fence.js';
import type { LeaderState } from '../store/leadership.js';
import type { Store, Tick, TickOutcome } from '../store/store.js';
import type { CoordinatorEvents, Emitter } from './emitter.js';
import type { Logger } from './options.js';
import type { Session } from './sessions.js';

/** What the metrics read at scrape time. */
export interface MetricsSource {
  store: Store;
  /** The sessions of the current term; null while standing by. */
  sessions(): Iterable<Session> | null;
  role(): LeaderState;
  now(): number;
  liveness: LivenessOptions;
  logger: Logger;
}

const WORKER_STATES: readonly WorkerHealth[] = ['alive', 'suspect', 'draining', 'dead'];
/** Outcome lists of a tick that answer an op (the rest: claimed is counted apart, revoked and changedGroups are consequences). */
const NOT_OPS: ReadonlySet<keyof TickOutcome> = new Set(['claimed', 'revoked', 'changedGroups']);

/** Short latencies: a commit, a dispatch. */
const FAST_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Runs and groups: milliseconds to hours. */
const SLOW_S = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600, 21_600];

let processRegistry: Registry | null = null;

/** The process metrics (regroup_process_*, regroup_nodejs_*); one registry per process. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'regroup_' });
  }
  return processRegistry;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly r = this.registry;

  readonly dispatched = new Counter({
    name: 'regroup_tasks_dispatched_total',
    help: 'Runs sent to a worker (each attempt counts once).',
    registers: [this.r],
  });
  readonly committed = new Counter({
    name: 'regroup_tasks_committed_total',
    help: 'Results committed: tasks that succeeded.',
    registers: [this.r],
  });
  readonly failed = new Counter({
    name: 'regroup_tasks_failed_total',
    help: 'Tasks that failed for good, by the kind of their last error.',
    labelNames: ['kind'] as const,
    registers: [this.r],
  });
  readonly retried = new Counter({
    name: 'regroup_tasks_retried_total',
    help: 'Failed runs whose task goes back to pending for another attempt (after a backoff).',
    registers: [this.r],
  });
  readonly reassigned = new Counter({
    name: 'regroup_tasks_reassigned_total',
    help: 'Runs put back to pending because their worker was declared dead.',
    registers: [this.r],
  });
  readonly rejected = new Counter({
    name: 'regroup_reports_rejected_total',
    help: 'Worker reports (results, failures, checkpoints) the fence refused: stale or already_final.',
    labelNames: ['outcome'] as const,
    registers: [this.r],
  });
  readonly tickOps = new Histogram({
    name: 'regroup_tick_ops',
    help: 'Ops committed per store transaction (tick): client ops, worker reports, worker records, claims.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
    registers: [this.r],
  });
  readonly commitSeconds = new Histogram({
    name: 'regroup_store_commit_seconds',
    help: 'Time the store took to commit one tick.',
    buckets: FAST_S,
    registers: [this.r],
  });
  readonly dispatchSeconds = new Histogram({
    name: 'regroup_dispatch_latency_seconds',
    help: 'From the tick that claimed a run (took its lease) to the run sent to its worker.',
    buckets: FAST_S,
    registers: [this.r],
  });
  readonly runSeconds = new Histogram({
    name: 'regroup_run_latency_seconds',
    help: 'From the tick that claimed a run to the commit of its result: dispatch, run, report and commit.',
    buckets: SLOW_S,
    registers: [this.r],
  });
  readonly taskSeconds = new Histogram({
    name: 'regroup_task_latency_seconds',
    help: 'End to end for one task: from the commit of the request that added it (submit or add) to the commit of its result. Tasks added since this coordinator leads.',
    buckets: SLOW_S,
    registers: [this.r],
  });
  /**
   * When each group's tasks were added, as index ranges (submit: from 0;
   * each add: from the group's total before it), while the group is live.
   */
  private readonly added = new Map<string, { from: number; at: number }[]>();
  readonly groupSeconds = new Histogram({
    name: 'regroup_group_latency_seconds',
    help: 'End to end: from the creation of a group to the commit that made it done.',
    buckets: SLOW_S,
    registers: [this.r],
  });
  readonly groupsFinished = new Counter({
    name: 'regroup_groups_finished_total',
    help: 'Groups that became done or canceled.',
    labelNames: ['state'] as const,
    registers: [this.r],
  });
  readonly spawned = new Counter({
    name: 'regroup_groups_spawned_total',
    help: 'Child groups created by running tasks (ctx.spawn); a repeat of a spawn key creates none.',
    registers: [this.r],
  });
  readonly deaths = new Counter({
    name: 'regroup_worker_deaths_total',
    help: 'Workers declared dead, by reason: silent (no beats) or disconnected (not back within the grace).',
    labelNames: ['reason'] as const,
    registers: [this.r],
  });
  readonly detectionSeconds = new Histogram({
    name: 'regroup_failure_detection_seconds',
    help: 'From the last message of a worker to its declaration as dead.',
    labelNames: ['reason'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60],
    registers: [this.r],
  });

  constructor(events: Emitter<CoordinatorEvents>, src: MetricsSource) {
    const r = this.r;
    // Counting reads every group. Scrapes need no token, so they share one
    // read until a group changes: a loop of scrapes on a quiet coordinator
    // costs no store reads, and a count is never older than the last change.
    let counted: ReturnType<Store['countTasks']> | null = null;
    let live: ReturnType<Store['countLiveGroups']> | null = null;
    events.on('groupChanged', () => {
      counted = null;
      live = null;
    });
    // Another leader may have written since: a new term reads afresh.
    events.on('role', () => {
      counted = null;
      live = null;
      // Another leader may have added tasks meanwhile: only what this term sees.
      this.added.clear();
    });
    const countTasks = (): ReturnType<Store['countTasks']> => {
      if (!counted) {
        const c = src.store.countTasks();
        c.catch(() => {
          if (counted === c) counted = null;
        });
        counted = c;
      }
      return counted;
    };
    new Gauge({
      name: 'regroup_tasks',
      help: 'Tasks by state over every group, read from the store at scrape time (leader only).',
      labelNames: ['state'] as const,
      registers: [r],
      async collect() {
        this.reset();
        if (src.role().role !== 'leader' || src.sessions() === null) return;
        try {
          const counts = await countTasks();
          for (const s of TASK_STATES) this.set({ state: s }, counts[s]);
        } catch (e) {
          src.logger('warn', 'metrics: could not count tasks in the store', {
            err: (e as Error).message,
          });
        }
      },
    });
    const countLive = (): ReturnType<Store['countLiveGroups']> => {
      if (!live) {
        const c = src.store.countLiveGroups();
        c.catch(() => {
          if (live === c) live = null;
        });
        live = c;
      }
      return live;
    };
    new Gauge({
      name: 'regroup_groups_live',
      help: "Groups not ended (open or sealed) by kind: root (a client's) or child (spawned by a task), read from the store at scrape time (leader only).",
      labelNames: ['kind'] as const,
      registers: [r],
      async collect() {
        this.reset();
        if (src.role().role !== 'leader' || src.sessions() === null) return;
        try {
          const n = await countLive();
          this.set({ kind: 'root' }, n.root);
          this.set({ kind: 'child' }, n.child);
        } catch (e) {
          src.logger('warn', 'metrics: could not count live groups in the store', {
            err: (e as Error).message,
          });
        }
      },
    });
    new Gauge({
      name: 'regroup_workers',
      help: 'Worker sessions of this coordinator by health at scrape time (dead: past the deadline, not swept yet).',
      labelNames: ['state'] as const,
      registers: [r],
      collect() {
        const n = new Map<WorkerHealth, number>(WORKER_STATES.map((s) => [s, 0]));
        const now = src.now();
        for (const s of src.sessions() ?? []) {
          const h = judgeWorker(s, now, src.liveness);
          n.set(h, (n.get(h) ?? 0) + 1);
        }
        for (const [state, v] of n) this.set({ state }, v);
      },
    });
    new Gauge({
      name: 'regroup_runs_waiting',
      help: 'Runs whose handler waits on a group it spawned with its slot given back (ctx.spawn handles), at scrape time.',
      registers: [r],
      collect() {
        let n = 0;
        for (const s of src.sessions() ?? []) n += s.suspendedCount;
        this.set(n);
      },
    });
    new Gauge({
      name: 'regroup_leader',
      help: '1 while this coordinator leads (writes the store and serves the API), 0 as a standby.',
      registers: [r],
      collect() {
        this.set(src.role().role === 'leader' && src.sessions() !== null ? 1 : 0);
      },
    });
    // The same label values from the first scrape on, so rate() sees a start at 0.
    for (const s of ['silent', 'disconnected']) {
      this.deaths.inc({ reason: s }, 0);
    }
    for (const s of ['done', 'canceled']) this.groupsFinished.inc({ state: s }, 0);

    events.on('tick', (e) => this.onTick(e, src.now()));
    events.on('dispatched', (d) => {
      this.dispatched.inc();
      this.dispatchSeconds.observe(Math.max(0, d.at - d.claimedAt) / 1000);
    });
    events.on('fact', (f) => {
      if (f.type !== 'worker.dead') return;
      const reason = f.data.reason;
      this.deaths.inc({ reason });
      this.detectionSeconds.observe({ reason }, Math.max(0, f.data.silentMs) / 1000);
    });
    events.on('groupChanged', (g) => {
      if (g.state === 'done' || g.state === 'canceled') this.added.delete(g.id);
      if (g.state === 'canceled') this.groupsFinished.inc({ state: 'canceled' });
      if (g.state !== 'done') return;
      this.groupsFinished.inc({ state: 'done' });
      if (g.finishedAt !== null)
        this.groupSeconds.observe(Math.max(0, g.finishedAt - g.createdAt) / 1000);
    });
  }

  /** The text exposition of this coordinator's metrics and the process's. */
  async text(): Promise<string> {
    const own = await this.registry.metrics();
    return own + '\n' + (await processMetrics().metrics());
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Remembers when the tasks of this tick's creates and adds were committed. */
  private noteAdded(tick: Tick, outcome: TickOutcome): void {
    (tick.createGroups ?? []).forEach((n, i) => {
      const o = outcome.createGroups[i];
      if (o?.status === 'created' && n.inputs.length > 0)
        this.added.set(o.group.id, [{ from: 0, at: tick.now }]);
    });
    (tick.addTasks ?? []).forEach((a, i) => {
      const o = outcome.addTasks[i];
      if (o?.status !== 'added' || a.inputs.length === 0) return;
      const ranges = this.added.get(o.group.id) ?? [];
      ranges.push({ from: o.group.total - a.inputs.length, at: tick.now });
      this.added.set(o.group.id, ranges);
    });
  }

  /** When task `index` of the group was added; null when not seen by this coordinator. */
  private addedAt(groupId: string, index: number): number | null {
    const ranges = this.added.get(groupId);
    if (!ranges) return null;
    for (let k = ranges.length - 1; k >= 0; k--) if (ranges[k]!.from <= index) return ranges[k]!.at;
    return null;
  }

  /** One committed tick: sizes, commit time, and what its run ops really did (applied only). */
  private onTick(e: CoordinatorEvents['tick'], now: number): void {
    const { tick, outcome, leases } = e;
    let ops = (tick.workers?.length ?? 0) + outcome.claimed.length;
    for (const [k, v] of Object.entries(outcome) as [keyof TickOutcome, unknown[]][]) {
      if (!NOT_OPS.has(k)) ops += v.length;
    }
    this.tickOps.observe(ops);
    this.commitSeconds.observe(e.ms / 1000);
    this.noteAdded(tick, outcome);
    const spawned = outcome.spawns.filter((o) => o.status === 'created').length;
    if (spawned > 0) this.spawned.inc(spawned);

    const commits = tick.commits ?? [];
    let committed = 0;
    for (let i = 0; i < commits.length; i++) {
      const out = outcome.commits[i];
      if (out !== 'applied') {
        if (out) this.rejected.inc({ outcome: out });
        continue;
      }
      committed++;
      const c = commits[i]!;
      const lease = leases.get(c.taskId);
      if (holdsLease(lease, c.attempt, c.workerId)) {
        this.runSeconds.observe(Math.max(0, now - lease.startedAt) / 1000);
        const at = this.addedAt(lease.groupId, lease.index);
        if (at !== null) this.taskSeconds.observe(Math.max(0, now - at) / 1000);
      }
    }
    if (committed > 0) this.committed.inc(committed);

    const failures = tick.failures ?? [];
    for (let i = 0; i < failures.length; i++) {
      const out = outcome.failures[i];
      const f = failures[i]!;
      if (out !== 'applied') {
        // A failure the coordinator made up for a dead worker (poison) is not a report.
        if (out && !f.nodeFailure) this.rejected.inc({ outcome: out });
      } else if (f.retryAt === null) this.failed.inc({ kind: f.error.kind });
      else this.retried.inc();
    }

    // A schedule timeout fails a group's pending tasks for good (kind unschedulable).
    (tick.scheduleTimeouts ?? []).forEach((s, i) => {
      const n = outcome.scheduleTimeouts[i] ?? 0;
      if (n > 0) this.failed.inc({ kind: s.error.kind }, n);
    });

    const requeues = tick.requeues ?? [];
    for (let i = 0; i < requeues.length; i++) {
      if (requeues[i]!.nodeFailure && outcome.requeues[i] === 'applied') this.reassigned.inc();
    }
    for (const out of outcome.checkpoints)
      if (out !== 'applied') this.rejected.inc({ outcome: out });
  }
}
