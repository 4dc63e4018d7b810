/**
 * The index of runnable work: every group with pending tasks, by shape
 * (handler + sorted required labels), held by the engine in memory and kept
 * from each tick's changed groups. Dispatch asks it which groups to read:
 * only groups of shapes some worker with free slots can run, at most `max`
 * a tick, least recently served first. A group goes to the back of the line
 * when it was served (it got a run, or it had nothing ready: a retry
 * backoff); one that had ready tasks but got no slot keeps its place. So
 * every runnable group is read within ceil(runnable groups / max) ticks
 * that have free slots, whatever the number of groups no worker can run.
 *
 * It also keeps why a group waits (core/waiting.ts): `judge` is told the
 * connected workers and says which groups started or stopped waiting.
 * Pure: time comes in as `now`.
 */
import {
  offers,
  whyWaiting,
  type GroupWaiting,
  type Offer,
  type WaitingReason,
} from './waiting.js';
import type { GroupInfo } from './types.js';

/** What the index keeps of a group: from GroupInfo (a changed group of a tick, or a loaded one). */
export type IndexedGroup = Pick<GroupInfo, 'id' | 'handler' | 'state' | 'pending'> & {
  options: Pick<GroupInfo['options'], 'requires' | 'scheduleTimeoutMs'>;
};

interface Entry {
  readonly id: string;
  readonly shape: Shape;
  readonly scheduleTimeoutMs: number;
  /** Its place in the line: lower is served sooner; taken anew when served. */
  stamp: number;
  /** Since when no connected worker could run it; null while one can (or not judged yet). */
  waitingSince: number | null;
}

interface Shape {
  readonly key: string;
  readonly handler: string;
  readonly requires: readonly string[];
  /** Its groups, least recently served first (Map order: served ones are moved to the end). */
  readonly groups: Map<string, Entry>;
  /** Why no connected worker can run it; null when one can. */
  reason: WaitingReason | null;
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
      shape = { key, handler: g.handler, requires, groups: new Map(), reason: null };
      this.shapes.set(key, shape);
    }
    const e: Entry = {
      id: g.id,
      shape,
      scheduleTimeoutMs: g.options.scheduleTimeoutMs,
      stamp: ++this.clock,
      waitingSince: null,
    };
    shape.groups.set(g.id, e);
    this.byId.set(g.id, e);
    this.fresh.add(e);
  }

  private drop(e: Entry): void {
    this.byId.delete(e.id);
    this.fresh.delete(e);
    this.timed.delete(e);
    e.shape.groups.delete(e.id);
    if (e.shape.groups.size === 0) this.shapes.delete(e.shape.key);
  }

  /**
   * The groups to read this tick: at most `max`, of shapes some of `workers`
   * (the ones with free slots) can run, least recently served first.
   * `candidates` counts every group of those shapes. Costs O(max x shapes).
   */
  pick(workers: readonly Offer[], max: number): { ids: string[]; candidates: number } {
    const lines: Iterator<Entry, undefined>[] = [];
    const heads: (Entry | undefined)[] = [];
    let candidates = 0;
    for (const s of this.shapes.values()) {
      if (!workers.some((w) => offers(w, s.handler, s.requires))) continue;
      candidates += s.groups.size;
      const it = s.groups.values() as Iterator<Entry, undefined>;
      lines.push(it);
      heads.push(it.next().value);
    }
    const ids: string[] = [];
    while (ids.length < max) {
      let best = -1;
      let bestStamp = Infinity;
      heads.forEach((h, i) => {
        if (h !== undefined && h.stamp < bestStamp) {
          best = i;
          bestStamp = h.stamp;
        }
      });
      if (best < 0) break;
      ids.push(heads[best]!.id);
      heads[best] = lines[best]!.next().value;
    }
    return { ids, candidates };
  }

  /** These groups were served: each goes to the back of its line. */
  served(ids: Iterable<string>): void {
    for (const id of ids) {
      const e = this.byId.get(id);
      if (!e) continue;
      e.shape.groups.delete(id);
      e.shape.groups.set(id, e);
      e.stamp = ++this.clock;
    }
  }

  /**
   * Judges every shape against the connected workers (alive or suspect, not
   * draining) at `now`: the groups that started waiting (with their reason)
   * and the ones that stopped. Costs O(shapes x workers), plus the groups
   * of shapes whose verdict flipped and the groups added since the last judge.
   */
  judge(workers: readonly Offer[], now: number): WaitChange[] {
    const out: WaitChange[] = [];
    const start = (e: Entry): void => {
      if (e.waitingSince !== null) return;
      e.waitingSince = now;
      if (e.scheduleTimeoutMs > 0) this.timed.add(e);
      const waiting = { ...e.shape.reason!, since: now };
      out.push({ groupId: e.id, handler: e.shape.handler, waiting });
    };
    const stop = (e: Entry): void => {
      if (e.waitingSince === null) return;
      e.waitingSince = null;
      this.timed.delete(e);
      out.push({ groupId: e.id, handler: e.shape.handler });
    };
    for (const s of this.shapes.values()) {
      const was = s.reason;
      s.reason = whyWaiting(s.handler, s.requires, workers);
      if ((was === null) !== (s.reason === null)) {
        for (const e of s.groups.values()) (s.reason ? start : stop)(e);
      }
    }
    for (const e of this.fresh) if (e.shape.reason) start(e);
    this.fresh.clear();
    return out;
  }

  /** Why the group waits, when no connected worker could run it at the last judge. */
  waiting(groupId: string): GroupWaiting | undefined {
    const e = this.byId.get(groupId);
    if (!e || e.waitingSince === null || !e.shape.reason) return undefined;
    return { ...e.shape.reason, since: e.waitingSince };
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
      if (at <= now && e.shape.reason) {
        expired.push({
          groupId: e.id,
          reason: e.shape.reason,
          scheduleTimeoutMs: e.scheduleTimeoutMs,
        });
      } else if (next === null || at < next) next = at;
    }
    return { expired, next };
  }
}
