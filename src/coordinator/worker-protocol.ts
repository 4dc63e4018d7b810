/**
 * The protocol part of the worker gateway: checks each message of a frame,
 * dispatches it, applies the reports (fenced) and acknowledges them. Session
 * lifecycle (hello, drain, bye, lost runs) is worker-lifecycle.ts.
 */
import { RegroupError } from '../core/errors.js';
import type { TaskError } from '../core/types.js';
import { TooDeepMessage } from '../protocol/json.js';
import { clipStack } from '../protocol/task-error.js';
import { workerMessage, type WorkerMessage } from '../protocol/worker.js';
import type { RunOutcome } from '../store/store.js';
import type { Engine } from './engine.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import type { Session } from './sessions.js';
import type { Conn, WorkerLifecycle } from './worker-lifecycle.js';
import { addFromRun, failRun, jsonBytes } from './worker-runs.js';
import type { WorkerTree } from './worker-tree.js';
import { scoped } from './facts.js';

export class WorkerProtocol {
  constructor(
    private readonly o: ResolvedCoordinatorOptions,
    private readonly engine: Engine,
    private readonly life: WorkerLifecycle,
    private readonly tree: WorkerTree,
  ) {}

  /** A frame arrived on a connection. Bad messages get an `error` message; the connection stays. */
  onFrame(conn: Conn, messages: unknown[]): void {
    if (conn.closed) return;
    conn.session?.heard(this.o.now());
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
    if (
      s &&
      s.link === conn.link &&
      isRef &&
      (t === 'add' || t === 'spawn') &&
      Number.isInteger(seq)
    ) {
      const ref = { taskId: taskId as number, attempt: attempt as number, seq: seq as number };
      // The message wraps each input in two levels (the message, its inputs array).
      const message = `an input of ctx.${t} is nested deeper than ${this.o.limits.maxDepth - 1} levels (maxDepth, less the inputs array): use flatter data, or start the coordinator with a larger --max-json-depth`;
      s.send({
        t: t === 'add' ? 'added' : 'spawned',
        ...ref,
        ok: false,
        code: 'too_deep',
        message,
      });
      return;
    }
    if (s && s.link === conn.link && isRef && (t === 'result' || t === 'checkpoint')) {
      const ref = { taskId: taskId as number, attempt: attempt as number };
      const what = t === 'result' ? 'result' : 'checkpoint';
      scoped(this.o.logger, { workerId: s.workerId, taskId: ref.taskId })(
        'warn',
        `refused a ${what} nested too deep`,
        { attempt: ref.attempt },
      );
      if (t === 'checkpoint' && Number.isInteger(seq)) {
        s.send({ t: 'saved', ...ref, seq: seq as number, ok: false, code: 'too_deep' });
        return;
      }
      if (t === 'result') {
        const message = `the result is nested deeper than ${this.o.limits.maxDepth} levels (maxDepth): return flatter data, or start the coordinator with a larger --max-json-depth`;
        this.life.freed(s, ref.taskId, ref.attempt);
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
      void this.life.onHello(conn, m);
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
        if (m.frames !== undefined && m.held !== undefined && s.leaseReports) {
          const wrong = this.life.impossibleBeat(conn.link, m.frames, m.held.length);
          if (wrong !== null) {
            // A worker of ours never sends one: what it says cannot be trusted.
            this.protocolError(conn, new RegroupError('protocol_error', wrong));
            conn.closed = true;
            conn.link.close(1008, 'impossible beat');
            return;
          }
          s.send({ t: 'beat' });
          this.life.onHeld(s, m.frames, m.held);
        } else s.send({ t: 'beat' });
        return;
      case 'result':
        this.life.freed(s, m.taskId, m.attempt);
        this.onResult(s, m.taskId, m.attempt, m.value);
        return;
      case 'fail':
        this.life.freed(s, m.taskId, m.attempt);
        this.onFail(s, m.taskId, m.attempt, m.error);
        return;
      case 'release':
        this.life.freed(s, m.taskId, m.attempt);
        this.ack(
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
        s.progressed(m.taskId, m.attempt, this.o.now());
        this.onCheckpoint(s, m.taskId, m.attempt, m.seq, m.state);
        return;
      case 'add':
        s.progressed(m.taskId, m.attempt, this.o.now());
        addFromRun(this.o, this.engine, s, m);
        return;
      case 'spawn':
        s.progressed(m.taskId, m.attempt, this.o.now());
        this.tree.spawn(s, m);
        return;
      case 'group':
        this.tree.call(conn, s, m);
        return;
      case 'progress':
        s.progressed(m.taskId, m.attempt, this.o.now());
        return;
      case 'suspend':
        this.life.suspend(s, m.taskId, m.attempt);
        return;
      case 'resume':
        this.life.askResume(s, m);
        return;
      case 'drain':
        this.life.startDrain(s);
        return;
      case 'bye':
        this.life.leave(s);
        return;
      default: {
        const never: never = m;
        throw new Error(`unhandled message ${JSON.stringify(never)}`);
      }
    }
  }

  /** Answers a report with its outcome once it is committed (a duplicate is fenced: already_final or stale). */
  private ack(s: Session, taskId: number, attempt: number, p: Promise<RunOutcome>): void {
    p.then(
      (outcome) =>
        s.send({
          t: 'ack',
          taskId,
          attempt,
          status: outcome === 'applied' ? 'committed' : outcome,
        }),
      // Not acknowledged: the worker keeps it in its outbox; the engine retries storage failures itself.
      (e: unknown) =>
        scoped(this.o.logger, { workerId: s.workerId, taskId })('warn', 'report not committed', {
          attempt,
          err: (e as Error).message,
        }),
    );
  }

  private onFail(s: Session, taskId: number, attempt: number, wire: TaskError): void {
    // The worker clips its stack; one that does not is clipped here, not refused with its failure.
    const error: TaskError = {
      kind: wire.kind,
      message: wire.message,
      ...(wire.name ? { name: wire.name } : {}),
      ...(wire.stack ? { stack: clipStack(wire.stack) } : {}),
    };
    const ref = { taskId, attempt, workerId: s.workerId };
    this.ack(s, taskId, attempt, failRun(this.o, this.engine, ref, error));
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
    this.ack(s, taskId, attempt, this.engine.request('commits', op));
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
}
