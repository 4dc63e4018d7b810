/**
 * Concurrency caps (a group's options.maxConcurrency): how many more of a
 * group's tasks a tick may claim. Pure: the running counts come from the
 * caller (the engine's leases).
 */

/** A ready task as the caps see it. */
export interface Capped {
  groupId: string;
  /** 0: no cap. */
  maxConcurrency: number;
}

/**
 * The room the caps leave in one tick. Each plan of the tick (the dispatch
 * of pending tasks, then the claim of the tasks it inserts) filters its
 * ready tasks through `fit`, and says what it claimed with `took`, so two
 * plans of one tick never claim past a cap together.
 */
export class CapRoom {
  readonly #taken = new Map<string, number>();

  /** `running(groupId)`: the group's tasks leased now (sent or reserved). */
  constructor(private readonly running: (groupId: string) => number) {}

  /** The tasks of `ready` the caps leave room for, in their order; the rest wait. */
  fit<T extends Capped>(ready: readonly T[]): T[] {
    const left = new Map<string, number>();
    return ready.filter((t) => {
      if (t.maxConcurrency <= 0) return true;
      const n =
        left.get(t.groupId) ??
        t.maxConcurrency - this.running(t.groupId) - (this.#taken.get(t.groupId) ?? 0);
      left.set(t.groupId, Math.max(0, n - 1));
      return n > 0;
    });
  }

  /** These tasks were claimed in this tick (by group). */
  took(groupIds: Iterable<string>): void {
    for (const g of groupIds) this.#taken.set(g, (this.#taken.get(g) ?? 0) + 1);
  }
}
