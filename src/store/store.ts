/**
 * The store: durable state of groups, tasks, workers and events. One
 * interface, implemented by SQLite (embedded default) and PostgreSQL.
 *
 * Rules every implementation keeps (the contract suite in test/store/contract.ts
 * checks them):
 * - Every method is atomic. No transaction or connection type leaks out.
 * - `commitTick` applies everything that arrived in one coordinator tick in ONE
 *   transaction (group commit), in this order: the op kinds in the order of
 *   OPS (src/core/ops.ts: createGroups, addTasks, seals, cancels, retries,
 *   taskAdds, spawns, commits, failures, requeues, checkpoints, scheduleTimeouts),
 *   then workers, claims, events.
 *   Nothing is acknowledged before it returns.
 * - Every write about a run is fenced by `(taskId, attempt, workerId)`: it
 *   applies only while the task is `running` with exactly that attempt and
 *   lease holder. A mismatch is a normal outcome (`stale`, or `already_final`
 *   when the task is final), never an exception.
 * - A final task never changes again, with one exception: `retries` puts a
 *   group's `failed` tasks back to `pending` (an operator asked for it). The
 *   attempt is kept (the next claim takes attempt + 1, so reports of the old
 *   runs stay stale), the attempt budget starts over (errors and
 *   node_failures back to 0), the last error and checkpoint are kept, and the
 *   finishing sequence is cleared (the task finishes again with a new one).
 * - A running task's add (`taskAdds`) is fenced like a report, and keyed by
 *   (taskId, key): a repeat of a key, by any attempt, adds nothing and answers
 *   the first add's indexes (see TaskAddOutcome).
 * - A running task's child group (`spawns`) is fenced the same way and keyed
 *   by (taskId, key): a repeat, by any attempt, answers the group the first
 *   spawn created (see SpawnOutcome). The child records its parent.
 * - Canceling a group cancels its live descendants (groups spawned by its
 *   tasks, and theirs) in the same transaction; a task that fails for good,
 *   and a task that failFast cancels, cancel the live children they spawned
 *   without `keepChildren` (and theirs).
 * - Group counters change in the same transaction as the tasks they count.
 * - Policy (retry or not, next run time, poison) is decided by core and passed
 *   in as values; the store holds no rule of its own except failFast
 *   (a failed task cancels the rest of its group when the group's policy says so).
 */
import type {
  GroupInfo,
  GroupPolicy,
  Json,
  TaskError,
  TaskOptions,
  TaskState,
} from '../core/types.js';
import type { EventType } from '../core/events.js';
import type { OpKind } from '../core/ops.js';
import type { EventView, TaskView } from '../protocol/http.js';

export interface NewGroup {
  id: string;
  handler: string;
  policy: GroupPolicy;
  idempotencyKey: string | null;
  /** open: takes `addTasks` until sealed; otherwise sealed at creation. */
  open: boolean;
  options: TaskOptions;
  /** The first tasks, indexes 0..n-1. May be empty. */
  inputs: unknown[];
}

export interface AddTasks {
  groupId: string;
  /** The index the first input must take; null = append wherever the group is. */
  offset: number | null;
  inputs: unknown[];
}

/**
 * A running task adds tasks to its own group (ctx.add): fenced by
 * (taskId, attempt, workerId) like a report, idempotent by (taskId, key)
 * across the task's attempts. The tasks take the group's next indexes;
 * the group's state does not matter (a sealed group takes them: the
 * fence holds only while the task runs, so the group is live).
 */
export interface TaskAddOp {
  taskId: number;
  attempt: number;
  workerId: string;
  /** The add's key within its task: `#0`, `#1`, ... by position in the run, or the handler's own. */
  key: string;
  inputs: unknown[];
}

/**
 * A running task creates a child group (ctx.spawn): fenced by (taskId,
 * attempt, workerId) like a report, idempotent by (taskId, key) across the
 * task's attempts, in a namespace of its own (not the clients'
 * idempotency keys). The group is sealed at creation and records the task
 * and the task's group as its parent.
 */
