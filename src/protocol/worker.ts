/**
 * The worker protocol: JSON over one WebSocket per worker session, at path
 * `/v1/worker`. Every frame, both ways, is a JSON array of messages, so many
 * updates travel in one frame (batching). Every message about a run carries
 * its fencing token `(taskId, attempt)`.
 *
 * Worker -> coordinator: hello (first), beat, result, fail, checkpoint, add,
 * spawn, group, progress, release, drain, bye. Coordinator -> worker:
 * welcome, run, ack, saved, added, spawned, group_reply, revoke, beat, error.
 * See docs/protocol.md.
 */
import Type, { type Static } from 'typebox';
import { GROUP_POLICIES } from '../core/types.js';
import { HandlerName, TaskOptionsInput } from './http.js';
import { checker } from './validate.js';

export { PROTOCOL_VERSION, WORKER_PATH } from './constants.js';

const TaskId = Type.Integer({ minimum: 1 });
const Attempt = Type.Integer({ minimum: 1 });
const Name = Type.String({ minLength: 1, maxLength: 200 });

export const RunRef = Type.Object(
  { taskId: TaskId, attempt: Attempt },
  { additionalProperties: false },
);
export type RunRef = Static<typeof RunRef>;

export const Hello = Type.Object(
  {
    t: Type.Literal('hello'),
    protocol: Type.Integer({ minimum: 1 }),
    name: Name,
    handlers: Type.Array(Name, { maxItems: 10_000 }),
    slots: Type.Integer({ minimum: 1, maximum: 100_000 }),
    labels: Type.Array(Name, { maxItems: 1000 }),
    /** Present when the worker had a session and wants it back with its leases. */
    resume: Type.Optional(
      Type.Object(
        {
          workerId: Type.String({ minLength: 1, maxLength: 100 }),
          token: Type.String({ minLength: 1, maxLength: 200 }),
        },
        { additionalProperties: false },
      ),
    ),
    /** Runs the worker still has: running, or finished with the result in its outbox. */
    held: Type.Optional(Type.Array(RunRef, { maxItems: 100_000 })),
    /** The worker is draining (it reconnected during its drain). */
    draining: Type.Optional(Type.Boolean()),
    /**
     * The worker reports what it holds: its beats carry `frames` and `held`,
     * and it sends `progress`. Without it (an older worker) the coordinator
     * neither requeues runs by those reports nor watches heartbeatTimeoutMs.
     */
    leaseReports: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type Hello = Static<typeof Hello>;

export const Beat = Type.Object(
  {
    t: Type.Literal('beat'),
    /**
     * Frames received on this connection so far (every frame, also one the
     * worker could not parse). With `held`: a run sent in one of those
     * frames that is not held was lost, and is requeued.
     */
    frames: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Runs the worker holds as it beats: running, or with a report not acked yet. */
    held: Type.Optional(Type.Array(RunRef, { maxItems: 100_000 })),
  },
  { additionalProperties: false },
);
export type Beat = Static<typeof Beat>;

export const WireTaskError = Type.Object(
  {
    kind: Type.Union([
      Type.Literal('error'),
      Type.Literal('timeout'),
      Type.Literal('permanent'),
      Type.Literal('handler_not_found'),
    ]),
    message: Type.String({ maxLength: 64 * 1024 }),
    name: Type.Optional(Type.String({ maxLength: 200 })),
    /**
     * The handler's stack (protocol/task-error.ts stackOf). Any length the
     * frame limit lets through: the coordinator clips it (clipStack), so a
     * long one is kept in part rather than refused with its failure.
     */
    stack: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
export type WireTaskError = Static<typeof WireTaskError>;

export const Result = Type.Object(
  { t: Type.Literal('result'), taskId: TaskId, attempt: Attempt, value: Type.Unknown() },
  { additionalProperties: false },
);
export type Result = Static<typeof Result>;

export const Fail = Type.Object(
  { t: Type.Literal('fail'), taskId: TaskId, attempt: Attempt, error: WireTaskError },
  { additionalProperties: false },
);
export type Fail = Static<typeof Fail>;

export const Checkpoint = Type.Object(
  {
    t: Type.Literal('checkpoint'),
    taskId: TaskId,
    attempt: Attempt,
    /** Per-run counter, echoed in `saved`, so the worker can match the answer. */
    seq: Type.Integer({ minimum: 0 }),
    state: Type.Unknown(),
  },
  { additionalProperties: false },
);
export type Checkpoint = Static<typeof Checkpoint>;

/** Longest key of an add (ctx.add's `key`, or `#n`). */
export const ADD_KEY_MAX = 200;

/**
 * A running task adds tasks to its own group (ctx.add). Fenced like a
 * report; `key` names the add within its task across attempts (a repeat
 * answers the first add and adds nothing). The count and sizes of `inputs`
 * are checked against the coordinator's limits (maxTasksPerRequest,
 * maxInputBytes), not here.
 */
export const Add = Type.Object(
  {
    t: Type.Literal('add'),
    taskId: TaskId,
    attempt: Attempt,
    /** Per-run counter, echoed in `added`, so the worker can match the answer. */
    seq: Type.Integer({ minimum: 0 }),
    key: Type.String({ minLength: 1, maxLength: ADD_KEY_MAX }),
    inputs: Type.Array(Type.Unknown()),
  },
  { additionalProperties: false },
);
export type Add = Static<typeof Add>;

/**
 * A running task creates a child group (ctx.spawn). Fenced like a report;
 * `key` names the spawn within its task across attempts (a repeat answers
 * the first spawn's group and creates nothing). The inputs are checked
 * against the coordinator's limits like a client's submit.
 */
export const Spawn = Type.Object(
  {
    t: Type.Literal('spawn'),
    taskId: TaskId,
    attempt: Attempt,
    /** Per-run counter, echoed in `spawned`. */
    seq: Type.Integer({ minimum: 0 }),
    key: Type.String({ minLength: 1, maxLength: ADD_KEY_MAX }),
    handler: HandlerName,
    inputs: Type.Array(Type.Unknown()),
    policy: Type.Optional(Type.Enum([...GROUP_POLICIES])),
    options: Type.Optional(TaskOptionsInput),
    /** The child outlives its parent's final failure (not a cancel of an ancestor). */
    keepChildren: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type Spawn = Static<typeof Spawn>;

/**
 * The client API operations a running task may call, over its session, on a
 * group under its own task (a group it spawned, or one below): the handle of
 * ctx.spawn. Named by the route table's operationId.
 */
export const GROUP_CALL_OPS = [
  'getGroup',
  'waitGroup',
  'listTasks',
  'finishedTasks',
  'cancelGroup',
  'retryGroup',
  'listGroups',
] as const;
export type GroupCallOp = (typeof GROUP_CALL_OPS)[number];

/**
 * One client API call of a running task (the handle of a spawned group):
 * the operation, its group and its query parameters as the HTTP route takes
 * them (text, checked and converted by the route's own rules). Answered
 * `group_reply` with the same seq.
 */
export const GroupCall = Type.Object(
  {
    t: Type.Literal('group'),
    taskId: TaskId,
    attempt: Attempt,
    /** Per-run counter of calls, echoed in `group_reply`. */
    seq: Type.Integer({ minimum: 0 }),
    op: Type.Enum([...GROUP_CALL_OPS]),
    groupId: Type.String({ minLength: 1, maxLength: 200 }),
    query: Type.Optional(
      Type.Record(Type.String({ maxLength: 50 }), Type.String({ maxLength: 50 }), {
        maxProperties: 10,
      }),
    ),
  },
  { additionalProperties: false },
);
export type GroupCall = Static<typeof GroupCall>;

/** The handler showed progress (ctx.heartbeat()); coalesced by the worker (core/deadline.ts progressEveryMs). */
export const Progress = Type.Object(
  { t: Type.Literal('progress'), taskId: TaskId, attempt: Attempt },
  { additionalProperties: false },
);
export type Progress = Static<typeof Progress>;

/**
 * The run's handler waits on a group it spawned (a handle's wait,
 * waitSettled or results): its slot is free for other runs until it asks
 * to `resume`. Not answered: a suspend the coordinator does not take (past
 * its maxSuspendedPerWorker, or for a run this session does not hold)
 * leaves the run holding its slot, and its `resume` is granted at once.
 */
export const Suspend = Type.Object(
  { t: Type.Literal('suspend'), taskId: TaskId, attempt: Attempt },
  { additionalProperties: false },
);
export type Suspend = Static<typeof Suspend>;

/**
 * The wait of a suspended run ended: it asks for a slot back before its
 * handler goes on. Answered `resumed` (same seq) once it holds one: at
 * once when a slot is free, else ahead of any new run when the next frees.
 */
export const Resume = Type.Object(
  {
    t: Type.Literal('resume'),
    taskId: TaskId,
    attempt: Attempt,
    /** Per-run counter, echoed in `resumed`. */
    seq: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type Resume = Static<typeof Resume>;

/** The worker hands a run back unfinished (drain timeout): it goes back to pending at once. */
export const Release = Type.Object(
  { t: Type.Literal('release'), taskId: TaskId, attempt: Attempt },
  { additionalProperties: false },
);
export type Release = Static<typeof Release>;

export const Drain = Type.Object({ t: Type.Literal('drain') }, { additionalProperties: false });
/** The worker leaves on purpose after draining: it is not dead, nothing is counted against its tasks. */
export const Bye = Type.Object({ t: Type.Literal('bye') }, { additionalProperties: false });

export const WorkerMessage = Type.Union([
  Hello,
  Beat,
  Result,
  Fail,
  Checkpoint,
  Add,
  Spawn,
  GroupCall,
  Suspend,
  Resume,
  Progress,
  Release,
  Drain,
  Bye,
]);
export type WorkerMessage = Static<typeof WorkerMessage>;

/**
 * Most messages in one frame, either way. A worker packs its frames up to
 * 1 MiB (FRAME_SOFT_LIMIT_BYTES) and its smallest message is 12 bytes, so
 * it never comes near; the coordinator counts before it parses anything.
 */
export const MAX_FRAME_MESSAGES = 100_000;

export const workerMessage = checker(WorkerMessage, 'protocol_error');
export const workerFrame = checker(
  Type.Array(Type.Unknown(), { maxItems: MAX_FRAME_MESSAGES }),
  'protocol_error',
);

// ---- coordinator -> worker ---------------------------------------------------

export interface Welcome {
  t: 'welcome';
  workerId: string;
  /** Secret that lets this worker resume its session after a reconnect. */
  token: string;
  /** True when the session (and its leases) was resumed. */
  resumed: boolean;
  heartbeatMs: number;
  deadAfterMs: number;
  closeGraceMs: number;
  maxResultBytes: number;
  /** The coordinator's limit on the nesting of inputs, results and checkpoints (Limits.maxDepth). */
  maxDepth: number;
  /** The slots granted: the hello's, at most the coordinator's maxWorkerSlots. The worker runs at most this many at once. */
  slots?: number;
}

export interface Run {
  t: 'run';
  taskId: number;
  attempt: number;
  groupId: string;
  /** Position of the task in its group's input order. */
  index: number;
  handler: string;
  input: unknown;
  /** The last checkpoint saved by an earlier attempt; absent when there is none. */
  checkpoint?: unknown;
  /** 0 = no limit. */
  timeoutMs: number;
  /** 0 = not watched; otherwise the handler should call ctx.heartbeat() at least this often. */
  heartbeatTimeoutMs?: number;
}

/** The answer to result, fail and release. The worker drops the entry from its outbox on any ack. */
export interface Ack {
  t: 'ack';
  taskId: number;
  attempt: number;
  status: 'committed' | 'already_final' | 'stale';
}

export interface Saved {
  t: 'saved';
  taskId: number;
  attempt: number;
  seq: number;
  ok: boolean;
  /** Why not, when ok is false: stale_attempt or input_too_large. */
  code?: string;
}

/**
 * The answer to `add`, once committed (or refused). ok: the inputs are tasks
 * first..first+count-1 of the group (a repeated key: the first add's, nothing
 * added). Not ok: `code` and `message` say why (stale_attempt,
 * idempotency_conflict, too_many_tasks, input_too_large, too_deep, ...).
 */
export interface Added {
  t: 'added';
  taskId: number;
  attempt: number;
  seq: number;
  ok: boolean;
  first?: number;
  count?: number;
  code?: string;
  message?: string;
}

/**
 * The answer to `spawn`, once committed (or refused). ok: `groupId` is the
 * child (a repeated key: the first spawn's, nothing created). Not ok: `code`
 * and `message` say why (stale_attempt, idempotency_conflict,
 * too_many_tasks, input_too_large, too_deep, validation_failed, ...).
 */
export interface Spawned {
  t: 'spawned';
  taskId: number;
  attempt: number;
  seq: number;
  ok: boolean;
  groupId?: string;
  code?: string;
  message?: string;
}

/**
 * The answer to `group`: ok with the HTTP route's reply body (`status` its
 * HTTP status), or not ok with the error the route would have answered.
 */
export interface GroupReply {
  t: 'group_reply';
  taskId: number;
  attempt: number;
  seq: number;
  ok: boolean;
  status?: number;
  body?: unknown;
  code?: string;
  message?: string;
}

/**
 * The answer to `resume`: ok, the run holds a slot again and its handler
 * goes on. Not ok (code stale_attempt): this session does not hold the run
 * any more (a revoke says why).
 */
export interface Resumed {
  t: 'resumed';
  taskId: number;
  attempt: number;
  seq: number;
  ok: boolean;
  code?: string;
}

/** Abort this run: its signal fires. The worker sends nothing more about it. */
export interface Revoke {
  t: 'revoke';
  taskId: number;
  attempt: number;
  /** timeout: the coordinator ended the run (timeoutMs or heartbeatTimeoutMs ran out). */
  reason: 'canceled' | 'stale' | 'lost' | 'timeout';
  /** Why, in words (with reason timeout). */
  message?: string;
}

export interface CoordinatorBeat {
  t: 'beat';
}

export interface ProtocolErrorMessage {
  t: 'error';
  code: string;
  message: string;
}

export type CoordinatorMessage =
  | Welcome
  | Run
  | Ack
  | Saved
  | Added
  | Spawned
  | GroupReply
  | Resumed
  | Revoke
  | CoordinatorBeat
  | ProtocolErrorMessage;
