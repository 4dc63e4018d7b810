/**
 * Worker sessions over the protocol of src/protocol/worker.ts: hello and
 * resume, beats, reports (fenced), liveness sweep, death, drain.
 */
import { RegroupError } from '../core/errors.js';
import { decideFailure, decideNodeFailure } from '../core/retry.js';
import { stalledMs } from '../core/liveness.js';
import { holdsLease } from '../core/fence.js';
import type { TaskError } from '../core/types.js';
import { TooDeepMessage } from '../protocol/json.js';
import {
  PROTOCOL_VERSION,
  workerMessage,
  type Hello,
  type WorkerMessage,
} from '../protocol/worker.js';
import type { ClaimedTask, RevokedRun, RunOutcome } from '../store/store.js';
import type { Engine } from './engine.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import { Session, Sessions, newToken, newWorkerId, type Link } from './sessions.js';
import type { CoordinatorEvents, Emitter } from './emitter.js';

/** Per connection: the session it speaks for, once hello was answered. */
export interface Conn {
  link: Link;
  session: Session | null;
  helloPending: boolean;
  closed: boolean;
}

export class WorkerGateway {
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

  /** A frame arrived on a connection. Bad messages get an `error` message; the connection stays. */
  onFrame(conn: Conn, messages: unknown[]): void {
    if (conn.closed) return;
    const s = conn.session;
    if (s) s.lastSeenAt = this.o.now();
    for (const raw of messages) {
      if (conn.closed) return;
      if (raw instanceof TooDeepMessage) {
        this.onTooDeep(conn, raw);
        continue;
      }
      let m: WorkerMessage;
      try {
        m = workerMessage.parse(raw, 'worker message');
      } catch (e) {
        this.protocolError(conn, e as RegroupError);
        continue;
      }
      this.onMessage(conn, m);
    }
  }

  onClose(conn: Conn): void {
    conn.closed = true;
    const s = conn.session;
    if (!s || s.link !== conn.link) return;
    s.link = null;
    s.closedAt = this.o.now();
    this.o.logger('info', 'worker connection closed', { workerId: s.workerId, name: s.name });
  }

  /**
   * A message that nests deeper than maxDepth (decodeWorkerFrame left it
   * unparsed). A result fails its run for good and a checkpoint is answered
   * `saved` with `too_deep`, so nothing waits on it; anything else gets an
   * `error`. A worker of ours checks first and never sends one.
   */
  private onTooDeep(conn: Conn, m: TooDeepMessage): void {
    const s = conn.session;
    const { t, taskId, attempt, seq } = m.fields;
    const isRef = Number.isInteger(taskId) && Number.isInteger(attempt);
    if (s && s.link === conn.link && isRef && (t === 'result' || t === 'checkpoint')) {
      const ref = { taskId: taskId as number, attempt: attempt as number };
      const what = t === 'result' ? 'result' : 'checkpoint';
      this.o.logger('warn', `refused a ${what} nested too deep`, { workerId: s.workerId, ...ref });
      if (t === 'checkpoint' && Number.isInteger(seq)) {
        s.send({ t: 'saved', ...ref, seq: seq as number, ok: false, code: 'too_deep' });
        return;
      }
      if (t === 'result') {
        const message = `the result is nested deeper than ${this.o.limits.maxDepth} levels (maxDepth): return flatter data, or start the coordinator with a larger --max-json-depth`;
        this.freed(s, ref.taskId, ref.attempt);
        this.onFail(s, ref.taskId, ref.attempt, { kind: 'permanent', message });
        return;
      }
    }
    this.protocolError(conn, m.error);
  }

  private protocolError(conn: Conn, e: RegroupError): void {
    conn.link.send([{ t: 'error', code: e.code, message: e.message }]);
  }

  private onMessage(conn: Conn, m: WorkerMessage): void {
    if (m.t === 'hello') {
      void this.onHello(conn, m);
      return;
    }
    const s = conn.session;
    if (!s || s.link !== conn.link) {
      const why = conn.helloPending
        ? 'wait for welcome before sending'
        : 'send hello first (or this session was declared dead: reconnect)';
      this.protocolError(
        conn,
        new RegroupError('session_unknown', `no session on this connection: ${why}`),
      );
      return;
    }
    switch (m.t) {
      case 'beat':
        s.send({ t: 'beat' });
        return;
      case 'result':
        this.freed(s, m.taskId, m.attempt);
        this.onResult(s, m.taskId, m.attempt, m.value);
        return;
      case 'fail':
        this.freed(s, m.taskId, m.attempt);
        this.onFail(s, m.taskId, m.attempt, m.error);
        return;
      case 'release':
        this.freed(s, m.taskId, m.attempt);
        this.report(
          s,
          m.taskId,
          m.attempt,
          this.engine.request('requeues', {
            taskId: m.taskId,
            attempt: m.attempt,
            workerId: s.workerId,
            nodeFailure: false,
            runAt: this.o.now(),
          }),
        );
        return;
      case 'checkpoint':
        this.onCheckpoint(s, m.taskId, m.attempt, m.seq, m.state);
        return;
      case 'drain':
        this.startDrain(s);
        return;
      case 'bye':
        this.leave(s);
        return;
      default: {
        const never: never = m;
        throw new Error(`unhandled message ${JSON.stringify(never)}`);
      }
    }
  }

