/**
 * The lifecycle of worker sessions: hello and resume, drain, leave, death,
 * the sweep (liveness, stalls, run deadlines), lost runs, and sending runs
 * out of a session's reserve. The protocol part (worker-protocol.ts) parses
 * and dispatches messages and calls in here.
 */
import { RegroupError } from '../core/errors.js';
import { fact } from '../core/events.js';
import { decideNodeFailure } from '../core/retry.js';
import { stallGraceMs, stalledMs } from '../core/liveness.js';
import { holdsLease } from '../core/fence.js';
import { deadlineError, grantedSlots } from '../core/deadline.js';
import { PROTOCOL_VERSION, type Hello, type RunRef, type Welcome } from '../protocol/worker.js';
import type { ClaimedTask, RevokedRun } from '../store/store.js';
import type { Engine } from './engine.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import { Session, Sessions, newToken, newWorkerId, type Link, type ResumeAsk } from './sessions.js';
import type { CoordinatorEvents, Emitter } from './emitter.js';
import { scoped } from './facts.js';
import { failRun } from './worker-runs.js';

/** Per connection: the session it speaks for, once hello was answered. */
export interface Conn {
  link: Link;
  session: Session | null;
  helloPending: boolean;
  closed: boolean;
}

export class WorkerLifecycle {
  private sweepTimer: NodeJS.Timeout | null = null;
  /** When the sweep last ran: a late sweep measures a stall of the coordinator itself. */
  private lastSweepAt = 0;
  /** taskId -> when its worker died, to measure how fast it runs again. */
  private readonly requeuedAt = new Map<number, { at: number; from: string }>();

  constructor(
    private readonly o: ResolvedCoordinatorOptions,
    private readonly engine: Engine,
    readonly sessions: Sessions,
    private readonly emitter: Emitter<CoordinatorEvents>,
  ) {}

  start(): void {
    this.lastSweepAt = this.o.now();
    this.sweepTimer = setInterval(() => this.sweep(), this.o.sweepMs);
    this.sweepTimer.unref();
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    for (const s of this.sessions.all()) s.link?.close(1001, 'coordinator shutting down');
  }

  onClose(conn: Conn): void {
    conn.closed = true;
    const s = conn.session;
    if (!s || s.link !== conn.link) return;
    s.detach(this.o.now());
    scoped(this.o.logger, s)('info', 'worker connection closed', { name: s.name });
  }

  /** A run came back from the worker: its slot is free, so the next reserved run goes at once. */
  freed(s: Session, taskId: number, attempt: number): void {
    // Only the run this worker holds frees a slot: a stale or foreign report changes nothing.
    if (!holdsLease(this.engine.leases.get(taskId), attempt, s.workerId)) return;
    s.reported(taskId, this.o.now());
    this.pump(s);
  }

  /**
   * The run's handler waits on a group it spawned: its slot goes to the
   * worker's next reserved run or a new one. Not taken past
   * maxSuspendedPerWorker, or for a run this worker does not hold.
   */
  suspend(s: Session, taskId: number, attempt: number): void {
    if (!holdsLease(this.engine.leases.get(taskId), attempt, s.workerId)) return;
    if (!s.suspend(taskId, attempt, this.o.maxSuspendedPerWorker)) return;
    this.pump(s);
    this.engine.markDispatch();
  }

  /** A suspended run's wait ended: `resumed` once it has a slot (now, or when the next frees). */
  askResume(s: Session, m: ResumeAsk): void {
    // The message itself carries `t: 'resume'`: only its reference is kept and echoed.
    const ask = { taskId: m.taskId, attempt: m.attempt, seq: m.seq };
    const answer = s.askResume(ask, this.o.now());
    if (answer === 'granted') s.send({ t: 'resumed', ...ask, ok: true });
    else if (answer === 'stale') s.send({ t: 'resumed', ...ask, ok: false, code: 'stale_attempt' });
  }

  /** Gives free slots to suspended runs that asked for one, then sends reserved runs while slots are free. */
  private pump(s: Session): void {
    if (s.link === null) return;
    const now = this.o.now();
    for (const ask of s.grantResumes(now)) s.send({ t: 'resumed', ...ask, ok: true });
    while (s.reserve.length > 0 && s.freeSlots() > 0) {
      const c = s.nextReserved()!;
      if (!holdsLease(this.engine.leases.get(c.taskId), c.attempt, s.workerId)) continue;
      this.sendRun(s, c, now);
    }
  }

  /** Hands runs back to pending (fenced; nothing counts against the tasks). */
  private giveBack(s: Session, runs: Iterable<{ taskId: number; attempt: number }>): void {
    for (const r of runs)
      this.engine.requeue({ taskId: r.taskId, attempt: r.attempt, workerId: s.workerId }, false);
  }

