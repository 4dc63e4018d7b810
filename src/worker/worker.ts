import { RegroupError } from '../core/errors.js';
import { DEFAULT_LIMITS } from '../protocol/limits.js';
import { PROTOCOL_VERSION } from '../protocol/constants.js';
import {
  type Hello,
  type Revoke,
  type Run,
  type RunRef,
  type Welcome,
  type WireTaskError,
} from '../protocol/worker.js';
import { prepareAdd } from './add.js';
import { GroupCalls, HANDLE_CLIENT_OPTIONS } from './group-calls.js';
import { SpawnedHandle, isLongPoll } from './handle.js';
import { PendingReplies, type TaskAdded } from './replies.js';
import { prepareSpawn } from './spawn.js';
import { CoordinatorLink } from './link.js';
import { Events, type Listener, type WorkerEvent } from './events.js';
import { resolveWorkerOptions, type ResolvedWorkerOptions, type WorkerOptions } from './options.js';
import { Outbox, runKey } from './outbox.js';
import {
  ActiveRun,
  encodeResult,
  failMessage,
  type ResultLimits,
  type RunEnd,
  type RunHost,
  type SpawnedGroup,
} from './run.js';
import { jsonOf } from './json-value.js';
import { encode, type Encoded, type Inbound, type UnreadableRun } from './wire.js';

/**
 * starting: connecting, not welcomed yet. running: has a session (it may be
 * reconnecting). draining: finishing its runs before it leaves. stopped: gone
 * for good; no reconnect.
 */
export type WorkerLifecycle = 'starting' | 'running' | 'draining' | 'stopped';

/** How long a drain waits for the coordinator to ack the last results before it leaves anyway. */
const DRAIN_ACK_WAIT_MS = 5_000;

interface Session {
  workerId: string;
  token: string;
  maxResultBytes: number;
  maxDepth: number;
  /** Runs held at once at most: the slots the coordinator granted (at most options.concurrency). */
  slots: number;
  /** A report or checkpoint with no answer for this long is sent again (2 × deadAfterMs). */
  ackTimeoutMs: number;
}

/** Why a run that has ended takes no checkpoint or add: its signal's reason. */
function endedError(run: ActiveRun): RegroupError {
  const reason: unknown = run.controller.signal.reason;
  return reason instanceof RegroupError
    ? reason
    : new RegroupError(
        'stale_attempt',
        `task ${run.ref.taskId} attempt ${run.ref.attempt} has ended`,
      );
}

/** Throws unless the run may still call ctx.add or ctx.spawn: its handler has not returned, the run has not ended. */
function mayCall(run: ActiveRun, call: 'ctx.add' | 'ctx.spawn'): void {
  if (run.returned)
    throw new RegroupError(
      'bad_request',
      `${call} was called after the handler of task ${run.ref.taskId} returned: call (and await) it before returning`,
    );
  if (run.ended) throw endedError(run);
}