  /** A run came back from the worker: its slot is free, so the next reserved run goes at once. */
  private freed(s: Session, taskId: number, attempt: number): void {
    // Only the run this worker holds frees a slot: a stale or foreign report changes nothing.
    const lease = this.engine.leases.get(taskId);
    if (!holdsLease(lease, attempt, s.workerId)) return;
    s.reported(taskId, this.o.now());
    this.pump(s);
  }

  /** Sends reserved runs while the worker has free slots. */
  private pump(s: Session): void {
    if (s.link === null) return;
    const now = this.o.now();
    while (s.reserve.length > 0 && s.freeSlots() > 0) {
      const c = s.nextReserved()!;
      const lease = this.engine.leases.get(c.taskId);
      if (!holdsLease(lease, c.attempt, s.workerId)) continue;
      this.sendRun(s, c, now);
    }
  }

  /** Hands the reserve back to pending (fenced; nothing counts against the tasks). */
  private returnReserve(s: Session): void {
    for (const c of s.takeReserve())
      this.engine.requeue({ taskId: c.taskId, attempt: c.attempt, workerId: s.workerId }, false);
  }

  /** The worker stops taking tasks; its running ones finish (or are released). */
  private startDrain(s: Session): void {
    if (s.draining) return;
    s.draining = true;
    this.returnReserve(s);
    void this.engine.recordWorker(s.record('draining', this.o.now()));
    this.engine.event({
      type: 'worker.draining',
      workerId: s.workerId,
      data: { name: s.name, running: s.leases.size },
    });
  }

  private report(
    s: Session,
    taskId: number,
    attempt: number,
    p: Promise<RunOutcome>,
    onApplied?: () => void,
  ): void {
    p.then(
      (outcome) => {
        s.send({
          t: 'ack',
          taskId,
          attempt,
          status: outcome === 'applied' ? 'committed' : outcome,
        });
        if (outcome === 'applied') onApplied?.();
      },
      // Not acknowledged: the worker keeps it in its outbox; the engine retries storage failures itself.
      (e: unknown) =>
        this.o.logger('warn', 'report not committed', {
          taskId,
          attempt,
          err: (e as Error).message,
        }),
    );
  }

  private onFail(s: Session, taskId: number, attempt: number, wire: TaskError): void {
    const lease = this.engine.leases.get(taskId);
    const error: TaskError = {
      kind: wire.kind,
      message: wire.message,
      ...(wire.name ? { name: wire.name } : {}),
    };
    let retryAt: number | null = null;
    if (holdsLease(lease, attempt, s.workerId)) {
      const d = decideFailure({
        errorsBefore: lease.errors,
        error,
        options: lease.options,
        now: this.o.now(),
        random: this.o.random,
      });
      if (d.kind === 'retry') retryAt = d.retryAt;
    }
    const op = { taskId, attempt, workerId: s.workerId, error, retryAt, nodeFailure: false };
    this.report(s, taskId, attempt, this.engine.request('failures', op), () => {
      // Logged only when it really happened (a stale report changes nothing).
      this.engine.event({
        type: retryAt === null ? 'task.failed' : 'task.retried',
        workerId: s.workerId,
        groupId: lease?.groupId ?? null,
        taskId,
        data: {
          attempt,
          error: error.message,
          kind: error.kind,
          ...(retryAt === null ? {} : { retryAt }),
        },
      });
      if (retryAt === null)
        this.o.logger('info', 'task failed for good', {
          groupId: lease?.groupId ?? null,
          taskId,
          workerId: s.workerId,
          attempt,
          kind: error.kind,
          error: error.message,
        });
    });
  }

  /** A result larger than the limit is not stored: the run fails for good, saying which limit to raise. */
  private onResult(s: Session, taskId: number, attempt: number, value: unknown): void {
    const size = jsonBytes(value ?? null);
    if (size > this.o.limits.maxResultBytes) {
      const message = `the result is ${size} bytes of JSON; at most ${this.o.limits.maxResultBytes} (maxResultBytes): return less, or raise --max-result-bytes`;
      this.onFail(s, taskId, attempt, { kind: 'permanent', message });
      return;
    }
    const op = { taskId, attempt, workerId: s.workerId, value: value ?? null };
    this.report(s, taskId, attempt, this.engine.request('commits', op));
  }

