import { RegroupError } from '../core/errors.js';
import { progressEveryMs } from '../core/deadline.js';
import { stackOf } from '../protocol/task-error.js';
import type { Fail, Run, RunRef, WireTaskError } from '../protocol/worker.js';
import type { Group } from '../client/group.js';
import type { AddOptions } from './add.js';
import type { SpawnOptions } from './spawn.js';
import type { Handler } from './options.js';
import { jsonOf, type ResultLimits } from './json-value.js';
import type { TaskAdded } from './replies.js';
import type { Encoded } from './wire.js';

export type { ResultLimits } from './json-value.js';

/** What a handler gets besides its input. */
export interface TaskContext {
  taskId: number;
  groupId: string;
  /** Position of the task in its group's input order. */
  index: number;
  /** 1 on the first run of the task, then one more on every dispatch. */
  attempt: number;
  /** Fires on timeout, revoke, cancel, a lost session, drain timeout or close; `reason` is a RegroupError. */
  signal: AbortSignal;
  /** The last checkpoint saved (by this attempt or an earlier one), or undefined. */
  readonly checkpoint: unknown;
  /** Stores partial progress durably; resolves once the coordinator has it. Counts as a heartbeat. */
  saveCheckpoint(state: unknown): Promise<void>;
  /**
   * Says the handler is making progress. With the task option
   * heartbeatTimeoutMs set, call it at least that often, or the coordinator
   * ends the run as a timeout; cheap to call often (the worker sends at most
   * one message per quarter of the limit). Does nothing when not watched.
   */
  heartbeat(): void;
  /**
   * Adds tasks to this task's group, with the group's handler, like Go's
   * `wg.Add` from inside a goroutine; resolves once the coordinator has
   * committed them, with their indexes (first..first+count-1). Fenced: only
   * the run that holds the task adds. Idempotent across attempts by `key`
   * (default: the call's position among this run's adds without one), so a
   * run of the task again adds nothing twice. Call (and await) it before the
   * handler returns: the run's report waits for its adds, and an add after
   * the return is refused. docs/handlers.md, "Adding tasks: ctx.add".
   */
  add(inputs: readonly unknown[], options?: AddOptions): Promise<TaskAdded>;
  /**
   * Creates a child group of `handler` over `inputs` and resolves, once the
   * coordinator has committed it, with its handle: the client's Group API
   * (`id`, `status()`, `wait()`, `waitSettled()`, `results()`, `tasks()`,
   * `cancel()`, `retry()`), carried by this worker's session. The child
   * records this task as its parent. Fenced like a result and idempotent
   * across attempts by `key` (default: the call's position among this run's
   * spawns without one): a run of the task again gets the same group, with
   * the results its tasks already have. Call (and await) it before the
   * handler returns; the handle answers only while this run holds its task.
   * docs/handlers.md, "Child groups: ctx.spawn".
   */
  spawn<R = unknown>(
    handler: string,
    inputs: readonly unknown[],
    options?: SpawnOptions,
  ): Promise<SpawnedGroup<R>>;
}

/** The handle of a group a task spawned: the client's Group, over the worker's session. */
export type SpawnedGroup<R = unknown> = Group<R>;

/** How a run ended, as the worker will report it. */
export type RunEnd = { ok: true; valueJson: string } | { ok: false; error: WireTaskError };

/** The worker side of a run: what the run needs from it. */
export interface RunHost {
  limits(): ResultLimits;
  saveCheckpoint(run: ActiveRun, state: unknown): Promise<void>;
  /** ctx.add: checks, sends and waits for the answer (the run tracks the promise). */
  addTasks(run: ActiveRun, inputs: unknown, options: unknown): Promise<TaskAdded>;
  /** ctx.spawn: checks, sends, waits for the answer and makes the handle (the run tracks the promise). */
  spawnGroup(
    run: ActiveRun,
    handler: unknown,
    inputs: unknown,
    options: unknown,
  ): Promise<SpawnedGroup>;
  /** The run showed progress: tell the coordinator (already coalesced by the run). */
  progress(run: ActiveRun): void;
  /** Called at most once, unless the run was ended first (revoke, drain, close). */
  finish(run: ActiveRun, end: RunEnd): void;
}

// The protocol caps these fields (WireTaskError); longer text would get the whole frame refused.
const MESSAGE_MAX = 60_000;
const NAME_MAX = 200;

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.message;
  try {
    return String(e);
  } catch {
    return Object.prototype.toString.call(e);
  }
}