  /** The worker stops taking tasks; its running ones finish (or are released). */
  startDrain(s: Session): void {
    if (!s.startDrain()) return;
    this.giveBack(s, s.takeReserve());
    void this.engine.recordWorker(s.record('draining', this.o.now()));
    this.engine.record(
      fact('worker.draining', { name: s.name, running: s.leases.size }, { workerId: s.workerId }),
    );
  }

  async onHello(conn: Conn, m: Hello): Promise<void> {
    if (conn.session || conn.helloPending) {
      this.protocolError(conn, 'protocol_error', 'hello was already sent on this connection');
      return;
    }
    if (m.protocol !== PROTOCOL_VERSION) {
      this.protocolError(
        conn,
        'protocol_error',
        `protocol ${m.protocol} is not supported; this coordinator speaks ${PROTOCOL_VERSION}: upgrade the worker or the coordinator`,
      );
      conn.closed = true; // nothing more from this connection counts, not even the rest of this frame
      conn.link.close(1002, 'protocol version');
      return;
    }
    const now = this.o.now();
    const slots = this.grant(m);
    const old = m.resume ? this.sessions.get(m.resume.workerId) : undefined;
    if (old && m.resume && old.token === m.resume.token && old.health(now, this.o) !== 'dead') {
      this.resume(conn, old, m, slots, now);
      return;
    }
    conn.helloPending = true;
    const s = new Session({
      workerId: newWorkerId(),
      token: newToken(),
      name: m.name,
      slots,
      labels: m.labels,
      handlers: m.handlers,
      now,
      draining: m.draining === true,
      leaseReports: m.leaseReports === true,
    });
    const joined = { name: s.name, slots: s.slots };
    this.engine.record(
      fact('worker.joined', m.resume ? { ...joined, previous: m.resume.workerId } : joined, {
        workerId: s.workerId,
      }),
    );
    // The record (with the resume token) is durable before the worker can hold a lease.
    await this.engine.recordWorker(s.record(s.draining ? 'draining' : 'alive', now));
    conn.helloPending = false;
    conn.session = s;
    this.sessions.add(s);
    if (conn.closed) {
      s.detach(this.o.now());
      return;
    }
    s.attach(conn.link);
    s.send(this.welcome(s, false));
    this.engine.markDispatch();
  }

  /** The slots a hello gets: at most maxWorkerSlots; a larger announcement is logged (once per hello). */
  private grant(m: Hello): number {
    const slots = grantedSlots(m.slots, this.o.maxWorkerSlots);
    if (slots < m.slots)
      this.o.logger('warn', 'worker announced more slots than allowed; granted the cap', {
        name: m.name,
        announced: m.slots,
        slots,
        maxWorkerSlots: this.o.maxWorkerSlots,
      });
    return slots;
  }

  private resume(conn: Conn, s: Session, m: Hello, slots: number, now: number): void {
    s.link?.close(1000, 'replaced by a resumed connection');
    conn.session = s;
    const held = new Map((m.held ?? []).map((r) => [r.taskId, r.attempt]));
    const announced = {
      slots,
      labels: m.labels,
      handlers: m.handlers,
      leaseReports: m.leaseReports === true,
    };
    // Reconcile: leases the worker no longer knows of were lost (reserved ones too:
    // they were never sent); runs it holds without a lease are revoked.
    // The reserve was never sent: it is among the leases not held, handed back below.
    s.resume(conn.link, announced, held, now);
    if (m.draining) this.startDrain(s);
    s.send(this.welcome(s, true));
    for (const taskId of [...s.leases]) {
      const lease = this.engine.leases.get(taskId);
      if (!lease) continue;
      if (!holdsLease(lease, held.get(taskId) ?? 0, s.workerId)) this.giveBack(s, [lease]);
    }
    for (const [taskId, attempt] of held) {
      if (!holdsLease(this.engine.leases.get(taskId), attempt, s.workerId))
        s.send({ t: 'revoke', taskId, attempt, reason: 'stale' });
    }
    this.engine.record(
      fact('worker.resumed', { name: s.name, leases: s.leases.size }, { workerId: s.workerId }),
    );
    this.engine.markDispatch();
  }

  private welcome(s: Session, resumed: boolean): Welcome {
    return {
      t: 'welcome',
      workerId: s.workerId,
      token: s.token,
      resumed,
      heartbeatMs: this.o.heartbeatMs,
      deadAfterMs: this.o.deadAfterMs,
      closeGraceMs: this.o.closeGraceMs,
      maxResultBytes: this.o.limits.maxResultBytes,
      maxDepth: this.o.limits.maxDepth,
      slots: s.slots,
    };
  }

  private protocolError(conn: Conn, code: 'protocol_error', message: string): void {
    const e = new RegroupError(code, message);
    conn.link.send([{ t: 'error', code: e.code, message: e.message }]);
  }