  private onCheckpoint(
    s: Session,
    taskId: number,
    attempt: number,
    seq: number,
    state: unknown,
  ): void {
    const size = jsonBytes(state ?? null);
    if (size > this.o.limits.maxResultBytes) {
      s.send({ t: 'saved', taskId, attempt, seq, ok: false, code: 'input_too_large' });
      return;
    }
    this.engine
      .request('checkpoints', { taskId, attempt, workerId: s.workerId, state: state ?? null })
      .then(
        (outcome) =>
          s.send({
            t: 'saved',
            taskId,
            attempt,
            seq,
            ok: outcome === 'applied',
            ...(outcome === 'applied' ? {} : { code: 'stale_attempt' }),
          }),
        (e: unknown) =>
          s.send({
            t: 'saved',
            taskId,
            attempt,
            seq,
            ok: false,
            code: e instanceof RegroupError ? e.code : 'internal',
          }),
      );
  }

  private async onHello(conn: Conn, m: Hello): Promise<void> {
    if (conn.session || conn.helloPending) {
      this.protocolError(
        conn,
        new RegroupError('protocol_error', 'hello was already sent on this connection'),
      );
      return;
    }
    if (m.protocol !== PROTOCOL_VERSION) {
      this.protocolError(
        conn,
        new RegroupError(
          'protocol_error',
          `protocol ${m.protocol} is not supported; this coordinator speaks ${PROTOCOL_VERSION}: upgrade the worker or the coordinator`,
        ),
      );
      conn.closed = true; // nothing more from this connection counts, not even the rest of this frame
      conn.link.close(1002, 'protocol version');
      return;
    }
    const now = this.o.now();
    const old = m.resume ? this.sessions.get(m.resume.workerId) : undefined;
    if (old && m.resume && old.token === m.resume.token && old.health(now, this.o) !== 'dead') {
      this.resume(conn, old, m, now);
      return;
    }
    conn.helloPending = true;
    const s = new Session({
      workerId: newWorkerId(),
      token: newToken(),
      name: m.name,
      slots: m.slots,
      labels: m.labels,
      handlers: m.handlers,
      now,
    });
    s.draining = m.draining === true;
    this.engine.event({
      type: 'worker.joined',
      workerId: s.workerId,
      data: { name: s.name, slots: s.slots, ...(m.resume ? { previous: m.resume.workerId } : {}) },
    });
    // The record (with the resume token) is durable before the worker can hold a lease.
    await this.engine.recordWorker(s.record(s.draining ? 'draining' : 'alive', now));
    conn.helloPending = false;
    conn.session = s;
    this.sessions.add(s);
    if (conn.closed) {
      s.closedAt = this.o.now();
      return;
    }
    s.link = conn.link;
    s.send(this.welcome(s, false));
    this.engine.markDispatch();
    this.o.logger('info', 'worker joined', { workerId: s.workerId, name: s.name, slots: s.slots });
  }

  private resume(conn: Conn, s: Session, m: Hello, now: number): void {
    s.link?.close(1000, 'replaced by a resumed connection');
    s.link = conn.link;
    conn.session = s;
    s.closedAt = null;
    s.lastSeenAt = now;
    s.slots = m.slots;
    s.handlers = new Set(m.handlers);
    s.labels = new Set(m.labels);
    if (m.draining && !s.draining) this.startDrain(s);
    s.send(this.welcome(s, true));
    // Reconcile: leases the worker no longer knows of were lost (reserved ones too:
    // they were never sent); runs it holds without a lease are revoked.
    const held = new Map((m.held ?? []).map((r) => [r.taskId, r.attempt]));
    s.takeReserve();
    for (const taskId of [...s.sent.keys()]) if (!held.has(taskId)) s.sent.delete(taskId);
    for (const taskId of [...s.leases]) {
      const lease = this.engine.leases.get(taskId);
      if (!lease) continue;
      if (held.get(taskId) !== lease.attempt) {
        this.engine.requeue(
          { taskId: taskId, attempt: lease.attempt, workerId: s.workerId },
          false,
        );
      }
    }
    for (const [taskId, attempt] of held) {
      const lease = this.engine.leases.get(taskId);
      if (!holdsLease(lease, attempt, s.workerId))
        s.send({ t: 'revoke', taskId, attempt, reason: 'stale' });
    }
    this.engine.event({
      type: 'worker.resumed',
      workerId: s.workerId,
      data: { name: s.name, leases: s.leases.size },
    });
    this.engine.markDispatch();
    this.o.logger('info', 'worker resumed', {
      workerId: s.workerId,
      name: s.name,
      leases: s.leases.size,
    });
  }

