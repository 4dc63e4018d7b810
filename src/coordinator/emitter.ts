import type { GroupInfo } from '../core/types.js';
import type { LeaderState } from '../store/leadership.js';
import type { Lease, Tick, TickOutcome } from '../store/store.js';
import type { RecordedFact } from './facts.js';

/** What a coordinator tells its embedder (the demo, tests, later metrics and the dashboard). */
export interface CoordinatorEvents {
  /** A result was committed (the first and only time for that task). */
  committed: { taskId: number; attempt: number; workerId: string };
  /** Runs were sent to a worker. */
  dispatched: {
    taskId: number;
    attempt: number;
    workerId: string;
    groupId: string;
    /** When the lease was taken (the claiming tick's time), ms since the epoch. */
    claimedAt: number;
    /** When the run was sent. */
    at: number;
  };
  /**
   * A fact was recorded (core/events.ts): the same one the durable event log
   * gets, as it happens. A worker declared dead is `worker.dead`, whose
   * `silentMs` is how long detection took.
   */
  fact: RecordedFact;
  /**
   * A tick was committed, before its outcome is applied (metrics). `ms` is the
   * store's commit time; `leases` is the engine's lease cache as it was before
   * this tick (read it in the listener, never keep or change it).
   */
  tick: {
    tick: Tick;
    outcome: TickOutcome;
    ms: number;
    leases: ReadonlyMap<number, Lease>;
  };
  groupChanged: GroupInfo;
  /** This coordinator became leader or standby (PostgreSQL with several coordinators). */
  role: LeaderState;
}

type Fn<T> = (payload: T) => void;

export class Emitter<E extends object> {
  private readonly fns = new Map<keyof E, Set<Fn<never>>>();

  on<K extends keyof E>(event: K, fn: Fn<E[K]>): () => void {
    let set = this.fns.get(event);
    if (!set) this.fns.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  has(event: keyof E): boolean {
    return (this.fns.get(event)?.size ?? 0) > 0;
  }

  emit<K extends keyof E>(event: K, payload: E[K]): void {
    const set = this.fns.get(event);
    if (!set) return;
    for (const fn of set) {
      try {
        (fn as Fn<E[K]>)(payload);
      } catch {
        // A listener's error is its own; the coordinator goes on.
      }
    }
  }
}
