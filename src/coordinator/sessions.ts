import { randomBytes } from 'node:crypto';
import { judgeWorker, type LivenessOptions } from '../core/liveness.js';
import { lostRuns, runDeadline, type RunLimit } from '../core/deadline.js';
import type { WorkerCredit } from '../core/dispatch.js';
import type { TaskOptions, WorkerHealth } from '../core/types.js';
import type { CoordinatorMessage, RunRef } from '../protocol/worker.js';
import type { ClaimedTask, WorkerRecord } from '../store/store.js';
import type { WorkerView } from '../protocol/http.js';

/** The connection a session talks through; the gateway provides it. */
export interface Link {
  send(messages: CoordinatorMessage[]): void;
  close(code: number, reason: string): void;
  /** Frames sent on this connection so far (the worker counts what it receives, see Beat.frames). */
  readonly framesSent: number;
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

/** A run sent to the worker and not reported back yet: one of its busy slots. */
export interface SentRun {
  readonly taskId: number;
  readonly attempt: number;
  /** When it was sent; moved forward by the coordinator's stalls. */
  sentAt: number;
  /** The last progress (ctx.heartbeat, a checkpoint); sentAt until one comes. */
  progressAt: number;
  /** The frame of the current connection it went out in; null while queued (or sent before a resume, until the hello's held list said so). */
  frame: number | null;
  readonly limits: Pick<TaskOptions, 'timeoutMs' | 'heartbeatTimeoutMs'>;
}

/** A suspended run that asked for its slot back: answered `resumed` with this seq once it has one. */
export interface ResumeAsk {
  readonly taskId: number;
  readonly attempt: number;
  readonly seq: number;
}

/** What a (re)connecting worker says about itself in its hello. */
export interface Announced {
  name?: string;
  slots: number;
  labels: readonly string[];
  handlers: readonly string[];
  leaseReports: boolean;
}

/**
 * One worker session, in memory. Beats are not written to the store; state
 * changes are. It owns the rules tying its leases, its reserve, its sent
 * runs and its suspended runs together: other classes call its transitions
 * (claim, addReserve, markSent, reported, progressed, suspend, askResume,
 * grantResumes, expire, forget, resume, startDrain, creditStall) and read
 * its views.
 */
export class Session {
  readonly workerId: string;
  readonly token: string;
  #name: string;
  #slots: number;
  #labels: Set<string>;
  #handlers: Set<string>;
  #connectedAt: number;
  #lastSeenAt: number;
  #closedAt: number | null = null;
  #draining: boolean;
  #link: Link | null = null;
  /** The worker reports frames and held runs in its beats, and progress (hello.leaseReports). */
  #leaseReports = false;
  /** taskIds this session holds a lease on: sent to the worker, or reserved for it. */
  readonly #leases = new Set<number>();
  /** Leases claimed for this worker and not sent yet, oldest first (see RESERVE_RUN_MS). */
  readonly #reserve: ClaimedTask[] = [];
  /** The taskIds in `reserve`, so an ended lease is found without a scan. */
  readonly #reservedIds = new Set<number>();
  /** Runs sent and not reported back yet: the worker's busy slots, less the suspended ones. */
  readonly #sent = new Map<number, SentRun>();
  /**
   * Sent runs whose handler waits on a group it spawned, with its slot
   * given back (`suspend`); a run leaves it when its resume is granted or
   * it leaves `sent`.
   */
  readonly #suspended = new Set<number>();
  /** Suspended runs that asked for a slot back, by taskId, oldest first: served before any new run. */
  readonly #resumeAsks = new Map<number, ResumeAsk>();
  /** The frame of this connection the last round of stale revokes went out in; 0: none yet. */
  #revokeFrame = 0;
  /** Not judged dead before this (ms epoch): set after a stall that cuts connections (stallGraceMs). */
  #graceUntil = 0;
  /** Average run time seen (ms, exponentially weighted); null until a run came back. */
  #avgRunMs: number | null = null;
  #tasksDone = 0;
  /** The health last written to the store. */
  recorded: WorkerHealth;
  #outbox: CoordinatorMessage[] = [];
  #flushScheduled = false;