export interface SpawnOp {
  taskId: number;
  attempt: number;
  workerId: string;
  /** The spawn's key within its task: `#0`, `#1`, ... by position in the run, or the handler's own. */
  key: string;
  group: {
    id: string;
    handler: string;
    policy: GroupPolicy;
    options: TaskOptions;
    inputs: unknown[];
  };
  /** The child outlives its parent's final failure (not a cancel of an ancestor group). */
  keepChildren: boolean;
}

/** A run ended with a value. */
export interface CommitOp {
  taskId: number;
  attempt: number;
  workerId: string;
  value: unknown;
}

/** A run ended with an error; core decided whether it is retried (retryAt) or final (retryAt null). */
export interface FailOp {
  taskId: number;
  attempt: number;
  workerId: string;
  error: TaskError;
  retryAt: number | null;
  /** The run ended because its worker died (counts toward maxNodeFailures, not maxAttempts). */
  nodeFailure: boolean;
}

/** A run goes back to pending without counting a handler error. */
export interface RequeueOp {
  taskId: number;
  attempt: number;
  workerId: string;
  /** The worker died with it: node_failures + 1. */
  nodeFailure: boolean;
  runAt: number;
}

export interface CheckpointOp {
  taskId: number;
  attempt: number;
  workerId: string;
  state: unknown;
}

/**
 * A group waited longer than its scheduleTimeoutMs with no connected worker
 * able to run it (core decided): every pending task of the group fails for
 * good with `error` (kind unschedulable), finishing in input order; under
 * failFast the rest of the group is canceled as for any final failure.
 * Nothing happens to a group that is not open or sealed.
 */
export interface ScheduleTimeoutOp {
  groupId: string;
  error: TaskError;
}

export type WorkerRecordState = 'alive' | 'suspect' | 'draining' | 'dead' | 'left';

/** What the store keeps of a worker session: enough to resume it after a coordinator restart. */
export interface WorkerRecord {
  workerId: string;
  name: string;
  token: string;
  state: WorkerRecordState;
  slots: number;
  labels: string[];
  handlers: string[];
  connectedAt: number;
  /** Last time the state changed or the worker was seen at a tick that wrote it (not every beat). */
  seenAt: number;
}

export interface ClaimOp {
  taskId: number;
  workerId: string;
}

export interface NewEvent {
  /** One of core/events.ts's list: a store writes no other. */
  type: EventType;
  /** When it happened (ms); the tick's `now` when absent. */
  at?: number;
  workerId?: string | null;
  groupId?: string | null;
  taskId?: number | null;
  data?: Json;
}

/** The op and the outcome of each op kind (the kinds and their order: core/ops.ts). */
export interface Ops {
  createGroups: { op: NewGroup; outcome: CreateOutcome };
  addTasks: { op: AddTasks; outcome: AddOutcome };
  seals: { op: string; outcome: SealOutcome };
  cancels: { op: string; outcome: CancelOutcome };
  /** Group ids whose failed tasks go back to pending (see RetryOutcome). */
  retries: { op: string; outcome: RetryOutcome };
  taskAdds: { op: TaskAddOp; outcome: TaskAddOutcome };
  spawns: { op: SpawnOp; outcome: SpawnOutcome };
  commits: { op: CommitOp; outcome: RunOutcome };
  failures: { op: FailOp; outcome: RunOutcome };
  requeues: { op: RequeueOp; outcome: RunOutcome };
  checkpoints: { op: CheckpointOp; outcome: RunOutcome };
  /** Outcome: how many pending tasks failed (0 when the group is unknown or not live). */
  scheduleTimeouts: { op: ScheduleTimeoutOp; outcome: number };
}
export type OpOf<K extends OpKind> = Ops[K]['op'];
export type OutcomeOf<K extends OpKind> = Ops[K]['outcome'];
type SameKeys<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Fails the build when Ops and the op kinds of core part. */
export type _OpsCoverEveryKind = [SameKeys<keyof Ops, OpKind>] extends [true] ? true : never;
const _opsCoverEveryKind: _OpsCoverEveryKind = true;
void _opsCoverEveryKind;

