/**
 * What the dashboard shows, kept in memory from the coordinator's events:
 * groups with their rate, the workers (and the recently dead), the timeline
 * and the chart's series. Pure: time comes in as arguments, and why a group
 * waits from the engine through `waitingOf`; the shell (dashboard.ts) feeds
 * it events and samples.
 *
 * Nothing here holds a task's input, result or checkpoint: states, counts,
 * ids, worker names, error messages and timings only.
 */
import type { EventType } from '../../core/events.js';
import type { GroupCounts, GroupInfo, GroupState, WorkerHealth } from '../../core/types.js';
import type { GroupWaiting } from '../../core/waiting.js';
import { RedispatchTracker, seconds, type Death, type DeathReport } from './redispatch.js';

export interface WorkerRow {
  workerId: string;
  name: string;
  health: WorkerHealth;
  connected: boolean;
  slots: number;
  running: number;
  /** Runs whose handler waits on a group it spawned, with its slot given back (not in running). */
  waiting: number;
  tasksDone: number;
  heartbeatAgoMs: number;
  /** When it was declared dead; null for a live session. */
  deadAt: number | null;
}

/**
 * A group's line. `running` counts runs sent to a worker (each holds one of
 * its slots); `reserved` counts tasks claimed for a worker ahead of its free
 * slots and not sent yet (its reserve, docs/design.md): leased, so the
 * store counts them as running, but not started.
 */
export interface GroupRow extends GroupCounts {
  id: string;
  /** Claimed for a worker's reserve, not sent to it yet (not in `running`). */
  reserved: number;
  handler: string;
  state: GroupState;
  createdAt: number;
  finishedAt: number | null;
  /** Tasks finished per second, over the last few seconds (or the whole run once done); null before it is known. */
  ratePerSec: number | null;
  /** Time left at that rate; null when done or unknown. */
  etaMs: number | null;
  /** Why no connected worker can run its pending tasks (the engine's verdict, GroupView.waiting); null when one can. */
  waiting: GroupWaiting | null;
  /** The group whose task spawned it (ctx.spawn); null for a client's group. */
  parent: string | null;
}

/** The engine's verdict on a group: why it waits, or undefined (it can run, or no term: a standby). */
export type WaitingOf = (groupId: string) => GroupWaiting | undefined;

/** Tasks held in the workers' reserves now, by group (none on a standby). */
export type ReservedOf = () => ReadonlyMap<string, number>;

/** A timeline entry tells a fact: its kind is the fact's event type (core/events.ts). */
export type TimelineKind = EventType;

export interface TimelineEntry {
  /** Stable: an entry may be rewritten (a death's sentence grows as its tasks move). */
  id: string;
  /** Increases on every write, so an update carries only what changed. */
  rev: number;
  at: number;
  kind: TimelineKind;
  text: string;
  groupId?: string;
  workerId?: string;
}

/** One second of the chart. */
export interface Point {
  t: number;
  /** Tasks that became final, per second. */
  completed: number;
  /** Runs on workers at the end of the second. */
  running: number;
}

export interface Snapshot {
  now: number;
  workers: WorkerRow[];
  groups: GroupRow[];
  timeline: TimelineEntry[];
  series: Point[];
}

export type Update = Partial<Snapshot> & { now: number };

export const TIMELINE_MAX = 200;
export const SERIES_MAX = 300;
export const DEAD_MAX = 20;
/** Groups kept; the oldest final ones go first. */
export const GROUPS_MAX = 50;
/** Seconds of history behind a group's rate. */
const RATE_WINDOW = 10;

interface Tracked {
  info: GroupInfo;
  /** (time, finished) at each sample while the group runs: its rate. */
  hist: { t: number; done: number }[];
}

const finishedOf = (g: GroupInfo): number => g.succeeded + g.failed + g.canceled;
const isFinalGroup = (g: GroupInfo): boolean => g.state === 'done' || g.state === 'canceled';