  private welcome(s: Session, resumed: boolean) {
    return {
      t: 'welcome' as const,
      workerId: s.workerId,
      token: s.token,
      resumed,
      heartbeatMs: this.o.heartbeatMs,
      deadAfterMs: this.o.deadAfterMs,
      closeGraceMs: this.o.closeGraceMs,
      maxResultBytes: this.o.limits.maxResultBytes,
      maxDepth: this.o.limits.maxDepth,
    };
  }

  /** Judges every session; declares the dead ones dead. Runs every sweepMs. */
  sweep(): void {
    const now = this.o.now();
    // Timers run before pending socket reads after a stall: without the credit,
    // the beats that wait in the sockets would be judged missing.
    const stall = this.lastSweepAt > 0 ? stalledMs(this.lastSweepAt, now, this.o.sweepMs) : 0;
    this.lastSweepAt = now;
    if (stall > 0) {
      for (const s of this.sessions.all()) s.creditStall(stall, now);
      if (stall >= this.o.heartbeatMs)
        this.o.logger('warn', 'the coordinator stalled; not counted against workers', {
          stalledMs: stall,
        });
    }
    for (const s of [...this.sessions.all()]) {
      const h = s.health(now, this.o);
      if (h === 'dead') this.declareDead(s, now);
      else if (h !== s.recorded && (h === 'suspect' || s.recorded === 'suspect')) {
        s.recorded = h;
        void this.engine.recordWorker(s.record(h, now));
      }
    }
    this.engine.markDispatch();
  }

  /**
   * One transaction: the worker's record becomes dead, each of its runs goes
   * back to pending (or fails as poison), and the event lists them. Dispatch
   * to healthy workers follows in the next tick, at once.
   */
  declareDead(s: Session, now: number): void {
    this.sessions.remove(s.workerId);
    s.link?.close(4000, 'declared dead: reconnect for a new session');
    s.link = null;
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
        void this.engine
          .request('failures', { ...ref, error: d.error, retryAt: null, nodeFailure: true })
          .then(
            (outcome) => {
              if (outcome !== 'applied') return;
              this.engine.event({
                type: 'task.poisoned',
                workerId: s.workerId,
                groupId,
                taskId,
                data: { error: d.error.message },
              });
              this.o.logger('warn', 'task failed for good: poison', {
                groupId,
                taskId,
                workerId: s.workerId,
                error: d.error.message,
              });
            },
            () => {},
          );
      }
    }
    void this.engine.recordWorker(s.record('dead', now));
    this.engine.event({
      type: 'worker.dead',
      workerId: s.workerId,
      data: { name: s.name, reason, silentMs: now - s.lastSeenAt, requeued, poisoned },
    });
    this.emitter.emit('workerDead', {
      workerId: s.workerId,
      name: s.name,
      reason,
      requeued,
      poisoned,
      at: now,
      lastSeenAt: s.lastSeenAt,
    });
    this.o.logger('warn', 'worker dead', {
      workerId: s.workerId,
      name: s.name,
      reason,
      silentMs: now - s.lastSeenAt,
      requeued: requeued.length,
      poisoned: poisoned.length,
    });
  }

  /** A drained worker says bye: it leaves; anything it still holds goes back without counting against the tasks. */
  private leave(s: Session): void {
    const now = this.o.now();
    this.sessions.remove(s.workerId);
    for (const taskId of s.leases) {
      const lease = this.engine.leases.get(taskId);
      if (lease)
        this.engine.requeue(
          { taskId: taskId, attempt: lease.attempt, workerId: s.workerId },
          false,
        );
    }
    void this.engine.recordWorker(s.record('left', now));
    this.engine.event({ type: 'worker.left', workerId: s.workerId, data: { name: s.name } });
    s.link?.close(1000, 'bye');
    s.link = null;
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
    for (const s of touched) this.pump(s);
    for (const r of revoked)
      this.sessions
        .get(r.workerId)
        ?.send({ t: 'revoke', taskId: r.taskId, attempt: r.attempt, reason: 'canceled' });
  }

  private sendRun(s: Session, c: ClaimedTask, now: number): void {
    s.sent.set(c.taskId, now);
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
      this.engine.event({
        type: 'task.reassigned',
        workerId: c.workerId,
        groupId: c.groupId,
        taskId: c.taskId,
        data: { from: r.from, to: s.name, attempt: c.attempt, afterDeathMs: now - r.at },
      });
    }
  }
}

/** Size of a value as the UTF-8 bytes of its JSON, the unit every limit is stated in. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? 'null', 'utf8');
}