export type TickOps = { [K in OpKind]?: OpOf<K>[] };

export interface Tick extends TickOps {
  now: number;
  workers?: WorkerRecord[];
  claims?: ClaimOp[];
  /**
   * Optional, for the latency of a new group: after the tick's creates and
   * adds, the store MAY pass (up to `max` of) the tasks they inserted, in
   * dispatch order, to `plan`, and claim the returned ops in the same
   * transaction, after `claims`. A store that does not leaves them pending
   * for the next tick's dispatch; nothing else differs.
   */
  claimNew?: { max: number; plan: (tasks: ReadyTask[]) => ClaimOp[] };
  events?: NewEvent[];
}

export type CreateOutcome =
  | { status: 'created'; group: GroupInfo }
  /** The idempotency key existed with the same handler: that group, unchanged. */
  | { status: 'existing'; group: GroupInfo }
  | { status: 'conflict'; group: GroupInfo };

export type AddOutcome =
  | { status: 'added'; group: GroupInfo }
  /** offset + inputs.length <= group.total and offset given: applied before, nothing added. */
  | { status: 'duplicate'; group: GroupInfo }
  | { status: 'not_found' }
  | { status: 'sealed'; group: GroupInfo }
  /** offset given and neither the next index nor a repeat of an applied request. */
  | { status: 'offset_mismatch'; group: GroupInfo };

export type SealOutcome = { status: 'sealed'; group: GroupInfo } | { status: 'not_found' };
/**
 * canceled: the group is canceled, or had ended; `changed`: this op canceled
 * it (false: nothing happened to it); `descendants`: how many live groups
 * under it (spawned by its tasks, and so on down) this op canceled too.
 */
export type CancelOutcome =
  | { status: 'canceled'; group: GroupInfo; changed: boolean; descendants: number }
  | { status: 'not_found' };
/**
 * retried: every failed task of the group is pending again (`retried` of
 * them, 0 when there were none); a done group is sealed again.
 * canceled: the group was canceled; nothing changed (its failed tasks stay failed).
 */
export type RetryOutcome =
  | { status: 'retried'; retried: number; group: GroupInfo }
  | { status: 'canceled'; group: GroupInfo }
  | { status: 'not_found' };

export type RunOutcome = 'applied' | 'already_final' | 'stale';

/**
 * added: the inputs are tasks `first`..`first + count - 1` of the task's
 * group. duplicate: the key was added before (by this attempt or an earlier
 * one) with as many inputs: nothing added, the first add's indexes.
 * conflict: the key was added before with another number of inputs
 * (`first`, `count` are the first add's): nothing added. stale and
 * already_final: the fence did not hold (RunOutcome); nothing added, and
 * the key is not looked at.
 */
export type TaskAddOutcome =
  | { status: 'added' | 'duplicate' | 'conflict'; first: number; count: number }
  | { status: 'stale' | 'already_final' };

/**
 * created: the child group is new (this op made it). existing: the key was
 * spawned before (by this attempt or an earlier one) with the same handler:
 * that group, as it is now, nothing created. conflict: the key was spawned
 * before with another handler: that group, nothing created. stale and
 * already_final: the fence did not hold; nothing created, the key not looked at.
 */
export type SpawnOutcome =
  | { status: 'created' | 'existing' | 'conflict'; group: GroupInfo }
  | { status: 'stale' | 'already_final' };

/** A running lease, with what core needs to decide retries and poison. */
export interface Lease {
  taskId: number;
  groupId: string;
  index: number;
  handler: string;
  attempt: number;
  workerId: string;
  startedAt: number;
  errors: number;
  nodeFailures: number;
  options: TaskOptions;
}

