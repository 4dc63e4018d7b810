import { randomBytes } from 'node:crypto';
import { judgeWorker, type LivenessOptions } from '../core/liveness.js';
import type { WorkerCredit } from '../core/dispatch.js';
import type { WorkerHealth } from '../core/types.js';
import type { CoordinatorMessage } from '../protocol/worker.js';
import type { ClaimedTask, WorkerRecord } from '../store/store.js';
import type { WorkerView } from '../protocol/http.js';

/** The connection a session talks through; the gateway provides it. */
export interface Link {
  send(messages: CoordinatorMessage[]): void;
  close(code: number, reason: string): void;
}

/**
 * Runs shorter than this (on average, per worker) get a reserve: tasks claimed
 * for the worker ahead of its free slots, sent the moment it reports a run
 * done, without waiting for a commit. Longer runs get none, so no task waits
 * behind a busy worker while another is idle.
 */
export const RESERVE_RUN_MS = 50;
/**
 * The reserve covers a few rounds of the worker's slots, enough to keep them
 * busy while the next tick commits; at most RESERVE_MAX.
 */
export const RESERVE_PER_SLOT = 4;
export const RESERVE_MAX = 1024;

/** One worker session, in memory. Beats are not written to the store; state changes are. */
export class Session {
  readonly workerId: string;
  readonly token: string;
  name: string;
  slots: number;
  labels: Set<string>;
  handlers: Set<string>;
  connectedAt: number;
  lastSeenAt: number;
  closedAt: number | null = null;
  draining = false;
  link: Link | null = null;
  /** taskIds this session holds a lease on: sent to the worker, or reserved for it. */
  readonly leases = new Set<number>();
  /** Leases claimed for this worker and not sent yet, oldest first (see RESERVE_RUN_MS). */
  readonly reserve: ClaimedTask[] = [];
  /** The taskIds in `reserve`, so an ended lease is found without a scan. */
  private readonly reservedIds = new Set<number>();
  /** Runs sent and not reported back yet, with when they were sent: the worker's busy slots. */
  readonly sent = new Map<number, number>();
  /** Average run time seen (ms, exponentially weighted); null until a run came back. */
  avgRunMs: number | null = null;
  tasksDone = 0;
  /** The health last written to the store. */
  recorded: WorkerHealth;
  private outbox: CoordinatorMessage[] = [];
  private flushScheduled = false;

  constructor(init: {
    workerId: string;
    token: string;
    name: string;
    slots: number;
    labels: string[];
    handlers: string[];
    now: number;
    recorded?: WorkerHealth;
  }) {
    this.workerId = init.workerId;
    this.token = init.token;
    this.name = init.name;
    this.slots = init.slots;
    this.labels = new Set(init.labels);
    this.handlers = new Set(init.handlers);
    this.connectedAt = init.now;
    this.lastSeenAt = init.now;
    this.recorded = init.recorded ?? 'alive';
  }

  health(now: number, o: LivenessOptions): WorkerHealth {
    return judgeWorker(this, now, o);
  }

  /**
   * The coordinator could not hear for `ms` (a stall: core/liveness.ts
   * stalledMs): that time is not this worker's silence, nor part of its
   * close grace. Never moves either time past `now`.
   */
  creditStall(ms: number, now: number): void {
    this.lastSeenAt = Math.min(now, this.lastSeenAt + ms);
    if (this.closedAt !== null) this.closedAt = Math.min(now, this.closedAt + ms);
  }

  /** How many more tasks may be claimed for this worker: its free slots plus room in its reserve. */
  free(): number {
    return Math.max(0, this.slots + this.reserveCap() - this.leases.size);
  }

  /** Slots the worker has free now: runs sent minus runs reported. */
  freeSlots(): number {
    return Math.max(0, this.slots - this.sent.size);
  }

  reserveCap(): number {
    if (this.draining || this.avgRunMs === null || this.avgRunMs >= RESERVE_RUN_MS) return 0;
    return Math.min(this.slots * RESERVE_PER_SLOT, RESERVE_MAX);
  }

  /** The worker reported a run (result, failure, release): its slot is free again. */
  reported(taskId: number, now: number): void {
    const at = this.sent.get(taskId);
    if (at === undefined) return;
    this.sent.delete(taskId);
    const ms = Math.max(0, now - at);
    this.avgRunMs = this.avgRunMs === null ? ms : this.avgRunMs * 0.9 + ms * 0.1;
  }

  /** The lease ended (committed, failed, requeued, revoked): forget it everywhere. */
  forget(taskId: number): void {
    this.leases.delete(taskId);
    this.sent.delete(taskId);
    if (!this.reservedIds.delete(taskId)) return;
    const i = this.reserve.findIndex((c) => c.taskId === taskId);
    if (i >= 0) this.reserve.splice(i, 1);
  }

  addReserve(c: ClaimedTask): void {
    this.reserve.push(c);
    this.reservedIds.add(c.taskId);
  }

  /** The oldest reserved run, taken out of the reserve; undefined when empty. */
  nextReserved(): ClaimedTask | undefined {
    const c = this.reserve.shift();
    if (c) this.reservedIds.delete(c.taskId);
    return c;
  }

  /** Empties the reserve, returning what was in it (to hand back). */
  takeReserve(): ClaimedTask[] {
    this.reservedIds.clear();
    return this.reserve.splice(0);
  }

  /** Queues a message; everything queued in one event-loop turn goes out in one frame. */
  send(m: CoordinatorMessage): void {
    if (this.link === null) return;
    this.outbox.push(m);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.outbox.length === 0 || this.link === null) {
      this.outbox = [];
      return;
    }
    const frame = this.outbox;
    this.outbox = [];
    this.link.send(frame);
  }

  record(state: WorkerRecord['state'], now: number): WorkerRecord {
    return {
      workerId: this.workerId,
      name: this.name,
      token: this.token,
      state,
      slots: this.slots,
      labels: [...this.labels],
      handlers: [...this.handlers],
      connectedAt: this.connectedAt,
      seenAt: now,
    };
  }

  view(now: number, o: LivenessOptions): WorkerView {
    return {
      workerId: this.workerId,
      name: this.name,
      health: this.health(now, o),
      connected: this.link !== null,
      slots: this.slots,
      running: this.sent.size,
      labels: [...this.labels],
      handlers: [...this.handlers],
      lastSeenAgoMs: Math.max(0, now - this.lastSeenAt),
      tasksDone: this.tasksDone,
    };
  }
}

export function newWorkerId(): string {
  return 'w_' + randomBytes(6).toString('hex');
}

export function newToken(): string {
  return randomBytes(18).toString('base64url');
}

/** All live sessions. A session declared dead is forgotten, so a late resume with its id gets a new session. */
export class Sessions {
  private readonly byId = new Map<string, Session>();

  get(workerId: string): Session | undefined {
    return this.byId.get(workerId);
  }

  add(s: Session): void {
    this.byId.set(s.workerId, s);
  }

  remove(workerId: string): void {
    this.byId.delete(workerId);
  }

  all(): IterableIterator<Session> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  /** Sessions that may be given new tasks now, with their free slots. */
  credits(now: number, o: LivenessOptions): WorkerCredit[] {
    const out: WorkerCredit[] = [];
    for (const s of this.byId.values()) {
      if (s.link === null || s.health(now, o) !== 'alive') continue;
      const free = s.free();
      if (free > 0)
        out.push({ workerId: s.workerId, free, handlers: s.handlers, labels: s.labels });
    }
    return out;
  }
}
