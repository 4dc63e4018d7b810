/**
 * The vocabulary of regroup. One word per concept, the same in code, database
 * columns, wire fields, logs and docs (see docs/glossary.md).
 *
 * - task: one call of a handler with one JSON input. Identified by `taskId`.
 * - group: the tasks submitted together and waited on together (the WaitGroup).
 * - attempt: the number of times a task has been dispatched; `(taskId, attempt)`
 *   is the fencing token of one run.
 * - worker: one connected worker session. A worker that was declared dead and
 *   comes back is a new worker (new `workerId`).
 * - lease: the right of one worker to run one attempt of one task; held from
 *   dispatch until the result is committed, the worker dies or the lease is revoked.
 * - checkpoint: partial progress saved by a run, handed to the next attempt.
 */

/** JSON values: task inputs, results and checkpoints are JSON, nothing else. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every task state, in lifecycle order: the one list the type, schemas, metrics and CLI derive from. */
export const TASK_STATES = ['pending', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const FINAL_TASK_STATES = [
  'succeeded',
  'failed',
  'canceled',
] as const satisfies readonly TaskState[];
const FINAL: ReadonlySet<TaskState> = new Set(FINAL_TASK_STATES);
export function isFinal(state: TaskState): boolean {
  return FINAL.has(state);
}

/** A record with one entry per task state, each `init()`: counters and empty structures. */
export function perTaskState<T>(init: () => T): Record<TaskState, T> {
  return Object.fromEntries(TASK_STATES.map((s) => [s, init()])) as Record<TaskState, T>;
}

/**
 * open: takes more tasks (`add`) until sealed.
 * sealed: no more tasks; done once nothing is outstanding.
 * done: sealed and every task final.
 * canceled: canceled by a client; every task final (canceled or already final).
 */
export const GROUP_STATES = ['open', 'sealed', 'done', 'canceled'] as const;
export type GroupState = (typeof GROUP_STATES)[number];

/** collectAll (default) waits for every task; failFast cancels the rest at the first failure. */
export const GROUP_POLICIES = ['collectAll', 'failFast'] as const;
export type GroupPolicy = (typeof GROUP_POLICIES)[number];

/** Why a task failed for good. */
export const FAILURE_KINDS = [
  'error',
  'timeout',
  'poison',
  'permanent',
  'handler_not_found',
  'unschedulable',
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export interface TaskError {
  /** error | timeout | poison | permanent | handler_not_found | unschedulable */
  kind: FailureKind;
  message: string;
  /** The error's class name on the worker, when there was one. */
  name?: string;
  /**
   * Where the handler threw: the error's stack frames on the worker (without
   * its first `Name: message` line), then a `caused by:` section per
   * `cause`; at most 50 lines and 8 KiB, clipped with a marker line. Absent
   * when the thrown value had none (a thrown string, a timeout).
   */
  stack?: string;
}

/** Per-task execution options, fixed when the task is created. */
export interface TaskOptions {
  /** Handler errors (and timeouts) allowed before the task fails. Default 3. */
  maxAttempts: number;
  /** Abort the handler after this long; 0 = no limit. Default 0. */
  timeoutMs: number;
  /**
   * The handler shows progress (ctx.heartbeat() or a saved checkpoint) at
   * least this often, or the coordinator ends the run as a timeout; 0 = not
   * watched. Default 0.
   */
  heartbeatTimeoutMs: number;
  /** Deaths of workers running this task before it fails as poison. Default 3. */
  maxNodeFailures: number;
  /** Groups with a higher priority are served first in each round-robin round. Default 0. */
  priority: number;
  /** Worker labels a task needs; a task goes only to workers having all of them. */
  requires: string[];
  /** First retry delay; doubles each retry, with equal jitter (half fixed, half random). Default 200 ms. */
  backoffMs: number;
  /** Upper bound of the retry delay. Default 30 s. */
  backoffMaxMs: number;
  /**
   * A group that no connected worker can run for this long has its pending
   * tasks failed for good (kind unschedulable); 0 = wait forever. Default 0.
   */
  scheduleTimeoutMs: number;
  /**
   * Most of the group's tasks running at once (sent to workers, or reserved
   * for one); the others wait, pending, never failing for it. 0 = no cap.
   * Default 0. Counted by the coordinator from its leases, which a new term
   * reads back from the store, so it holds through worker deaths and
   * coordinator restarts.
   */
  maxConcurrency: number;
  /**
   * A limit shared by every group that names this key: at most the key's
   * limit of their tasks leased at once, all groups together. '' = none.
   * The limit is the coordinator's (its concurrencyLimits), or else the
   * concurrencyKeyLimit of the oldest live group that gives one; a group
   * naming a key without a limit takes the key's limit at creation, so the
   * first group's limit outlasts it. A key with neither is not limited.
   * Default ''.
   */
  concurrencyKey: string;
  /** The limit of concurrencyKey this group proposes (see concurrencyKey); 0 = none. Default 0. */
  concurrencyKeyLimit: number;
}

export const DEFAULT_TASK_OPTIONS: Readonly<TaskOptions> = Object.freeze({
  maxAttempts: 3,
  timeoutMs: 0,
  heartbeatTimeoutMs: 0,
  maxNodeFailures: 3,
  priority: 0,
  requires: [],
  backoffMs: 200,
  backoffMaxMs: 30_000,
  scheduleTimeoutMs: 0,
  maxConcurrency: 0,
  concurrencyKey: '',
  concurrencyKeyLimit: 0,
});

export const WORKER_HEALTHS = ['alive', 'suspect', 'draining', 'dead'] as const;
export type WorkerHealth = (typeof WORKER_HEALTHS)[number];

/** Counters of a group, updated in the same transaction as the tasks they count. */
export interface GroupCounts {
  total: number;
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  canceled: number;
}

/** The task that spawned a group (ctx.spawn), and that task's group. */
export interface GroupParent {
  groupId: string;
  taskId: number;
}

export interface GroupInfo extends GroupCounts {
  id: string;
  handler: string;
  state: GroupState;
  policy: GroupPolicy;
  idempotencyKey: string | null;
  createdAt: number;
  sealedAt: number | null;
  finishedAt: number | null;
  options: TaskOptions;
  /**
   * The task that spawned this group (ctx.spawn); null for a client's group.
   * The stores always set it; optional so that views built by hand (tests,
   * tools written before spawn) stay valid, and absent reads as null.
   */
  parent?: GroupParent | null;
}