  /**
   * A beat that says what the worker holds: every run sent in a frame it has
   * received and that it does not hold was lost on the way (a frame it could
   * not parse, a bug): it goes back to pending at once, counting nothing.
   * Runs it holds that are no lease of its any more are revoked again, once it
   * has read every frame sent (so a revoke still on its way is not repeated).
   */
  onHeld(s: Session, frames: number, held: readonly RunRef[]): void {
    const lost = s.lost(frames, held);
    for (const r of lost) {
      s.expire(r.taskId);
      const lease = this.engine.leases.get(r.taskId);
      if (!holdsLease(lease, r.attempt, s.workerId)) continue;
      const ref = { taskId: r.taskId, attempt: r.attempt, workerId: s.workerId };
      const said = { attempt: r.attempt, frame: r.frame, framesReceived: frames };
      const scope = { workerId: s.workerId, groupId: lease.groupId, taskId: r.taskId };
      // Recorded once the requeue really happened (a cancel in the same tick may end it first).
      this.engine.requeue(ref, false, undefined, (outcome) =>
        outcome === 'applied' ? fact('task.lost', said, scope) : null,
      );
    }
    // One round of revokes per frame sent: later beats of the same turn, or
    // beats written before the worker read the round, repeat nothing.
    if (s.revokeRound(frames)) {
      for (const r of held) {
        if (!holdsLease(this.engine.leases.get(r.taskId), r.attempt, s.workerId))
          s.send({ t: 'revoke', taskId: r.taskId, attempt: r.attempt, reason: 'stale' });
      }
    }
    if (lost.length > 0) this.pump(s);
  }

  /**
   * Why a beat's lease report cannot be true, or null: it counts frames
   * never sent on this connection, or lists more runs than any worker can
   * hold (twice the slot cap, plus the runs it may have suspended). Each
   * listed run may cost a revoke.
   */
  impossibleBeat(link: Link, frames: number, held: number): string | null {
    if (frames > link.framesSent)
      return `beat.frames ${frames} counts more frames than were sent on this connection (${link.framesSent})`;
    const most = 2 * this.o.maxWorkerSlots + this.o.maxSuspendedPerWorker;
    if (held > most)
      return `beat.held lists ${held} runs; a worker holds at most ${most} (2 x maxWorkerSlots + maxSuspendedPerWorker)`;
    return null;
  }

  /** Judges every session; declares the dead ones dead; ends runs past their deadline. Runs every sweepMs. */
  sweep(): void {
    const now = this.o.now();
    // Timers run before pending socket reads after a stall: without the credit,
    // the beats that wait in the sockets would be judged missing.
    const stall = this.lastSweepAt > 0 ? stalledMs(this.lastSweepAt, now, this.o.sweepMs) : 0;
    this.lastSweepAt = now;
    if (stall > 0) {
      const graceMs = stallGraceMs(stall, this.o);
      for (const s of this.sessions.all()) s.creditStall(stall, now, graceMs);
      if (stall >= this.o.heartbeatMs)
        this.o.logger('warn', 'the coordinator stalled; not counted against workers', {
          stalledMs: stall,
        });
    }
    for (const s of [...this.sessions.all()]) {
      const h = s.health(now, this.o);
      if (h === 'dead') {
        this.declareDead(s, now);
        continue;
      }
      if (h !== s.recorded && (h === 'suspect' || s.recorded === 'suspect')) {
        s.recorded = h;
        void this.engine.recordWorker(s.record(h, now));
      }
      this.endOverdue(s, now);
      // A backstop: any slot freed without a report (a lease ended elsewhere) takes its reserve.
      this.pump(s);
    }
    this.engine.markDispatch();
  }

  /**
   * Runs past their deadline (core/deadline.ts: timeoutMs or
   * heartbeatTimeoutMs, plus timeoutGraceMs) fail as `timeout`, decided like
   * a timeout the worker reports; the worker is told to stop, its slot is free.
   */
  private endOverdue(s: Session, now: number): void {
    const overdue = s.overdue(now, this.o.timeoutGraceMs);
    if (overdue.length === 0) return;
    for (const { run, limit } of overdue) {
      s.expire(run.taskId);
      const ref = { taskId: run.taskId, attempt: run.attempt, workerId: s.workerId };
      if (!holdsLease(this.engine.leases.get(run.taskId), run.attempt, s.workerId)) continue;
      const error = deadlineError(limit, run, run.limits, this.o.timeoutGraceMs);
      void failRun(this.o, this.engine, ref, error);
      s.send({
        t: 'revoke',
        taskId: run.taskId,
        attempt: run.attempt,
        // An older worker does not know reason timeout and would keep running the handler.
        reason: s.leaseReports ? 'timeout' : 'stale',
        message: error.message,
      });
      scoped(this.o.logger, ref)('warn', 'the coordinator ended a run past its limit', {
        attempt: run.attempt,
        limit,
      });
    }
    this.pump(s);
  }

