/**
 * The index of runnable work: every group with pending tasks, by shape
 * (handler + sorted required labels), held by the engine in memory and kept
 * from each tick's changed groups. Dispatch asks it which groups to read:
 * only groups of shapes some worker with free slots can run, at most `max`
 * a tick, least recently served first. Each worker with free slots is owed
 * that many of the groups it can run (its share of the read), the rest of
 * the `max` going to the least recently served groups of all: so a worker
 * is given work whatever the backlog of groups only other workers can run.
 * A group goes to the back of the line when it was served (it got a run, or
 * it had nothing ready: a retry backoff); one that had ready tasks but got
 * no slot keeps its place. Groups no worker can run cost nothing at a read.
 *
 * It also keeps why a group waits (core/waiting.ts): `judge` is told the
 * connected workers and says which groups started or stopped waiting.
 * Pure: time comes in as `now`.
 */
import {
  offeredHandlers,
  offers,
  waitingCode,
  whyWaiting,
  type GroupWaiting,
  type Offer,
  type WaitingCode,
  type WaitingReason,
} from './waiting.js';
import type { GroupInfo } from './types.js';

/** What the index keeps of a group: from GroupInfo (a changed group of a tick, or a loaded one). */
export type IndexedGroup = Pick<GroupInfo, 'id' | 'handler' | 'state' | 'pending'> & {
  options: Pick<GroupInfo['options'], 'requires' | 'scheduleTimeoutMs' | 'priority'>;
};

interface Entry {
  readonly id: string;
  readonly shape: Shape;
  readonly scheduleTimeoutMs: number;
  /** The group's options.priority: a higher one is read first, across groups. */
  readonly priority: number;
  /** Its place in the line: lower is served sooner; taken anew when served. */
  stamp: number;
  /** Since when no connected worker could run it; null while one can (or not judged yet). */
  waitingSince: number | null;
}

interface Shape {
  readonly key: string;
  readonly handler: string;
  readonly requires: readonly string[];
  /** Its groups, any priority. */
  readonly groups: Map<string, Entry>;
  /**
   * Its groups by priority, each level least recently served first (Map
   * order: served ones are moved to the end of their level).
   */
  readonly levels: Map<number, Map<string, Entry>>;
  /** The priorities of `levels`, highest first. */
  priorities: number[];
  /** Why no connected worker can run it (the verdict alone); null when one can. */
  code: WaitingCode | null;
  /** The offers version the verdict was taken at; -1: never judged. */
  judged: number;
  /** The reason said for a person, made when first asked for at an offers version. */
  said: { version: number; reason: WaitingReason } | null;
}

/** A worker with free slots, as dispatch sees it (core/dispatch.ts's WorkerCredit is one). */
export interface Credit extends Offer {
  free: number;
}

/** A runnable shape's line at a pick: what is not read yet, from its head. */
interface Line {
  readonly it: Iterator<Entry, undefined>;
  head: Entry | undefined;
}

/** Workers with free slots that can run the same shapes: the groups they are owed at a pick. */
interface Kind {
  readonly shapes: readonly number[];
  owed: number;
}

/** A group that started or stopped waiting at a judge. */
export interface WaitChange {
  groupId: string;
  handler: string;
  /** Set when it started waiting. */
  waiting?: GroupWaiting;
}

/** A group whose scheduleTimeoutMs ran out while no connected worker could run it. */
export interface Expired {
  groupId: string;
  reason: WaitingReason;
  scheduleTimeoutMs: number;
}

/** The shape of a group's tasks: what a worker must offer to run them. */
export function shapeKey(handler: string, requires: readonly string[]): string {
  return JSON.stringify([handler, ...[...requires].sort()]);
}

/** A shape's groups in the order dispatch reads them: highest priority first, then least recently served. */
function* inLine(s: Shape): Generator<Entry, undefined, undefined> {
  for (const p of s.priorities) yield* s.levels.get(p)!.values();
  return undefined;
}

/** Whether `a` is read before `b`: a higher priority, or as high and served less recently. */
function before(a: Entry, b: Entry): boolean {
  return a.priority > b.priority || (a.priority === b.priority && a.stamp < b.stamp);
}

/** The group has tasks dispatch may give out, now or after a backoff. */
export function hasPendingWork(g: Pick<GroupInfo, 'state' | 'pending'>): boolean {
  return g.pending > 0 && (g.state === 'open' || g.state === 'sealed');
}

export class RunnableIndex {
  private readonly shapes = new Map<string, Shape>();
  private readonly byId = new Map<string, Entry>();
  /** Entries added since the last judge. */
  private readonly fresh = new Set<Entry>();
  /** Waiting entries with a schedule timeout. */
  private readonly timed = new Set<Entry>();
  private clock = 0;
  /**
   * What the connected workers offered at the last judge, and its version:
   * a new version whenever a worker comes or goes or announces anew (its
   * handler and label sets are new objects then). Verdicts and reasons are
   * kept per version, so a judge with the same workers costs O(workers).
   */
  private offers: readonly Offer[] = [];
  private version = 0;
  private offered: { version: number; names: string[] } | null = null;

