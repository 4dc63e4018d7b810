import { randomBytes } from 'node:crypto';
import { judgeWorker, type LivenessOptions } from '../core/liveness.js';
import type { WorkerCredit } from '../core/dispatch.js';
import type { WorkerHealth } from '../core/types.js';
import type { CoordinatorMessage } from '../protocol/worker.js';
import type { WorkerRecord } from '../store/store.js';
import type { WorkerView } from '../protocol/http.js';

/** The connection a session talks through; the gateway provides it. */
export interface Link {
  send(messages: CoordinatorMessage[]): void;
  close(code: number, reason: string): void;
}

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
  /** taskIds this session holds a lease on. */
  readonly leases = new Set<number>();
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

  free(): number {
    return Math.max(0, this.slots - this.leases.size);
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
      running: this.leases.size,
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