export class DashboardModel {
  private readonly groups = new Map<string, Tracked>();
  /** The map size at which prune() next runs. */
  private pruneAt = 2 * GROUPS_MAX;
  private workers: WorkerRow[] = [];
  private readonly dead: WorkerRow[] = [];
  private readonly timeline: TimelineEntry[] = [];
  private readonly series: Point[] = [];
  private readonly tracker = new RedispatchTracker();
  /** What the last sample saw of each session: joins, leaves and drains are told by difference. */
  private seen: Map<string, { name: string; draining: boolean }> | null = null;
  private readonly diedIds = new Set<string>();
  private rev = 0;
  private completed = 0;
  private lastSampleAt: number | null = null;
  private flushedRev = 0;
  private flushedT = -Infinity;
  private groupsDirty = false;
  private workersDirty = false;
  /** The groups of the last update, as sent: an unchanged list is not sent again. */
  private sentGroups = '';

  constructor(
    private readonly startedAt: number,
    private readonly waitingOf: WaitingOf = () => undefined,
    private readonly reservedOf: ReservedOf = () => new Map(),
  ) {}

  /** Whether a death's tasks are still followed (so dispatches matter). */
  get following(): boolean {
    return this.tracker.following;
  }

  /** Groups read from the store when the first client came; newer news wins. */
  loadGroups(list: GroupInfo[]): void {
    for (const g of list) if (!this.groups.has(g.id)) this.groups.set(g.id, { info: g, hist: [] });
    this.prune();
    this.groupsDirty = true;
  }

  groupChanged(g: GroupInfo, now: number): void {
    const prev = this.groups.get(g.id)?.info;
    this.completed += Math.max(0, finishedOf(g) - (prev ? finishedOf(prev) : 0));
    const t = this.groups.get(g.id);
    if (t) t.info = g;
    else this.groups.set(g.id, { info: g, hist: [] });
    if (!prev && g.createdAt >= this.startedAt) {
      const n =
        g.state === 'open' ? `open, ${plural(g.total, 'task')} so far` : plural(g.total, 'task');
      this.write(
        `created:${g.id}`,
        now,
        'group.created',
        `group ${g.id} created: ${n} (${g.handler})`,
        { groupId: g.id },
      );
    }
    if (prev && prev.failed > g.failed && g.pending > prev.pending) {
      const n = prev.failed - g.failed;
      this.write(
        `retried:${g.id}:${this.rev + 1}`,
        now,
        'group.retried',
        `group ${g.id}: ${plural(n, 'failed task')} retried`,
        { groupId: g.id },
      );
    }
    if (g.state === 'done' && prev?.state !== 'done') {
      const took = g.finishedAt !== null ? ` in ${seconds(g.finishedAt - g.createdAt)}` : '';
      const parts = [`${g.succeeded} succeeded`];
      if (g.failed > 0) parts.push(`${g.failed} failed`);
      if (g.canceled > 0) parts.push(`${g.canceled} canceled`);
      this.write(
        `done:${g.id}:${this.rev + 1}`,
        now,
        'group.done',
        `group ${g.id} done${took}: ${parts.join(', ')}`,
        { groupId: g.id },
      );
    }
    if (g.state === 'canceled' && prev?.state !== 'canceled') {
      this.write(
        `canceled:${g.id}`,
        now,
        'group.canceled',
        `group ${g.id} canceled: ${g.succeeded} of ${g.total} had succeeded`,
        { groupId: g.id },
      );
    }
    this.prune();
    this.groupsDirty = true;
  }

  workerDead(d: Death): void {
    if (this.diedIds.size > 1000) this.diedIds.clear();
    this.diedIds.add(d.workerId);
    const live = this.workers.find((w) => w.workerId === d.workerId);
    this.dead.unshift({
      workerId: d.workerId,
      name: d.name,
      health: 'dead',
      connected: false,
      slots: live?.slots ?? 0,
      running: 0,
      waiting: 0,
      tasksDone: live?.tasksDone ?? 0,
      heartbeatAgoMs: live?.heartbeatAgoMs ?? 0,
      deadAt: d.at,
    });
    this.dead.splice(DEAD_MAX);
    this.workers = this.workers.filter((w) => w.workerId !== d.workerId);
    this.workersDirty = true;
    this.report(this.tracker.died(d));
  }