  constructor(init: {
    workerId: string;
    token: string;
    name: string;
    slots: number;
    labels: readonly string[];
    handlers: readonly string[];
    now: number;
    recorded?: WorkerHealth;
    draining?: boolean;
    leaseReports?: boolean;
  }) {
    this.workerId = init.workerId;
    this.token = init.token;
    this.#name = init.name;
    this.#slots = init.slots;
    this.#labels = new Set(init.labels);
    this.#handlers = new Set(init.handlers);
    this.#connectedAt = init.now;
    this.#lastSeenAt = init.now;
    this.#draining = init.draining ?? false;
    this.#leaseReports = init.leaseReports ?? false;
    this.recorded = init.recorded ?? 'alive';
  }

  // ---- views ------------------------------------------------------------------

  get name(): string {
    return this.#name;
  }
  get slots(): number {
    return this.#slots;
  }
  get labels(): ReadonlySet<string> {
    return this.#labels;
  }
  get handlers(): ReadonlySet<string> {
    return this.#handlers;
  }
  get lastSeenAt(): number {
    return this.#lastSeenAt;
  }

  /** Not judged dead before this (ms epoch); 0: no grace. */
  get graceUntil(): number {
    return this.#graceUntil;
  }

  /** When its connection closed, or null while connected. */
  get closedAt(): number | null {
    return this.#closedAt;
  }
  get draining(): boolean {
    return this.#draining;
  }
  get link(): Link | null {
    return this.#link;
  }
  get leaseReports(): boolean {
    return this.#leaseReports;
  }
  /** taskIds of every lease: sent or reserved. */
  get leases(): ReadonlySet<number> {
    return this.#leases;
  }
  /** Leases claimed ahead of free slots, oldest first. */
  get reserve(): readonly ClaimedTask[] {
    return this.#reserve;
  }
  /** Runs sent and not reported back, by taskId. */
  get sent(): ReadonlyMap<number, Readonly<SentRun>> {
    return this.#sent;
  }
  get avgRunMs(): number | null {
    return this.#avgRunMs;
  }

  health(now: number, o: LivenessOptions): WorkerHealth {
    return judgeWorker(this, now, o);
  }