  get size(): number {
    return this.byId.size;
  }

  has(groupId: string): boolean {
    return this.byId.has(groupId);
  }

  /** A group changed (or was loaded): indexed while it has pending work, dropped otherwise. */
  update(g: IndexedGroup): void {
    const known = this.byId.get(g.id);
    if (!hasPendingWork(g)) {
      if (known) this.drop(known);
      return;
    }
    if (known) return;
    const key = shapeKey(g.handler, g.options.requires);
    let shape = this.shapes.get(key);
    if (!shape) {
      const requires = [...g.options.requires].sort();
      shape = {
        key,
        handler: g.handler,
        requires,
        groups: new Map(),
        levels: new Map(),
        priorities: [],
        code: null,
        judged: -1,
        said: null,
      };
      this.shapes.set(key, shape);
    }
    const e: Entry = {
      id: g.id,
      shape,
      scheduleTimeoutMs: g.options.scheduleTimeoutMs,
      priority: g.options.priority,
      stamp: ++this.clock,
      waitingSince: null,
    };
    shape.groups.set(g.id, e);
    let level = shape.levels.get(e.priority);
    if (!level) {
      shape.levels.set(e.priority, (level = new Map()));
      shape.priorities = [...shape.levels.keys()].sort((a, b) => b - a);
    }
    level.set(g.id, e);
    this.byId.set(g.id, e);
    this.fresh.add(e);
  }

  private drop(e: Entry): void {
    this.byId.delete(e.id);
    this.fresh.delete(e);
    this.timed.delete(e);
    e.shape.groups.delete(e.id);
    const level = e.shape.levels.get(e.priority);
    level?.delete(e.id);
    if (level?.size === 0) {
      e.shape.levels.delete(e.priority);
      e.shape.priorities = e.shape.priorities.filter((p) => p !== e.priority);
    }
    if (e.shape.groups.size === 0) this.shapes.delete(e.shape.key);
  }

  /**
   * The groups to read this tick: at most `max`, of shapes some of `workers`
   * (the ones with free slots) can run, in two passes.
   *
   * Shares: workers that can run the same indexed shapes are one kind, owed
   * their free slots summed. In rounds, each kind still owed takes the least
   * recently served group it can run that no kind took yet, one a round
   * (kinds in order of the least recently served group each can run). So a
   * worker's free slots face groups it can run whatever the number of older
   * groups only other workers can run; a worker that runs several shapes
   * takes from them all by when they were served.
   *
   * Fill: the rest of the `max` goes to the least recently served groups of
   * every runnable shape, as if no share had been taken (a group read with
   * nothing ready costs a read, not a slot; backoffs are swept as fast).
   *
   * The ids come least recently served first. `candidates` counts every group
   * of the runnable shapes. Costs O((max + kinds) x shapes), plus
   * O(workers x shapes) offer tests.
   */
  pick(workers: readonly Credit[], max: number): { ids: string[]; candidates: number } {
    const lines: Line[] = [];
    const canRun: number[][] = workers.map(() => []);
    let candidates = 0;
    for (const s of this.shapes.values()) {
      // No connected worker could run it at the last judge: none with free slots can.
      if (s.code !== null && s.judged === this.version) continue;
      let line = -1;
      workers.forEach((w, i) => {
        if (w.free <= 0 || !offers(w, s.handler, s.requires)) return;
        if (line < 0) {
          const it = inLine(s);
          line = lines.push({ it, head: it.next().value }) - 1;
          candidates += s.groups.size;
        }
        canRun[i]!.push(line);
      });
    }
    const kinds = new Map<string, Kind>();
    workers.forEach((w, i) => {
      const shapes = canRun[i]!;
      if (shapes.length === 0) return;
      const key = shapes.join(',');
      const kind = kinds.get(key);
      if (kind) kind.owed += w.free;
      else kinds.set(key, { shapes, owed: w.free });
    });
    const picked: Entry[] = [];
    /**
     * The line of `shapes` whose next group comes first: the highest
     * priority, then the least recently served; -1 when all are read.
     */
    const oldest = (shapes: readonly number[]): number => {
      let best = -1;
      let bestHead: Entry | undefined;
      for (const i of shapes) {
        const h = lines[i]!.head;
        if (h !== undefined && (bestHead === undefined || before(h, bestHead))) {
          best = i;
          bestHead = h;
        }
      }
      return best;
    };
    const take = (i: number): void => {
      const line = lines[i]!;
      picked.push(line.head!);
      line.head = line.it.next().value;
    };
    let owed = [...kinds.values()]
      .map((k) => ({ k, head: lines[oldest(k.shapes)]!.head! }))
      .sort((x, y) => (before(x.head, y.head) ? -1 : before(y.head, x.head) ? 1 : 0))
      .map(({ k }) => k);
    while (owed.length > 0 && picked.length < max) {
      const next: Kind[] = [];
      for (const k of owed) {
        if (picked.length >= max) break;
        const i = oldest(k.shapes);
        if (i < 0) continue; // everything it can run is taken
        take(i);
        if (--k.owed > 0) next.push(k);
      }
      owed = next;
    }
    const all = lines.map((_, i) => i);
    while (picked.length < max) {
      const i = oldest(all);
      if (i < 0) break;
      take(i);
    }
    picked.sort((x, y) => x.stamp - y.stamp);
    return { ids: picked.map((e) => e.id), candidates };
  }