  /** A run was sent to `workerName`: it may be a dead worker's task running again. */
  dispatched(taskId: number, workerName: string, now: number): void {
    const r = this.tracker.dispatched(taskId, workerName, now);
    if (r) this.report(r);
  }

  /**
   * Once a second: the live sessions as they are now. Tells joins, leaves and
   * drains, closes a second of the chart, moves the groups' rates and closes
   * deaths followed too long.
   */
  sample(now: number, sessions: WorkerRow[], draining: ReadonlySet<string>): void {
    this.workers = sessions;
    this.workersDirty = true;
    this.diffSessions(now, sessions, draining);
    const dt = this.lastSampleAt === null ? 1000 : Math.max(1, now - this.lastSampleAt);
    if (this.lastSampleAt !== null) {
      const running = sessions.reduce((a, w) => a + w.running, 0);
      this.series.push({ t: now, completed: (this.completed * 1000) / dt, running });
      if (this.series.length > SERIES_MAX) this.series.splice(0, this.series.length - SERIES_MAX);
    }
    this.completed = 0;
    this.lastSampleAt = now;
    for (const t of this.groups.values()) {
      if (isFinalGroup(t.info)) continue;
      t.hist.push({ t: now, done: finishedOf(t.info) });
      if (t.hist.length > RATE_WINDOW + 1) t.hist.shift();
    }
    for (const r of this.tracker.expire(now)) this.report(r);
    this.groupsDirty = true;
  }

  snapshot(now: number): Snapshot {
    return {
      now,
      workers: this.workerRows(),
      groups: this.groupRows(now),
      timeline: this.timeline.slice(-100),
      series: [...this.series],
    };
  }

  /** What changed since the last update, or null when nothing did; marks it sent. */
  update(now: number): Update | null {
    const u: Update = { now };
    if (this.workersDirty) u.workers = this.workerRows();
    if (this.groupsDirty) {
      const groups = this.groupRows(now);
      const text = JSON.stringify(groups);
      if (text !== this.sentGroups) u.groups = groups;
      this.sentGroups = text;
    }
    const entries = this.timeline.filter((e) => e.rev > this.flushedRev);
    if (entries.length > 0) u.timeline = entries;
    const points = this.series.filter((p) => p.t > this.flushedT);
    if (points.length > 0) u.series = points;
    this.workersDirty = false;
    this.groupsDirty = false;
    this.flushedRev = this.rev;
    this.flushedT = this.series[this.series.length - 1]?.t ?? this.flushedT;
    return Object.keys(u).length > 1 ? u : null;
  }

  /** A worker's name by id, from the live sessions or the recently dead. */
  nameOf(workerId: string): string | undefined {
    return (
      this.workers.find((w) => w.workerId === workerId)?.name ??
      this.dead.find((w) => w.workerId === workerId)?.name
    );
  }

  private workerRows(): WorkerRow[] {
    const live = [...this.workers].sort((a, b) => a.name.localeCompare(b.name));
    return [...live, ...this.dead];
  }

  /** Every live group and the newest final ones, GROUPS_MAX in all (more when more are live). */
  private groupRows(now: number): GroupRow[] {
    const all = [...this.groups.values()];
    let room = GROUPS_MAX - all.filter((t) => !isFinalGroup(t.info)).length;
    const reserved = this.reservedOf();
    return all
      .sort((a, b) => b.info.createdAt - a.info.createdAt || (a.info.id < b.info.id ? -1 : 1))
      .filter((t) => !isFinalGroup(t.info) || room-- > 0)
      .map((t) => {
        const live = !isFinalGroup(t.info);
        return groupRow(t, now, {
          waiting: live ? (this.waitingOf(t.info.id) ?? null) : null,
          reserved: live ? (reserved.get(t.info.id) ?? 0) : 0,
        });
      });
  }