  /**
   * One transaction: the worker's record becomes dead, each of its runs goes
   * back to pending (or fails as poison), and the event lists them. Dispatch
   * to healthy workers follows in the next tick, at once.
   */
  declareDead(s: Session, now: number): void {
    this.sessions.bury(s, now, this.o);
    s.link?.close(4000, 'declared dead: reconnect for a new session');
    s.drop();
    const reason = s.closedAt !== null ? 'disconnected' : 'silent';
    const requeued: number[] = [];
    const poisoned: number[] = [];
    for (const taskId of s.leases) {
      const lease = this.engine.leases.get(taskId);
      if (!lease) continue;
      const d = decideNodeFailure({
        nodeFailuresBefore: lease.nodeFailures,
        options: lease.options,
      });
      const ref = { taskId, attempt: lease.attempt, workerId: s.workerId };
      if (d.kind === 'requeue') {
        requeued.push(taskId);
        this.requeuedAt.set(taskId, { at: now, from: s.name });
        this.engine.requeue(ref, true);
      } else {
        poisoned.push(taskId);
        const groupId = lease.groupId;
        const op = { ...ref, error: d.error, retryAt: null, nodeFailure: true };
        const said = { attempt: lease.attempt, error: d.error.message };
        const scope = { workerId: s.workerId, groupId, taskId };
        void this.engine
          .request('failures', op, (outcome) =>
            outcome === 'applied' ? fact('task.poisoned', said, scope) : null,
          )
          .catch(() => {});
      }
    }
    void this.engine.recordWorker(s.record('dead', now));
    const silentMs = now - s.lastSeenAt;
    const dead = { name: s.name, reason, silentMs, requeued, poisoned } as const;
    this.engine.record({ ...fact('worker.dead', dead, { workerId: s.workerId }), at: now });
  }

  /** A drained worker says bye: it leaves; anything it still holds goes back without counting against the tasks. */
  leave(s: Session): void {
    const now = this.o.now();
    this.sessions.remove(s.workerId);
    for (const taskId of s.leases) {
      const lease = this.engine.leases.get(taskId);
      if (lease) this.giveBack(s, [lease]);
    }
    void this.engine.recordWorker(s.record('left', now));
    this.engine.record(fact('worker.left', { name: s.name }, { workerId: s.workerId }));
    s.link?.close(1000, 'bye');
    s.drop();
  }

  /**
   * After a tick: the claimed runs join their worker's reserve and go out as
   * far as its free slots allow; ended runs are revoked. A run claimed for a
   * session that vanished goes back.
   */
  afterTick(claimed: ClaimedTask[], revoked: RevokedRun[]): void {
    const touched = new Set<Session>();
    for (const c of claimed) {
      const s = this.sessions.get(c.workerId);
      if (!s || s.link === null || s.draining) {
        this.engine.requeue({ taskId: c.taskId, attempt: c.attempt, workerId: c.workerId }, false);
        continue;
      }
      s.addReserve(c);
      touched.add(s);
    }
    for (const r of revoked) {
      const s = this.sessions.get(r.workerId);
      if (!s) continue;
      s.send({ t: 'revoke', taskId: r.taskId, attempt: r.attempt, reason: 'canceled' });
      // The revoked run's slot is free (the engine dropped its lease): its reserve goes on.
      touched.add(s);
    }
    for (const s of touched) this.pump(s);
  }

  private sendRun(s: Session, c: ClaimedTask, now: number): void {
    s.markSent(c, now);
    s.send({
      t: 'run',
      taskId: c.taskId,
      attempt: c.attempt,
      groupId: c.groupId,
      index: c.index,
      handler: c.handler,
      input: c.input,
      ...(c.checkpoint === undefined ? {} : { checkpoint: c.checkpoint }),
      timeoutMs: c.options.timeoutMs,
      ...(c.options.heartbeatTimeoutMs > 0
        ? { heartbeatTimeoutMs: c.options.heartbeatTimeoutMs }
        : {}),
    });
    if (this.emitter.has('dispatched'))
      this.emitter.emit('dispatched', {
        taskId: c.taskId,
        attempt: c.attempt,
        workerId: c.workerId,
        groupId: c.groupId,
        claimedAt: c.startedAt,
        at: now,
      });
    const r = this.requeuedAt.get(c.taskId);
    if (r) {
      this.requeuedAt.delete(c.taskId);
      const moved = { attempt: c.attempt, from: r.from, to: s.name, afterDeathMs: now - r.at };
      const scope = { workerId: c.workerId, groupId: c.groupId, taskId: c.taskId };
      this.engine.record(fact('task.reassigned', moved, scope));
    }
  }
}