/**
 * A thrown value as the wire carries it: permanent when it says so, error
 * otherwise; with its class name and its stack (clipped) when it has them.
 */
export function toWireError(e: unknown): WireTaskError {
  const o =
    typeof e === 'object' && e !== null ? (e as { permanent?: unknown; name?: unknown }) : {};
  const error: WireTaskError = {
    kind: o.permanent === true ? 'permanent' : 'error',
    message: clip(describe(e), MESSAGE_MAX),
  };
  if (typeof o.name === 'string' && o.name !== '') error.name = clip(o.name, NAME_MAX);
  const stack = stackOf(e);
  const shown = stack === undefined ? '' : withoutWorkerFrames(stack);
  if (shown !== '') error.stack = shown;
  return error;
}

/** Where this file's frames show in a stack (`at file:///.../run.js:85:38`). */
const THIS_FILE = `${import.meta.url}:`;

/**
 * A stack without the worker's own frames: a handler that throws before its
 * first await has under its frames the worker's (this file calling it, the
 * message handling, the socket), which say nothing about the handler.
 * Everything from this file's first frame to the next `caused by:` goes.
 */
function withoutWorkerFrames(stack: string): string {
  const kept: string[] = [];
  let skipping = false;
  for (const line of stack.split('\n')) {
    if (line.startsWith('caused by: ')) skipping = false;
    else if (!skipping && /^\s+at /.test(line) && line.includes(THIS_FILE)) skipping = true;
    if (!skipping) kept.push(line);
  }
  return kept.join('\n');
}

/** The result message, built around JSON text that was already checked, so the value is encoded once. */
export function encodeResult(ref: RunRef, valueJson: string): Encoded {
  const text = `{"t":"result","taskId":${ref.taskId},"attempt":${ref.attempt},"value":${valueJson}}`;
  return { text, bytes: Buffer.byteLength(text) };
}

export function failMessage(ref: RunRef, error: WireTaskError): Fail {
  return { t: 'fail', taskId: ref.taskId, attempt: ref.attempt, error };
}