  private diffSessions(now: number, sessions: WorkerRow[], draining: ReadonlySet<string>): void {
    const next = new Map(
      sessions.map((w) => [w.workerId, { name: w.name, draining: draining.has(w.workerId) }]),
    );
    const before = this.seen;
    this.seen = next;
    if (before === null) return; // the first sample only learns who is there
    for (const [id, w] of next) {
      const was = before.get(id);
      if (!was)
        this.write(`joined:${id}`, now, 'worker.joined', `${w.name} joined`, { workerId: id });
      if (w.draining && !was?.draining)
        this.write(
          `draining:${id}`,
          now,
          'worker.draining',
          `${w.name} draining: takes no new tasks`,
          { workerId: id },
        );
    }
    for (const [id, w] of before) {
      if (next.has(id)) continue;
      if (this.diedIds.delete(id)) continue;
      this.write(`left:${id}`, now, 'worker.left', `${w.name} left`, { workerId: id });
    }
  }

  private report(r: DeathReport): void {
    this.write(`dead:${r.workerId}`, r.at, 'worker.dead', r.text, { workerId: r.workerId });
  }

  /** Adds an entry, or rewrites the one with this id (keeping its place). */
  private write(
    id: string,
    at: number,
    kind: TimelineKind,
    text: string,
    ids: { groupId?: string; workerId?: string },
  ): void {
    const rev = ++this.rev;
    const old = this.timeline.find((e) => e.id === id);
    if (old) {
      old.text = text;
      old.rev = rev;
      return;
    }
    this.timeline.push({ id, rev, at, kind, text, ...ids });
    if (this.timeline.length > TIMELINE_MAX)
      this.timeline.splice(0, this.timeline.length - TIMELINE_MAX);
  }

  /**
   * Drops the oldest final groups down to GROUPS_MAX, once the map has grown
   * to pruneAt: a sort now and then, not on every change (this runs on the
   * coordinator's hot path). Live groups are never dropped; when they alone
   * are many, the next prune waits until the map has doubled again.
   */
  private prune(): void {
    if (this.groups.size < this.pruneAt) return;
    const finals = [...this.groups.values()]
      .filter((t) => isFinalGroup(t.info))
      .sort((a, b) => a.info.createdAt - b.info.createdAt);
    for (const t of finals) {
      if (this.groups.size <= GROUPS_MAX) break;
      this.groups.delete(t.info.id);
    }
    this.pruneAt = Math.max(2 * GROUPS_MAX, 2 * this.groups.size);
  }
}

function groupRow(
  t: Tracked,
  now: number,
  engine: { waiting: GroupWaiting | null; reserved: number },
): GroupRow {
  const g = t.info;
  let rate: number | null = null;
  let eta: number | null = null;
  if (isFinalGroup(g)) {
    const ms = (g.finishedAt ?? now) - g.createdAt;
    rate = ms > 0 ? (finishedOf(g) * 1000) / ms : null;
  } else {
    const first = t.hist[0];
    const last = t.hist[t.hist.length - 1];
    if (first && last && last.t > first.t) {
      rate = ((last.done - first.done) * 1000) / (last.t - first.t);
      const left = g.total - finishedOf(g);
      eta = rate > 0 && g.state !== 'open' ? (left / rate) * 1000 : null;
    }
  }
  // The store's running count holds every lease; the reserve's are not running yet.
  const reserved = Math.min(engine.reserved, g.running);
  return {
    id: g.id,
    reserved,
    handler: g.handler,
    state: g.state,
    total: g.total,
    pending: g.pending,
    running: g.running - reserved,
    succeeded: g.succeeded,
    failed: g.failed,
    canceled: g.canceled,
    createdAt: g.createdAt,
    finishedAt: g.finishedAt,
    ratePerSec: rate,
    etaMs: eta,
    waiting: engine.waiting,
    parent: g.parent?.groupId ?? null,
  };
}

function plural(n: number, what: string): string {
  return n === 1 ? `1 ${what}` : `${n} ${what}s`;
}