/** A claimed task: its lease plus what the worker needs to run it. */
export interface ClaimedTask extends Lease {
  input: unknown;
  /** undefined when no checkpoint was saved. */
  checkpoint: unknown;
}

/** A run that a cancel (or failFast) ended while it was running: its worker must be told to abort. */
export interface RevokedRun {
  taskId: number;
  attempt: number;
  workerId: string;
}

export type TickOutcome = { [K in OpKind]: OutcomeOf<K>[] } & {
  /** Claims that took (task was still pending), in the order given. */
  claimed: ClaimedTask[];
  /** Runs ended by cancels or failFast in this tick. */
  revoked: RevokedRun[];
  /** Every group whose counters or state changed in this tick, as it is now. */
  changedGroups: GroupInfo[];
};

/** A pending task that may be dispatched now. */
export interface ReadyTask {
  taskId: number;
  groupId: string;
  handler: string;
  priority: number;
  requires: string[];
  /** The group's options.maxConcurrency (0: no cap). */
  maxConcurrency: number;
  /** The group's options.concurrencyKey ('': none). */
  concurrencyKey: string;
}

export interface GroupsQuery {
  limit: number;
  /**
   * Groups with createdAt < before. Coarse: groups created in the same
   * millisecond as the last of a page are not all on the next; `after` is
   * exact.
   */
  before?: number;
  /**
   * The groups listed after this one (the id of the last group of the
   * previous page): created earlier, or in the same millisecond and
   * inserted before it. An id that is no group gives an empty page (the
   * API checks it first).
   */
  after?: string;
  /** Only groups a client submitted (no parent). */
  roots?: boolean;
}

export interface ChildrenQuery {
  limit: number;
  /** Children created after this one: the id of the last child of the previous page. */
  after?: string;
}

/** Live groups (open or sealed): a client's, and spawned by a task. */
export interface LiveGroupCounts {
  root: number;
  child: number;
}

/** Tasks by state, over the whole store. */
export type TaskCounts = Record<TaskState, number>;

export interface TaskQuery {
  /** Tasks with index > after (input order). Default -1. */
  after?: number;
  limit: number;
  state?: TaskState;
}

/**
 * A task as the paged reads return it: its value and error are the JSON text
 * the store holds, never parsed, so a result only passed through (store to
 * wire) costs its bytes once and no parse (docs/design.md, "Raw values").
 */
export interface TaskRecord {
  taskId: number;
  groupId: string;
  index: number;
  state: TaskState;
  attempt: number;
  workerId: string | null;
  startedAt: number | null;
  finishedAt: number | null;
  seq: number | null;
  /** The result's JSON text; null when the task has none. */
  valueJson: string | null;
  /** The last error's JSON text (a TaskError); null when the task has none. */
  errorJson: string | null;
}

/**
 * One page of tasks, bounded by rows (`limit`) and by bytes (`maxBytes`): the
 * rows of a page are a prefix of the query's rows whose value and error text
 * add up to at most maxBytes, and at least one row whenever one is there (a
 * row alone may exceed maxBytes; a single result is at most maxResultBytes).
 */
export interface TaskPage {
  tasks: TaskRecord[];
  /** The byte budget ended the page before `limit` rows: at least one more row follows. */
  cut: boolean;
}

/** A byte-bounded page of a group's tasks in input order. */
export interface TaskPageQuery extends TaskQuery {
  /** Most bytes of value and error JSON text (UTF-8) in the page. */
  maxBytes: number;
}

/** A byte-bounded page of a group's final tasks in finishing order. */
export interface FinishedPageQuery {
  /** Tasks with finishing sequence > afterSeq. */
  afterSeq: number;
  limit: number;
  /** Most bytes of value and error JSON text (UTF-8) in the page. */
  maxBytes: number;
}

/** A task without its value (the dashboard's table): the store never reads the value column for it. */
export type TaskSummary = Omit<TaskView, 'value'>;