  /**
   * How many more tasks may be claimed for this worker: its free slots plus
   * room in its reserve. Suspended runs hold no slot unless they asked for
   * one back.
   */
  free(): number {
    const busy = this.#leases.size - this.#suspended.size + this.#resumeAsks.size;
    return Math.max(0, this.#slots + this.reserveCap() - busy);
  }

  /** Slots the worker has free now: runs sent minus runs reported, less the suspended ones. */
  freeSlots(): number {
    return Math.max(0, this.#slots - (this.#sent.size - this.#suspended.size));
  }

  /** Runs whose handler waits on a group it spawned, with their slot given back. */
  get suspendedCount(): number {
    return this.#suspended.size;
  }

  reserveCap(): number {
    if (this.#draining || this.#avgRunMs === null || this.#avgRunMs >= RESERVE_RUN_MS) return 0;
    return Math.min(this.#slots * RESERVE_PER_SLOT, RESERVE_MAX);
  }

  /** The runs past their deadline at `now` (core/deadline.ts runDeadline), with the limit that ran out. */
  overdue(now: number, graceMs: number): { run: Readonly<SentRun>; limit: RunLimit }[] {
    const out: { run: Readonly<SentRun>; limit: RunLimit }[] = [];
    const o = { graceMs, watchProgress: this.#leaseReports };
    // A handler waiting on its children cannot heartbeat: only timeoutMs runs on.
    const waiting = { graceMs, watchProgress: false };
    for (const run of this.#sent.values()) {
      const d = runDeadline(run, run.limits, this.#suspended.has(run.taskId) ? waiting : o);
      if (d !== null && now >= d.at) out.push({ run, limit: d.limit });
    }
    return out;
  }

  /** Runs sent in a frame the worker says it received and that it does not hold (core/deadline.ts lostRuns). */
  lost(framesReceived: number, held: readonly RunRef[]): Readonly<SentRun>[] {
    return lostRuns(this.#sent.values(), framesReceived, held);
  }

  // ---- connection and liveness -----------------------------------------------

  /**
   * A beat says the worker has read `frames` frames of this connection: may
   * it start a round of stale revokes? Only when it has read every frame
   * sent, the last round's included (the round goes out in the next frame).
   * Starts the round when it may.
   */
  revokeRound(frames: number): boolean {
    const link = this.#link;
    if (link === null || frames < link.framesSent || frames < this.#revokeFrame) return false;
    this.#revokeFrame = link.framesSent + 1;
    return true;
  }

  /** Anything arrived from the worker. */
  heard(now: number): void {
    this.#lastSeenAt = now;
  }

  /** The session's first connection, once its record is durable. */
  attach(link: Link): void {
    this.#link = link;
    this.#revokeFrame = 0;
    this.#closedAt = null;
  }

  /** Its connection closed (a resume may still come, within closeGraceMs). */
  detach(now: number): void {
    this.#link = null;
    this.#closedAt = now;
  }

  /** Declared dead or gone: no link any more, nothing more is sent. */
  drop(): void {
    this.#link = null;
  }

  /**
   * The coordinator could not hear for `ms` (a stall: core/liveness.ts
   * stalledMs): that time is not this worker's silence, nor part of its
   * close grace, nor time its runs took. Never moves a time past `now`.
   */
  creditStall(ms: number, now: number, graceMs: number): void {
    this.#lastSeenAt = Math.min(now, this.#lastSeenAt + ms);
    if (this.#closedAt !== null) this.#closedAt = Math.min(now, this.#closedAt + ms);
    // A stall long enough to cut connections (the worker's own silence timer,
    // then reconnects that fail until it ends): the worker comes back after
    // a backoff, so it is not judged dead for `graceMs` (core stallGraceMs).
    if (graceMs > 0) this.#graceUntil = Math.max(this.#graceUntil, now + graceMs);
    for (const r of this.#sent.values()) {
      r.sentAt = Math.min(now, r.sentAt + ms);
      r.progressAt = Math.min(now, r.progressAt + ms);
    }
  }

  /**
   * The worker reconnected with this session's token: it takes `link`, and
   * says what it holds. The reserve (never sent) is emptied and sent runs
   * not in `held` are forgotten as sent: the caller requeues every lease
   * `held` lacks.
   */
  resume(link: Link, a: Announced, held: ReadonlyMap<number, number>, now: number): void {
    this.#link = link;
    this.#revokeFrame = 0;
    this.#closedAt = null;
    this.#lastSeenAt = now;
    this.#slots = a.slots;
    this.#handlers = new Set(a.handlers);
    this.#labels = new Set(a.labels);
    this.#leaseReports = a.leaseReports;
    for (const [taskId, r] of [...this.#sent]) {
      if (held.get(taskId) !== r.attempt) this.#unsend(taskId);
      // The hello listed it: received, whatever frame of the old connection it came in.
      else r.frame = 0;
    }
    this.takeReserve();
  }

  /** The worker asked to drain: no new tasks. False when it already was draining. */
  startDrain(): boolean {
    if (this.#draining) return false;
    this.#draining = true;
    return true;
  }

  // ---- leases and runs ----------------------------------------------------------

  /** A lease was claimed (committed) for this worker. */
  claim(taskId: number): void {
    this.#leases.add(taskId);
  }

  /** A lease found in the store at start: sent, as far as this term knows (the resume tells). */
  restoreLease(lease: Pick<ClaimedTask, 'taskId' | 'attempt' | 'options'>, now: number): void {
    this.#leases.add(lease.taskId);
    this.#sent.set(lease.taskId, newSentRun(lease, now));
  }

  addReserve(c: ClaimedTask): void {
    this.#reserve.push(c);
    this.#reservedIds.add(c.taskId);
  }

  /** The oldest reserved run, taken out of the reserve; undefined when empty. */
  nextReserved(): ClaimedTask | undefined {
    const c = this.#reserve.shift();
    if (c) this.#reservedIds.delete(c.taskId);
    return c;
  }

  /** Empties the reserve, returning what was in it (to hand back). */
  takeReserve(): ClaimedTask[] {
    this.#reservedIds.clear();
    return this.#reserve.splice(0);
  }

  /** The run goes to the worker now (queued in this turn's frame). */
  markSent(c: Pick<ClaimedTask, 'taskId' | 'attempt' | 'options'>, now: number): void {
    this.#sent.set(c.taskId, newSentRun(c, now));
  }

  /** The worker reported a run (result, failure, release): its slot is free again. */
  reported(taskId: number, now: number): void {
    const r = this.#sent.get(taskId);
    if (r === undefined) return;
    this.#unsend(taskId);
    const ms = Math.max(0, now - r.sentAt);
    this.#avgRunMs = this.#avgRunMs === null ? ms : this.#avgRunMs * 0.9 + ms * 0.1;
  }

  /** The run showed progress (ctx.heartbeat, a checkpoint). */
  progressed(taskId: number, attempt: number, now: number): void {
    const r = this.#sent.get(taskId);
    if (r !== undefined && r.attempt === attempt) r.progressAt = Math.max(r.progressAt, now);
  }

  /**
   * The coordinator took the run back (past its deadline, or lost by the
   * worker): its slot is free, though the lease lasts until the failure or
   * requeue commits. Does not count toward the average run time.
   */
  expire(taskId: number): void {
    this.#unsend(taskId);
  }

  /** A run leaves `sent`: it is not suspended any more either, and its resume ask is dropped. */
  #unsend(taskId: number): void {
    this.#sent.delete(taskId);
    this.#suspended.delete(taskId);
    this.#resumeAsks.delete(taskId);
  }

  /**
   * The run's handler waits on a group it spawned: its slot is free. False
   * (nothing changes, the run keeps its slot) when this session did not
   * send that attempt, or `cap` runs are suspended already. A repeat (after
   * a reconnect) of a suspend it has is true.
   */
  suspend(taskId: number, attempt: number, cap: number): boolean {
    if (this.#sent.get(taskId)?.attempt !== attempt) return false;
    if (this.#suspended.has(taskId)) return true;
    if (this.#suspended.size >= cap) return false;
    this.#suspended.add(taskId);
    return true;
  }

  /**
   * The suspended run's wait ended: it asks for a slot back. `granted` when
   * it holds one now (a free slot, or it never gave its slot up), `queued`
   * until grantResumes() gives it one, `stale` when this session does not
   * hold that attempt. Asks wait oldest first, ahead of any run not sent yet.
   */
  askResume(ask: ResumeAsk, now: number): 'granted' | 'queued' | 'stale' {
    const r = this.#sent.get(ask.taskId);
    if (r?.attempt !== ask.attempt) return 'stale';
    if (!this.#suspended.has(ask.taskId)) return 'granted';
    this.#resumeAsks.delete(ask.taskId);
    this.#resumeAsks.set(ask.taskId, ask);
    return this.grantResumes(now).some((g) => g.taskId === ask.taskId) ? 'granted' : 'queued';
  }

  /**
   * Gives free slots to the suspended runs that asked for one, oldest ask
   * first; returns those granted (each to answer `resumed`). Its heartbeat
   * clock starts again: a waiting handler could not beat.
   */
  grantResumes(now: number): ResumeAsk[] {
    const granted: ResumeAsk[] = [];
    for (const ask of this.#resumeAsks.values()) {
      if (this.freeSlots() === 0) break;
      this.#resumeAsks.delete(ask.taskId);
      this.#suspended.delete(ask.taskId);
      const r = this.#sent.get(ask.taskId);
      if (r !== undefined) r.progressAt = Math.max(r.progressAt, now);
      granted.push(ask);
    }
    return granted;
  }

  /** The lease ended (committed, failed, requeued, revoked): forget it everywhere. `finished`: a run that came to its end. */
  forget(taskId: number, finished = false): void {
    if (finished && this.#leases.has(taskId)) this.#tasksDone++;
    this.#leases.delete(taskId);
    this.#unsend(taskId);
    if (!this.#reservedIds.delete(taskId)) return;
    const i = this.#reserve.findIndex((c) => c.taskId === taskId);
    if (i >= 0) this.#reserve.splice(i, 1);
  }

  // ---- sending ----------------------------------------------------------------

  /** Queues a message; everything queued in one event-loop turn goes out in one frame. */
  send(m: CoordinatorMessage): void {
    if (this.#link === null) return;
    this.#outbox.push(m);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.#flushScheduled = false;
    if (this.#outbox.length === 0 || this.#link === null) {
      this.#outbox = [];
      return;
    }
    const frame = this.#outbox;
    this.#outbox = [];
    this.#link.send(frame);
    // Which frame of this connection each run went out in, for the worker's frame count.
    const n = this.#link.framesSent;
    for (const m of frame) {
      if (m.t !== 'run') continue;
      const r = this.#sent.get(m.taskId);
      if (r !== undefined && r.attempt === m.attempt) r.frame = n;
    }
  }

  record(state: WorkerRecord['state'], now: number): WorkerRecord {
    return {
      workerId: this.workerId,
      name: this.#name,
      token: this.token,
      state,
      slots: this.#slots,
      labels: [...this.#labels],
      handlers: [...this.#handlers],
      connectedAt: this.#connectedAt,
      seenAt: now,
    };
  }

  view(now: number, o: LivenessOptions): WorkerView {
    return {
      workerId: this.workerId,
      name: this.#name,
      health: this.health(now, o),
      connected: this.#link !== null,
      slots: this.#slots,
      running: this.#sent.size - this.#suspended.size,
      waiting: this.#suspended.size,
      labels: [...this.#labels],
      handlers: [...this.#handlers],
      lastSeenAgoMs: Math.max(0, now - this.#lastSeenAt),
      tasksDone: this.#tasksDone,
    };
  }
}

function newSentRun(c: Pick<ClaimedTask, 'taskId' | 'attempt' | 'options'>, now: number): SentRun {
  return {
    taskId: c.taskId,
    attempt: c.attempt,
    sentAt: now,
    progressAt: now,
    frame: null,
    limits: { timeoutMs: c.options.timeoutMs, heartbeatTimeoutMs: c.options.heartbeatTimeoutMs },
  };
}

export function newWorkerId(): string {
  return 'w_' + randomBytes(6).toString('hex');
}

export function newToken(): string {
  return randomBytes(18).toString('base64url');
}

/** All live sessions. A session declared dead is forgotten, so a late resume with its id gets a new session. */
/** How many workers declared dead `regroup status` and GET /v1/workers keep showing, newest first. */
export const DEAD_SHOWN = 50;
/** How long a worker declared dead stays in that list. */
export const DEAD_SHOWN_MS = 10 * 60_000;

/** A worker declared dead, as it was last seen: shown (`dead`, no slots in use) for a while, then forgotten. */
interface Departed {
  view: WorkerView;
  lastSeenAt: number;
  deadAt: number;
}

export class Sessions {
  private readonly byId = new Map<string, Session>();
  /** Workers declared dead, oldest first; at most DEAD_SHOWN. */
  private readonly dead: Departed[] = [];

  get(workerId: string): Session | undefined {
    return this.byId.get(workerId);
  }

  add(s: Session): void {
    this.byId.set(s.workerId, s);
  }

  remove(workerId: string): void {
    this.byId.delete(workerId);
  }

  /**
   * Removes a session declared dead and keeps what it looked like, so that
   * the workers view shows it `dead` (DEAD_SHOWN_MS, at most DEAD_SHOWN)
   * instead of dropping it the moment it died. Its runs went elsewhere: no
   * slot of it is in use.
   */
  bury(s: Session, now: number, o: LivenessOptions): void {
    this.remove(s.workerId);
    const view = {
      ...s.view(now, o),
      health: 'dead' as const,
      connected: false,
      running: 0,
      waiting: 0,
    };
    this.dead.push({ view, lastSeenAt: s.lastSeenAt, deadAt: now });
    if (this.dead.length > DEAD_SHOWN) this.dead.splice(0, this.dead.length - DEAD_SHOWN);
  }

  /** Every worker to show: the live sessions, then those declared dead lately, newest first. */
  views(now: number, o: LivenessOptions): WorkerView[] {
    while (this.dead.length > 0 && now - this.dead[0]!.deadAt > DEAD_SHOWN_MS) this.dead.shift();
    const live = [...this.byId.values()].map((s) => s.view(now, o));
    const dead = this.dead
      .map((d) => ({ ...d.view, lastSeenAgoMs: Math.max(0, now - d.lastSeenAt) }))
      .reverse();
    return [...live, ...dead];
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