  /** These groups were served: each goes to the back of its line. */
  served(ids: Iterable<string>): void {
    for (const id of ids) {
      const e = this.byId.get(id);
      if (!e) continue;
      const level = e.shape.levels.get(e.priority)!;
      level.delete(id);
      level.set(id, e);
      e.stamp = ++this.clock;
    }
  }

  /**
   * Judges the shapes against the connected workers (alive or suspect, not
   * draining) at `now`: the groups that started waiting (with their reason)
   * and the ones that stopped. When the workers offer what they offered at
   * the last judge, only shapes new since then are judged: O(workers) plus
   * those; otherwise O(shapes x workers), plus the groups of shapes whose
   * verdict flipped. Messages are made only for shapes that start waiting
   * and for `waiting()` (once per shape and offers version).
   */
  judge(workers: readonly Offer[], now: number): WaitChange[] {
    if (!this.sameOffers(workers)) {
      this.offers = workers.map((w) => ({ handlers: w.handlers, labels: w.labels }));
      this.version++;
    }
    const out: WaitChange[] = [];
    const start = (e: Entry): void => {
      if (e.waitingSince !== null) return;
      e.waitingSince = now;
      if (e.scheduleTimeoutMs > 0) this.timed.add(e);
      const waiting = { ...this.reason(e.shape)!, since: now };
      out.push({ groupId: e.id, handler: e.shape.handler, waiting });
    };
    const stop = (e: Entry): void => {
      if (e.waitingSince === null) return;
      e.waitingSince = null;
      this.timed.delete(e);
      out.push({ groupId: e.id, handler: e.shape.handler });
    };
    for (const s of this.shapes.values()) {
      if (s.judged === this.version) continue;
      const was = s.code;
      s.code = waitingCode(s.handler, s.requires, this.offers);
      s.judged = this.version;
      if ((was === null) !== (s.code === null)) {
        for (const e of s.groups.values()) (s.code ? start : stop)(e);
      }
    }
    for (const e of this.fresh) if (e.shape.code) start(e);
    this.fresh.clear();
    return out;
  }

  /** The same workers, offering the same handler and label sets, as at the last judge. */
  private sameOffers(workers: readonly Offer[]): boolean {
    if (workers.length !== this.offers.length) return false;
    return workers.every(
      (w, i) => w.handlers === this.offers[i]!.handlers && w.labels === this.offers[i]!.labels,
    );
  }

  /** Why the shape waits, for a person, as of the last judge; null when it can run. */
  private reason(s: Shape): WaitingReason | null {
    if (s.code === null) return null;
    if (s.said?.version === this.version) return s.said.reason;
    if (this.offered?.version !== this.version)
      this.offered = { version: this.version, names: offeredHandlers(this.offers) };
    const reason = whyWaiting(s.handler, s.requires, this.offers, this.offered.names);
    if (reason === null) return null;
    s.said = { version: this.version, reason };
    return reason;
  }

  /** Why the group waits, when no connected worker could run it at the last judge. */
  waiting(groupId: string): GroupWaiting | undefined {
    const e = this.byId.get(groupId);
    if (!e || e.waitingSince === null) return undefined;
    const reason = this.reason(e.shape);
    return reason === null ? undefined : { ...reason, since: e.waitingSince };
  }

  /**
   * The waiting groups whose scheduleTimeoutMs has run out at `now`, and the
   * earliest time another one will (null when none waits with a timeout).
   */
  expired(now: number): { expired: Expired[]; next: number | null } {
    const expired: Expired[] = [];
    let next: number | null = null;
    for (const e of this.timed) {
      const at = (e.waitingSince ?? now) + e.scheduleTimeoutMs;
      const reason = at <= now ? this.reason(e.shape) : null;
      if (reason !== null) {
        expired.push({
          groupId: e.id,
          reason,
          scheduleTimeoutMs: e.scheduleTimeoutMs,
        });
      } else if (next === null || at < next) next = at;
    }
    return { expired, next };
  }
}