export interface Store {
  /** Creates or migrates the schema. */
  open(): Promise<void>;
  close(): Promise<void>;

  /** Everything that arrived in one tick, committed in one transaction. */
  commitTick(tick: Tick): Promise<TickOutcome>;

  /**
   * Every group that has pending tasks (open or sealed, pending > 0), oldest
   * first, whole: what a new term loads its index of runnable work from
   * (docs/design.md, "Dispatch"). Read once per term, not per tick.
   */
  pendingGroups(): Promise<GroupInfo[]>;
  /**
   * Pending tasks with runAt <= now of the given groups, at most `perGroup` of
   * each, each group's in dispatch order (priority desc, then index).
   */
  readyTasks(groupIds: string[], now: number, perGroup: number): Promise<ReadyTask[]>;
  /** Earliest runAt > now among pending tasks (those waiting out a retry backoff), or null. */
  nextRunAt(now: number): Promise<number | null>;

  /** Every running lease and every worker not dead/left: what a restarted coordinator starts from. */
  recover(): Promise<{ leases: Lease[]; workers: WorkerRecord[] }>;

  getGroup(id: string): Promise<GroupInfo | null>;
  /** Groups newest first (createdAt, then insertion), those created before `before` when given. */
  listGroups(query: GroupsQuery): Promise<GroupInfo[]>;
  /**
   * A group's children (the groups its tasks spawned, any state) in the order
   * they were created (insertion order, which breaks createdAt ties), those
   * created after the child `after` when given. An `after` that is not a
   * child of the group gives an empty page (the API checks it first). Reads
   * the children index only: no sort, whatever the number of children.
   */
  listChildren(groupId: string, query: ChildrenQuery): Promise<GroupInfo[]>;
  /** How many children (any state) each of the groups has; a group with none (or unknown) is absent. */
  countChildren(groupIds: readonly string[]): Promise<Map<string, number>>;
  /** Live groups (open or sealed), split: a client's (root) and spawned (child). One pass (metrics). */
  countLiveGroups(): Promise<LiveGroupCounts>;
  /**
   * Tasks in input order, paged by rows only, values parsed. For tests and
   * tools: the client API reads `taskPage` (values as raw text, pages bounded by bytes).
   */
  listTasks(groupId: string, query: TaskQuery): Promise<TaskView[]>;
  /** Final tasks with finishing sequence > afterSeq, in finishing order, values parsed. Tests and tools, as listTasks. */
  finishedTasks(groupId: string, afterSeq: number, limit: number): Promise<TaskView[]>;
  /**
   * Tasks in input order, values as raw JSON text, the page bounded by rows
   * and bytes (TaskPage). Reads no value past the page.
   */
  taskPage(groupId: string, query: TaskPageQuery): Promise<TaskPage>;
  /** Final tasks in finishing order, values as raw JSON text, bounded as taskPage. */
  finishedPage(groupId: string, query: FinishedPageQuery): Promise<TaskPage>;
  /** Tasks in input order, paged, without their values (the value column is not read). */
  taskSummaries(groupId: string, query: TaskQuery): Promise<TaskSummary[]>;
  listEvents(afterSeq: number, limit: number): Promise<EventView[]>;
  listWorkers(): Promise<WorkerRecord[]>;
  /** How many tasks are in each state, over every group: the group counters summed (metrics). */
  countTasks(): Promise<TaskCounts>;

  /**
   * Stores shared by several coordinators (PostgreSQL) only. Called when this
   * coordinator becomes leader with the epoch it took: from then on every
   * commitTick checks, inside its transaction and under a share lock on the
   * epoch row, that the epoch is still this one, and throws `not_leader`
   * (writing nothing) when a newer leader took over. Also reloads whatever the
   * store caches across ticks (finish_seq), since another leader wrote since.
   */
  beginTerm?(epoch: number): Promise<void>;
}