/** Waits for `p`, at most `ms`; the timer does not outlive the wait. */
async function within(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * A worker: one session with a coordinator over one WebSocket at a time. It
 * runs what it is sent, keeps every result in an outbox until it is acked,
 * and survives reconnects by resuming its session with the runs it still holds.
 */
export class Worker implements RunHost {
  readonly options: ResolvedWorkerOptions;
  #state: WorkerLifecycle = 'starting';
  #session: Session | null = null;
  readonly #link: CoordinatorLink;
  readonly #runs = new Map<string, ActiveRun>();
  readonly #outbox = new Outbox();
  /** Checkpoints, adds, spawns and resumes waiting for their answer. */
  readonly #replies = new PendingReplies();
  /** Runs whose handler waits on a spawned group with its slot given back (suspend sent, no `resumed` yet). */
  readonly #suspended = new Set<ActiveRun>();
  /** maxSuspended was reached and said so in the log; said again after it went under. */
  #suspendCapLogged = false;
  /** The calls of spawned groups' handles waiting for their answer. */
  readonly #calls = new GroupCalls({
    send: (m) => this.#send(m),
    ended: (ref) => !this.#runs.has(runKey(ref.taskId, ref.attempt)),
    endedError: (ref) => {
      const run = this.#runs.get(runKey(ref.taskId, ref.attempt));
      return run
        ? endedError(run)
        : new RegroupError(
            'stale_attempt',
            `task ${ref.taskId} attempt ${ref.attempt} has ended: the handles of the groups it spawned answer only while it runs`,
          );
    },
  });
  readonly #events: Events;
  #started: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | null =
    null;
  #draining: Promise<void> | null = null;
  #stopping: Promise<void> | null = null;
  #runsChanged = new Set<() => void>();

  constructor(o: WorkerOptions) {
    this.options = resolveWorkerOptions(o);
    this.#events = new Events((event, e) =>
      this.#log('error', `a '${event}' listener threw`, { error: String(e) }),
    );
    this.#link = new CoordinatorLink(this.options, {
      hello: () => this.#hello(),
      onMessage: (m) => this.#handle(m),
      beat: () => this.#beat(),
      onDisconnected: (info) => this.#events.emit('disconnected', info),
    });
  }

  get state(): WorkerLifecycle {
    return this.#state;
  }

  /** The id of the current session, null before the first welcome. */
  get workerId(): string | null {
    return this.#session?.workerId ?? null;
  }

  on<E extends WorkerEvent>(event: E, fn: Listener<E>): () => void {
    return this.#events.on(event, fn);
  }

  off<E extends WorkerEvent>(event: E, fn: Listener<E>): void {
    this.#events.off(event, fn);
  }

  /** Connects; resolves at the first welcome. Retries forever until close() or drain(). */
  start(): Promise<void> {
    if (this.#started !== null) return this.#started.promise;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => {}); // the caller gets the rejection; an unawaited start() must not crash
    this.#started = { promise, resolve, reject };
    if (this.#state === 'stopped') reject(new RegroupError('closed', 'the worker is stopped'));
    else this.#link.connect();
    return promise;
  }

  /**
   * Leaves gracefully: no new runs are expected, running ones get drainTimeoutMs
   * to finish, the rest are released, the results are acked, then `bye`.
   */
  drain(): Promise<void> {
    if (this.#draining !== null) return this.#draining;
    if (this.#state === 'stopped') return this.#stopping ?? Promise.resolve();
    this.#draining = this.#drain();
    return this.#draining;
  }

  /** Stops now: aborts every run, closes the socket, no reconnect. */
  close(): Promise<void> {
    return this.#shutdown(new RegroupError('closed', 'the worker was closed'));
  }

  // ---- session ---------------------------------------------------------------

  #hello(): Hello {
    const o = this.options;
    const hello: Hello = {
      t: 'hello',
      protocol: PROTOCOL_VERSION,
      name: o.name,
      handlers: Object.keys(o.handlers),
      slots: o.concurrency,
      labels: [...o.labels],
      leaseReports: true,
    };
    if (this.#session !== null) {
      hello.resume = { workerId: this.#session.workerId, token: this.#session.token };
      hello.held = this.#held();
    }
    if (this.#state === 'draining') hello.draining = true;
    return hello;
  }

  /** Runs still running plus runs whose report waits in the outbox. */
  #held(): RunRef[] {
    const held = new Map<string, RunRef>();
    for (const [k, run] of this.#runs) held.set(k, { ...run.ref });
    for (const ref of this.#outbox.refs()) held.set(runKey(ref.taskId, ref.attempt), ref);
    return [...held.values()];
  }

  #send(m: Encoded): void {
    this.#link.send(m);
  }

  /**
   * As each beat is built: reports and checkpoints that waited an ack
   * timeout for their answer go again (the frame that carried them may have
   * been unreadable; a duplicate is fenced), and the beat lists what is held.
   */
  #beat(): RunRef[] {
    const session = this.#session;
    if (session !== null) {
      const now = performance.now();
      for (const e of this.#outbox.overdue(now, session.ackTimeoutMs)) this.#send(e.encoded);
      for (const c of this.#replies.overdue(now, session.ackTimeoutMs)) this.#send(c);
    }
    return this.#held();
  }

  // ---- messages from the coordinator -----------------------------------------

  #handle(m: Inbound): void {
    switch (m.t) {
      case 'unreadable':
        this.#onUnreadable(m);
        return;
      case 'welcome':
        this.#onWelcome(m);
        return;
      case 'run':
        this.#onRun(m);
        return;
      case 'ack':
        if (this.#outbox.remove(m.taskId, m.attempt)) {
          if (m.status !== 'committed')
            this.#log('info', `the coordinator answered ${m.status} to a report`, { ...m });
          this.#events.emit('ack', { taskId: m.taskId, attempt: m.attempt, status: m.status });
        }
        return;
      case 'saved':
      case 'added':
      case 'spawned':
      case 'resumed':
        if (!this.#replies.settle(m)) this.#log('debug', `${m.t} for nothing pending`, m);
        return;
      case 'group_reply':
        if (!this.#calls.settle(m))
          this.#log('debug', 'group_reply for nothing pending', { taskId: m.taskId, seq: m.seq });
        return;
      case 'revoke':
        this.#onRevoke(m);
        return;
      case 'beat':
        return;
      case 'error':
        this.#log('warn', `the coordinator reported ${m.code}: ${m.message}`, { code: m.code });
        return;
    }
  }

  /** The link has already marked the connection ready and started beating. */
  #onWelcome(w: Welcome): void {
    if (!w.resumed) this.#loseSession();
    this.#session = {
      workerId: w.workerId,
      token: w.token,
      maxResultBytes: w.maxResultBytes,
      maxDepth: w.maxDepth,
      slots: Math.min(w.slots ?? this.options.concurrency, this.options.concurrency),
      ackTimeoutMs: 2 * w.deadAfterMs,
    };
    if (w.slots !== undefined && w.slots < this.options.concurrency)
      this.#log('warn', 'the coordinator granted fewer slots than the concurrency asked for', {
        concurrency: this.options.concurrency,
        slots: w.slots,
      });
    if (w.resumed) {
      // Suspends first: a resume asked again must find its run suspended (the
      // coordinator may have lost that), then adds, spawns, checkpoints and
      // resumes: an add goes before any report of its run.
      for (const run of this.#suspended) this.#send(encode({ t: 'suspend', ...run.ref }));
      for (const c of this.#replies.messages()) this.#send(c);
      for (const c of this.#calls.messages()) this.#send(c);
      for (const e of this.#outbox.entries()) this.#send(e.encoded);
    }
    if (this.#state === 'starting') this.#state = 'running';
    this.#started?.resolve();
    this.#log('info', w.resumed ? 'session resumed' : 'welcomed', { workerId: w.workerId });
    this.#events.emit('welcome', { workerId: w.workerId, resumed: w.resumed });
  }

  /** The coordinator declared the old session dead: its leases were given to others. */
  #loseSession(): void {
    const lost = new RegroupError(
      'stale_attempt',
      'the coordinator declared this worker dead; its runs were given to other workers',
    );
    const runs = [...this.#runs.values()];
    if (runs.length > 0 || this.#outbox.size > 0 || this.#replies.size > 0) {
      this.#log('warn', 'session lost: dropping runs and unacked results', {
        runs: runs.length,
        outbox: this.#outbox.size,
      });
    }
    this.#runs.clear();
    this.#suspended.clear();
    this.#outbox.clear();
    this.#replies.rejectAll(lost);
    this.#calls.rejectAll(lost);
    for (const run of runs) {
      run.end(lost);
      this.#events.emit('revoked', { ...run.ref, reason: 'lost' });
    }
    this.#notifyRuns();
  }

  #onRun(m: Run): void {
    const key = runKey(m.taskId, m.attempt);
    if (this.#runs.has(key) || this.#outbox.has(m.taskId, m.attempt)) {
      this.#log('debug', 'ignored a run this worker already has', { taskId: m.taskId });
      return;
    }
    if (this.#state === 'draining') this.#log('info', 'a run arrived while draining; running it');
    const slots = this.#session?.slots ?? this.options.concurrency;
    // Suspended runs wait on their children and hold no slot.
    if (this.#runs.size - this.#suspended.size >= slots) {
      // More than the granted slots at once: handed back unrun, requeued without counting.
      this.#log('warn', 'a run arrived with every slot busy; released it', {
        taskId: m.taskId,
        attempt: m.attempt,
        slots,
      });
      this.#send(this.#outbox.put({ t: 'release', taskId: m.taskId, attempt: m.attempt }).encoded);
      return;
    }
    const run = new ActiveRun(m, this);
    this.#runs.set(key, run);
    this.#events.emit('run', { taskId: m.taskId, attempt: m.attempt });
    const handlers = this.options.handlers;
    const handler = Object.hasOwn(handlers, m.handler) ? handlers[m.handler] : undefined;
    run.start(handler, Object.keys(handlers));
  }

  /** A run too deep to read fails for good at once, through the outbox like any other report. */
  #onUnreadable(m: UnreadableRun): void {
    if (this.#runs.has(runKey(m.taskId, m.attempt)) || this.#outbox.has(m.taskId, m.attempt))
      return;
    const ref = { taskId: m.taskId, attempt: m.attempt };
    this.#log('warn', 'failed a run it could not read', { ...ref, error: m.message });
    this.#events.emit('run', ref);
    this.#send(
      this.#outbox.put(failMessage(ref, { kind: 'permanent', message: m.message })).encoded,
    );
    this.#events.emit('done', { ...ref, ok: false });
  }

  #onRevoke(m: Revoke): void {
    const reason =
      m.reason === 'canceled'
        ? new RegroupError('canceled', `task ${m.taskId} was canceled`)
        : m.reason === 'timeout'
          ? new RegroupError(
              'timeout',
              m.message ?? `the coordinator ended task ${m.taskId}: timeout`,
            )
          : new RegroupError('stale_attempt', `the coordinator revoked this run (${m.reason})`);
    const run = this.#runs.get(runKey(m.taskId, m.attempt));
    const had = this.#outbox.remove(m.taskId, m.attempt) || run !== undefined;
    this.#runs.delete(runKey(m.taskId, m.attempt));
    if (run !== undefined) this.#suspended.delete(run);
    run?.end(reason);
    this.#replies.rejectRun(m.taskId, m.attempt, reason);
    this.#calls.rejectRun(m.taskId, m.attempt, reason);
    if (had)
      this.#events.emit('revoked', { taskId: m.taskId, attempt: m.attempt, reason: m.reason });
    this.#notifyRuns();
  }

  // ---- RunHost: what runs ask of the worker ----------------------------------

  /** The coordinator's limits on what a run sends back; the defaults before the first welcome. */
  limits(): ResultLimits {
    return {
      maxResultBytes: this.#session?.maxResultBytes ?? DEFAULT_LIMITS.maxResultBytes,
      maxDepth: this.#session?.maxDepth ?? DEFAULT_LIMITS.maxDepth,
    };
  }

  finish(run: ActiveRun, end: RunEnd): void {
    try {
      this.#runs.delete(runKey(run.ref.taskId, run.ref.attempt));
      this.#suspended.delete(run);
      this.#calls.rejectRun(run.ref.taskId, run.ref.attempt, endedError(run));
      const entry = end.ok
        ? this.#outbox.put({
            ref: run.ref,
            kind: 'result',
            encoded: encodeResult(run.ref, end.valueJson),
          })
        : this.#outbox.put(failMessage(run.ref, end.error));
      this.#send(entry.encoded);
      if (!end.ok) this.#logFailure(run, end.error);
      this.#events.emit('done', { ...run.ref, ok: end.ok });
      this.#notifyRuns();
    } catch (e) {
      // Called from a promise callback: a bug here must be logged, not become an unhandled rejection.
      this.#log('error', 'worker bug while reporting a run', { ...run.ref, error: String(e) });
    }
  }

  /** One warn line per failed run: what a person debugging a handler looks for first. */
  #logFailure(run: ActiveRun, error: WireTaskError): void {
    const { kind, message, name, stack } = error;
    this.#log('warn', 'run failed', {
      taskId: run.ref.taskId,
      attempt: run.ref.attempt,
      handler: run.msg.handler,
      groupId: run.msg.groupId,
      kind,
      ...(name === undefined ? {} : { name }),
      error: message,
      ...(stack === undefined ? {} : { stack }),
    });
  }

  progress(run: ActiveRun): void {
    this.#send(encode({ t: 'progress', ...run.ref }));
  }

  saveCheckpoint(run: ActiveRun, state: unknown): Promise<void> {
    const p = this.#saveCheckpoint(run, state);
    p.catch(() => {}); // a handler may fire and forget; its rejection must not crash the worker
    return p;
  }

  async #saveCheckpoint(run: ActiveRun, state: unknown): Promise<void> {
    const { taskId, attempt } = run.ref;
    if (run.ended) throw endedError(run);
    const json = jsonOf(
      state,
      { root: 'checkpoint', owner: `the checkpoint of task ${taskId}` },
      this.limits(),
    );
    if (!json.ok) throw new RegroupError(json.code, json.message);
    const { encoded, saved } = this.#replies.checkpoint(taskId, attempt, run.nextSeq++, json.text);
    this.#send(encoded);
    run.checkpoint = JSON.parse(await saved);
  }

  addTasks(run: ActiveRun, inputs: unknown, options: unknown): Promise<TaskAdded> {
    const p = this.#addTasks(run, inputs, options);
    p.catch(() => {}); // a handler may fire and forget; its rejection must not crash the worker
    return p;
  }

  async #addTasks(run: ActiveRun, inputs: unknown, options: unknown): Promise<TaskAdded> {
    const { taskId, attempt } = run.ref;
    mayCall(run, 'ctx.add');
    const adding = { taskId, handler: run.msg.handler, nextAutoKey: run.nextAutoKey };
    const { key, inputsJson } = prepareAdd(adding, inputs, options, this.limits());
    run.nextAutoKey = adding.nextAutoKey;
    const ref = { taskId, attempt, seq: run.nextAddSeq++, key };
    const { encoded, added } = this.#replies.add(ref, inputsJson);
    this.#send(encoded);
    return added;
  }

  spawnGroup(
    run: ActiveRun,
    handler: unknown,
    inputs: unknown,
    options: unknown,
  ): Promise<SpawnedGroup> {
    const p = this.#spawnGroup(run, handler, inputs, options);
    p.catch(() => {}); // a handler may fire and forget; its rejection must not crash the worker
    return p;
  }

  async #spawnGroup(
    run: ActiveRun,
    handler: unknown,
    inputs: unknown,
    options: unknown,
  ): Promise<SpawnedGroup> {
    const { taskId, attempt } = run.ref;
    mayCall(run, 'ctx.spawn');
    const spawning = { taskId, attempt, nextAutoKey: run.nextSpawnAutoKey };
    const { key, head, inputsJson } = prepareSpawn(
      spawning,
      handler,
      inputs,
      options,
      this.limits(),
    );
    run.nextSpawnAutoKey = spawning.nextAutoKey;
    const ref = { taskId, attempt, seq: run.nextSpawnSeq++, key };
    const { encoded, spawned } = this.#replies.spawn(ref, head, inputsJson);
    this.#send(encoded);
    const groupId = await spawned;
    const whileWaiting = <T>(wait: () => Promise<T>): Promise<T> => this.#whileWaiting(run, wait);
    const call = (
      req: Parameters<GroupCalls['call']>[1],
      retry: Parameters<GroupCalls['call']>[2],
    ): Promise<unknown> =>
      this.#calls.call({ taskId, attempt, seq: run.nextCallSeq++ }, req, retry);
    return new SpawnedHandle(
      {
        transport: {
          // results()'s long polls wait with the slot given back, page by page.
          call: <T>(...a: Parameters<typeof call>) =>
            (isLongPoll(a[0]) ? whileWaiting(() => call(...a)) : call(...a)) as Promise<T>,
        },
        options: HANDLE_CLIENT_OPTIONS,
      },
      groupId,
      whileWaiting,
    );
  }

  /**
   * Runs a wait of `run`'s handler on a group it spawned with the run's slot
   * given back (`suspend`), so other runs (its children too) use it; before
   * the handler goes on, the slot is asked back (`resume`) and the wait ends
   * once the coordinator granted it. Past maxSuspended the run keeps its
   * slot while it waits. A run that ends meanwhile takes no slot back.
   */
  async #whileWaiting<T>(run: ActiveRun, wait: () => Promise<T>): Promise<T> {
    this.#suspend(run);
    try {
      return await wait();
    } finally {
      await this.#resume(run);
    }
  }

  #suspend(run: ActiveRun): void {
    if (run.suspended || run.ended || !this.#runs.has(runKey(run.ref.taskId, run.ref.attempt)))
      return;
    if (this.#suspended.size >= this.options.maxSuspended) {
      if (!this.#suspendCapLogged)
        this.#log(
          'warn',
          'maxSuspended reached: handlers that wait on their children keep their slots',
          {
            maxSuspended: this.options.maxSuspended,
          },
        );
      this.#suspendCapLogged = true;
      return;
    }
    if (this.#suspended.size < this.options.maxSuspended / 2) this.#suspendCapLogged = false;
    run.suspended = true;
    this.#suspended.add(run);
    this.#send(encode({ t: 'suspend', ...run.ref }));
    this.#events.emit('suspended', { ...run.ref });
  }

  /** The handler is about to go on: its slot back first (one resume, whichever wait of it ended first). */
  async #resume(run: ActiveRun): Promise<void> {
    if (!run.suspended || run.ended) return;
    if (run.resuming === null) {
      const { encoded, resumed } = this.#replies.resume({ ...run.ref, seq: run.nextResumeSeq++ });
      run.resuming = resumed.then(
        () => {
          run.suspended = false;
          run.resuming = null;
          this.#suspended.delete(run);
          this.#events.emit('resumed', { ...run.ref });
        },
        (e: unknown) => {
          run.resuming = null;
          throw e;
        },
      );
      this.#send(encoded);
    }
    await run.resuming;
  }

  // ---- leaving ---------------------------------------------------------------

  async #drain(): Promise<void> {
    if (this.#session === null) return this.close();
    this.#state = 'draining';
    this.#send(encode({ t: 'drain' }));
    this.#log('info', 'draining', {
      runs: this.#runs.size,
      drainTimeoutMs: this.options.drainTimeoutMs,
    });
    await within(this.#noRuns(), this.options.drainTimeoutMs);
    if (this.#state !== 'draining') return this.#stopping ?? undefined;
    const released = new RegroupError(
      'shutting_down',
      `the worker is draining and drainTimeoutMs (${this.options.drainTimeoutMs}) has passed; the run was released`,
    );
    for (const [key, run] of this.#runs) {
      this.#runs.delete(key);
      this.#suspended.delete(run);
      run.end(released);
      this.#replies.rejectRun(run.ref.taskId, run.ref.attempt, released);
      this.#calls.rejectRun(run.ref.taskId, run.ref.attempt, released);
      this.#send(this.#outbox.put({ t: 'release', ...run.ref }).encoded);
      this.#log('info', 'released an unfinished run', { ...run.ref });
    }
    await within(this.#outbox.whenEmpty(), DRAIN_ACK_WAIT_MS);
    if (this.#state !== 'draining') return this.#stopping ?? undefined;
    if (this.#outbox.size > 0)
      this.#log('warn', 'leaving with unacked reports', { outbox: this.#outbox.size });
    this.#send(encode({ t: 'bye' }));
    return this.#shutdown(new RegroupError('closed', 'the worker has drained'));
  }

  #noRuns(): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.#runs.size > 0 && this.#state === 'draining') return;
        this.#runsChanged.delete(check);
        resolve();
      };
      this.#runsChanged.add(check);
      check();
    });
  }

  #notifyRuns(): void {
    for (const fn of [...this.#runsChanged]) fn();
  }

  #shutdown(reason: RegroupError): Promise<void> {
    if (this.#stopping !== null) return this.#stopping;
    this.#state = 'stopped';
    const runs = [...this.#runs.values()];
    this.#runs.clear();
    this.#suspended.clear();
    for (const run of runs) run.end(reason);
    this.#replies.rejectAll(reason);
    this.#calls.rejectAll(reason);
    this.#outbox.clear();
    this.#started?.reject(reason);
    this.#notifyRuns();
    this.#stopping = (async () => {
      await this.#link.stop();
      this.#log('info', 'stopped', { reason: reason.message });
      this.#events.emit('stopped', {});
    })();
    return this.#stopping;
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: object): void {
    try {
      const workerId = this.#session?.workerId;
      this.options.logger(level, msg, {
        worker: this.options.name,
        ...(workerId === undefined ? {} : { workerId }),
        ...fields,
      });
    } catch {
      // a broken logger must not break the worker
    }
  }
}
