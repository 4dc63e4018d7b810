/**
 * Concurrency caps: a group's options.maxConcurrency, and the limit of a
 * concurrencyKey shared by the groups that name it. How many more tasks a
 * tick may claim under them. Pure: the counts come from the caller (the
 * engine's leases and its key limits).
 */

/** A ready task as the caps see it. */
export interface Capped {
  groupId: string;
  /** 0: no cap. */
  maxConcurrency: number;
  /** '': no key. */
  concurrencyKey: string;
}

/** What is leased now, and the limit of each key. */
export interface CapCounts {
  /** The group's tasks leased now (sent or reserved). */
  group(groupId: string): number;
  /** The tasks of every group naming the key leased now. */
  key(key: string): number;
  /** The key's limit; 0: not limited. */
  keyLimit(key: string): number;
}

/**
 * The room the caps leave in one tick. Each plan of the tick (the dispatch
 * of pending tasks, then the claim of the tasks it inserts) filters its
 * ready tasks through `fit`, and says what it claimed with `took`, so two
 * plans of one tick never claim past a cap together.
 */
export class CapRoom {
  readonly #byGroup = new Map<string, number>();
  readonly #byKey = new Map<string, number>();

  constructor(private readonly counts: CapCounts) {}

  /** The tasks of `ready` the caps leave room for, in their order; the rest wait. */
  fit<T extends Capped>(ready: readonly T[]): T[] {
    const groupLeft = new Map<string, number>();
    const keyLeft = new Map<string, number>();
    return ready.filter((t) => {
      const capped = t.maxConcurrency > 0;
      const g = !capped
        ? Infinity
        : (groupLeft.get(t.groupId) ??
          t.maxConcurrency - this.counts.group(t.groupId) - (this.#byGroup.get(t.groupId) ?? 0));
      const key = t.concurrencyKey;
      const limit = key === '' ? 0 : this.counts.keyLimit(key);
      const k =
        limit <= 0
          ? Infinity
          : (keyLeft.get(key) ?? limit - this.counts.key(key) - (this.#byKey.get(key) ?? 0));
      const fits = g > 0 && k > 0;
      if (capped) groupLeft.set(t.groupId, Math.max(0, fits ? g - 1 : g));
      if (limit > 0) keyLeft.set(key, Math.max(0, fits ? k - 1 : k));
      return fits;
    });
  }

  /** These tasks were claimed in this tick. */
  took(claimed: Iterable<Capped>): void {
    for (const t of claimed) {
      this.#byGroup.set(t.groupId, (this.#byGroup.get(t.groupId) ?? 0) + 1);
      if (t.concurrencyKey !== '')
        this.#byKey.set(t.concurrencyKey, (this.#byKey.get(t.concurrencyKey) ?? 0) + 1);
    }
  }
}