/** One attempt of one task running on this worker. */
export class ActiveRun {
  readonly ref: RunRef;
  readonly controller = new AbortController();
  /** Next checkpoint seq of this run. */
  nextSeq = 0;
  /** Next add seq of this run (matches `added` to its `add`). */
  nextAddSeq = 0;
  /** The number of the next add without a key: its key is `#n`. */
  nextAutoKey = 0;
  /** Next spawn seq of this run, and the number of its next spawn without a key. */
  nextSpawnSeq = 0;
  nextSpawnAutoKey = 0;
  /** Next call seq of this run's handles. */
  nextCallSeq = 0;
  /** The coordinator was told this run's slot is free (suspend) and has not given one back yet. */
  suspended = false;
  /** The resume asked for and not granted yet; the waits that end meanwhile await it too. */
  resuming: Promise<void> | null = null;
  /** Next resume seq of this run (matches `resumed` to its `resume`). */
  nextResumeSeq = 0;
  /** The handler has returned (or thrown): ctx.add and ctx.spawn are refused from then on. */
  returned = false;
  /** Adds and spawns sent and not answered yet: the run's report waits for them. */
  readonly #adds = new Set<Promise<unknown>>();
  /** The last saved checkpoint, as ctx.checkpoint shows it. */
  checkpoint: unknown;
  #ended = false;
  #timer: NodeJS.Timeout | null = null;
  /** When progress was last sent (performance.now()), and the trailing send pending, if any. */
  #progressSentAt = -Infinity;
  #progressTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly msg: Run,
    private readonly host: RunHost,
  ) {
    this.ref = { taskId: msg.taskId, attempt: msg.attempt };
    this.checkpoint = msg.checkpoint;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Calls the handler (or fails at once when there is none) and reports how it went. */
  start(handler: Handler | undefined, handlerNames: readonly string[]): void {
    if (handler === undefined) {
      const has = handlerNames.length > 0 ? handlerNames.join(', ') : 'none';
      const message = `no handler named ${JSON.stringify(this.msg.handler)} on this worker (it has: ${has})`;
      this.#finish({
        ok: false,
        error: { kind: 'handler_not_found', message: clip(message, MESSAGE_MAX) },
      });
      return;
    }
    if (this.msg.timeoutMs > 0) {
      this.#timer = setTimeout(() => this.#timeout(), this.msg.timeoutMs);
    }
    // An async wrapper turns a sync throw into a rejection: a task failure, never a crash.
    const pending = (async () => handler(this.msg.input, this.#context()))();
    pending.then(
      (value) => this.#finishAfterAdds(this.#valueEnd(value)),
      (e: unknown) => this.#finishAfterAdds({ ok: false, error: toWireError(e) }),
    );
  }

  /**
   * Reports the run once every add it made has its answer: a result never
   * goes out before an add of its run (an add not awaited, in flight), so
   * the coordinator commits the add first, or refuses it. No add starts
   * after the return, so one wait is enough.
   */
  #finishAfterAdds(end: RunEnd): void {
    this.returned = true;
    if (this.#adds.size === 0) {
      this.#finish(end);
      return;
    }
    void Promise.allSettled([...this.#adds]).then(() => this.#finish(end));
  }

  #add(inputs: unknown, options: unknown): Promise<TaskAdded> {
    return this.#track(this.host.addTasks(this, inputs, options));
  }

  #spawn(handler: unknown, inputs: unknown, options: unknown): Promise<SpawnedGroup> {
    return this.#track(this.host.spawnGroup(this, handler, inputs, options));
  }

  /** An add or a spawn in flight: the run's report waits for it. */
  #track<T>(p: Promise<T>): Promise<T> {
    this.#adds.add(p);
    const forget = (): void => void this.#adds.delete(p);
    p.then(forget, forget);
    return p;
  }

  /** Ends the run without a report: its signal fires with `reason`, whatever it returns later is dropped. */
  end(reason: RegroupError): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#clearTimer();
    this.controller.abort(reason);
  }

  #context(): TaskContext {
    const ctx = {
      taskId: this.msg.taskId,
      groupId: this.msg.groupId,
      index: this.msg.index,
      attempt: this.msg.attempt,
      signal: this.controller.signal,
      saveCheckpoint: (state: unknown) => this.host.saveCheckpoint(this, state),
      heartbeat: () => this.#heartbeat(),
      add: (inputs: readonly unknown[], options?: AddOptions) => this.#add(inputs, options),
      spawn: <R>(handler: string, inputs: readonly unknown[], options?: SpawnOptions) =>
        this.#spawn(handler, inputs, options) as Promise<SpawnedGroup<R>>,
    };
    return Object.defineProperty(ctx, 'checkpoint', {
      get: (): unknown => this.checkpoint,
      enumerable: true,
    }) as TaskContext;
  }

  /**
   * Coalesced: at most one progress message per progressEveryMs (a quarter
   * of heartbeatTimeoutMs); a heartbeat inside the window is sent at its
   * end, so none is lost and the coordinator hears of it within the window.
   */
  #heartbeat(): void {
    const limit = this.msg.heartbeatTimeoutMs ?? 0;
    if (limit <= 0 || this.#ended || this.#progressTimer !== null) return;
    const every = progressEveryMs(limit);
    const wait = this.#progressSentAt + every - performance.now();
    if (wait <= 0) {
      this.#sendProgress();
      return;
    }
    this.#progressTimer = setTimeout(() => {
      this.#progressTimer = null;
      if (!this.#ended) this.#sendProgress();
    }, wait);
  }

  #sendProgress(): void {
    this.#progressSentAt = performance.now();
    this.host.progress(this);
  }

  #valueEnd(value: unknown): RunEnd {
    const owner = `the result of task ${this.msg.taskId} (handler ${JSON.stringify(this.msg.handler)})`;
    // A handler that returns nothing (undefined) succeeds with null.
    const json = jsonOf(
      value === undefined ? null : value,
      { root: 'result', owner },
      this.host.limits(),
    );
    if (json.ok) return { ok: true, valueJson: json.text };
    return { ok: false, error: { kind: 'permanent', message: json.message } };
  }

  #timeout(): void {
    this.#timer = null;
    if (this.#ended) return;
    const message = `task ${this.msg.taskId} attempt ${this.msg.attempt} ran longer than its timeoutMs (${this.msg.timeoutMs})`;
    this.#finish({ ok: false, error: { kind: 'timeout', message } });
    this.controller.abort(new RegroupError('timeout', message));
  }

  #finish(end: RunEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#clearTimer();
    this.host.finish(this, end);
  }

  #clearTimer(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#progressTimer !== null) clearTimeout(this.#progressTimer);
    this.#progressTimer = null;
  }
}
