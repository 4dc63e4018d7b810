/**
 * The group side of applying one tick, shared by the SQL stores. The groups a
 * tick touches are held in memory for the length of the tick (each loaded
 * once, written back once); their counters move here as tasks change state,
 * and the group rules follow from the counters: done when sealed with nothing
 * outstanding, seal, cancel, failFast. The stores write the task rows; this
 * file decides what happens to the groups.
 */
import { nextGroupState } from '../core/group.js';
import type { GroupInfo, GroupParent, TaskOptions } from '../core/types.js';
import type { AddTasks, NewGroup, TaskAddOutcome } from './store.js';

/** A group counter named after the task state it counts. */
export type Counter = 'pending' | 'running' | 'succeeded' | 'failed' | 'canceled';

/** What an addTasks op does to a group, before any task is written. */
export type AddVerdict = 'added' | 'duplicate' | 'sealed' | 'offset_mismatch';

export class TickGroups {
  private readonly byId = new Map<string, GroupInfo | null>();
  private readonly touched = new Set<GroupInfo>();

  constructor(private readonly now: number) {}

  /** The group as it stands in this tick; null when it does not exist; undefined when not loaded yet. */
  get(id: string): GroupInfo | null | undefined {
    return this.byId.get(id);
  }

  /** Records a loaded group, or null for an id that does not exist. */
  put(id: string, g: GroupInfo | null): void {
    this.byId.set(id, g);
  }

  /** A group of this tick, without tasks yet: the caller counts them in with `move`, then `settle`s it. */
  create(n: Omit<NewGroup, 'inputs'>, parent: GroupParent | null = null): GroupInfo {
    const g: GroupInfo = {
      id: n.id,
      handler: n.handler,
      state: n.open ? 'open' : 'sealed',
      policy: n.policy,
      idempotencyKey: n.idempotencyKey,
      createdAt: this.now,
      sealedAt: n.open ? null : this.now,
      finishedAt: null,
      options: n.options,
      parent,
      total: 0,
      pending: 0,
      running: 0,
      succeeded: 0,
      failed: 0,
      canceled: 0,
    };
    this.byId.set(g.id, g);
    return g;
  }

  /** Moves `n` tasks between counters (from null: `n` new tasks), then lets the group take its next state. */
  move(g: GroupInfo, from: Counter | null, to: Counter, n = 1): void {
    if (n === 0) return;
    if (from) g[from] -= n;
    else g.total += n;
    g[to] += n;
    this.settle(g);
  }

  /** An open group is sealed now (and done when nothing is outstanding). */
  seal(g: GroupInfo): void {
    g.state = 'sealed';
    g.sealedAt = this.now;
    this.settle(g);
  }

  /** The group is canceled now; the caller has canceled its tasks (and moved the counters). */
  endCanceled(g: GroupInfo): void {
    g.state = 'canceled';
    g.finishedAt = this.now;
    this.touched.add(g);
  }

  /**
   * `n` failed tasks of the group are pending again (the caller wrote the
   * rows). A done group is sealed again: it has outstanding tasks now.
   */
  retryFailed(g: GroupInfo, n: number): void {
    if (n === 0) return;
    if (g.state === 'done') {
      g.state = 'sealed';
      g.finishedAt = null;
    }
    this.move(g, 'failed', 'pending', n);
  }

  /** Every group whose counters or state changed, live, in the order they first changed. */
  changed(): GroupInfo[] {
    return [...this.touched];
  }

  /** The group takes its next state after a change, and is marked changed. */
  settle(g: GroupInfo): void {
    const next = nextGroupState(g.state, g);
    if (next !== g.state) {
      g.state = next;
      if (next === 'done') g.finishedAt = this.now;
    }
    this.touched.add(g);
  }
}

/**
 * The answer to an addTasks op. A request whose tasks all exist already (an
 * offset below the total) is a duplicate even on a sealed group, so a client
 * retrying an applied request is told it applied.
 */
export function addVerdict(g: GroupInfo, a: AddTasks): AddVerdict {
  if (a.offset !== null && a.offset < g.total && a.offset + a.inputs.length <= g.total) {
    return 'duplicate';
  }
  if (g.state !== 'open') return 'sealed';
  if (a.offset !== null && a.offset !== g.total) return 'offset_mismatch';
  return 'added';
}

/** A task add whose fence held, its key already in the task's adds: a duplicate, or a conflict when the counts differ. */
export function repeatedAdd(prev: { first: number; count: number }, count: number): TaskAddOutcome {
  const status = prev.count === count ? 'duplicate' : 'conflict';
  return { status, first: prev.first, count: prev.count };
}

/** The group still takes changes to its outcome: a cancel cancels it. */
export function isLive(g: GroupInfo): boolean {
  return g.state === 'open' || g.state === 'sealed';
}

/** A final failure in this group cancels the rest of it (its policy says failFast). */
export function failsFast(g: GroupInfo): boolean {
  return g.policy === 'failFast' && isLive(g);
}

export function copyOptions(o: TaskOptions): TaskOptions {
  return { ...o, requires: [...o.requires] };
}

/** A copy of the group as it is at this point of the tick. */
export function snapshot(g: GroupInfo): GroupInfo {
  return { ...g, options: copyOptions(g.options), parent: g.parent ? { ...g.parent } : null };
}
