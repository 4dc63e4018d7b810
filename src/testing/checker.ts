/**
 * The checker of fault runs: reads a history (history.ts) and the final state
 * of the store, and names every way the run broke the guarantees of the README
 * ("Guarantees, precisely"). A pure function: no clock, no I/O.
 *
 * Words used below:
 * - an **acknowledged group** is a `submit.ok` (key -> groupId).
 * - a **run** is `(taskId, attempt)`; its value is that of its `run.end`.
 * - a **result commit** is a `run.ack` with status `committed` for a run that
 *   did not end with `ok: false`. The coordinator also answers `committed` to
 *   a failure report it applied (the task then retries or fails), so a
 *   committed ack of a failed run is a **failure commit** and is not "the
 *   result": several of them, then one result commit, is a normal retry.
 * - values are compared as JSON (`undefined` is `null`, key order ignored).
 *
 * Anomalies (each finding is reported under exactly one kind, so that one
 * fault in the system shows up as one kind; a missing group or task is only
 * `lost`, never also `changed_after_read` or `wait_unresolved`):
 * - **lost**: an acknowledged group is missing from the final state, or has
 *   fewer tasks there than the inputs submitted under its key; or a result
 *   commit's task is missing or not `succeeded` in the final state. Trees: a
 *   child group a `run.spawn` was answered is missing, is not recorded as a
 *   child of that task, or has fewer tasks than the spawn gave; a task a
 *   `run.add` was answered is missing, or two adds of one group were answered
 *   the same index; a grown group (below) has fewer tasks than its submit and
 *   its adds.
 * - **committed_twice**: more than one result commit for one taskId (any
 *   attempts, any workers, the same run acked twice included); two final tasks
 *   sharing one `seq`; or one idempotency key acknowledged as two groups.
 * - **stale_accepted**: a result commit for (taskId, attempt) whose final task
 *   holds another attempt, or another value than that run's `run.end`; or, for
 *   a task without any result commit in the history (its ack was lost with its
 *   worker), a final value equal to that of a run answered `stale` and
 *   different from the value of the run of the final attempt.
 * - **changed_after_read**: an outcome of a `wait.ok` (index, state, value)
 *   differs from that task in the final state.
 * - **unexpected_result**: a succeeded task whose value is not
 *   `expected(handler, input)`, the input being the `submit.invoke` input of
 *   its group's key at its index, or for a child group that of the
 *   `run.spawn` that made it, or for a task added by `ctx.add` that of the
 *   `run.add` whose indexes hold it (so a tree's results are checked node by
 *   node: a tree sum's root is the sum of its leaves). `expected` returning
 *   `undefined` skips it.
 * - **wait_unresolved**: an acknowledged group with no `wait.ok` from any
 *   client, or that is present but not done in the final state.
 * - **healthy_declared_dead**: a `worker.dead` event of the coordinator's log
 *   (final state) for a worker process that was healthy at that moment: no
 *   fault naming it (`fault.start` with it as `target`: a kill, a stop, a
 *   partition, a link fault) was in effect then or had ended less than
 *   `aftermathMs` before. A worker that was never faulted must never be
 *   declared dead. The event's worker id is mapped to its process by the
 *   `worker.session` lines (the worker's own record of its welcomes), else by
 *   the event's `name` (the harness names each worker after its process).
 * - **ran_past_limit**: a run (its first `run.start`) of a task whose group
 *   has a limit (`timeoutMs` or `heartbeatTimeoutMs`) that was still running,
 *   as far as the coordinator knew, longer than that limit plus the
 *   coordinator's `timeoutGraceMs` (core/deadline.ts `runDeadline`, counted
 *   from the run.start, with no progress: the harness's handlers report none)
 *   plus `detectMs`, the time to detect a death. Time from the run.start
 *   counts, except that a fault on the coordinator (a kill, a stopped or
 *   cut-off leader, a full disk) starts the count again at its end: a
 *   coordinator that recovers a lease gives it a new deadline from then.
 *   A run ended at the first of: its `run.ack` (any status), a `run.start`
 *   of the task with a higher attempt, a `task.failed`, `task.retried`,
 *   `task.poisoned` or `task.lost` event of that attempt (or any task event
 *   of a higher attempt), a `worker.dead` event listing the task, a
 *   `group.done` or `group.canceled` of its group, the final task's
 *   `finishedAt` (that attempt, final) or `startedAt` (a higher attempt).
 *   A run with none of these is judged only if the final state shows it
 *   still running, up to the `harness.stop` line; nothing after that line
 *   is judged.
 * - **added_twice** (trees: no child added twice):
 *   - `ctx.add`: two `run.add` lines of one (task, key) answered other
 *     indexes (any attempts); a group whose tasks all succeeded with more
 *     tasks than its submit's (or its spawn's) inputs plus the counts of its
 *     adds, one per (task, key); a client's group with more tasks than
 *     `expectedTasks` says its inputs grow to.
 *   - `ctx.spawn`: two `run.spawn` lines of one (task, key) answered
 *     different child groups; a succeeded task with a child group in the
 *     final state that none of its spawns was answered (its committed run
 *     wrote every spawn of a deterministic handler, which spawns under the
 *     same keys on every attempt).
 * - **parent_done_early** (trees: parents done only after their children):
 *   - a run read a child group ended (`run.waited`) that the final state
 *     shows not ended, ended after the read, or with another number of
 *     tasks; or the run committed (the task's `finishedAt`) before the
 *     child ended (only the first of these, per read);
 *   - a group that tasks added to (`run.add`) is done with a task not final
 *     or finished after the group became done, with an add of the run that
 *     committed its adder resolved after that, or a client's `wait.ok` of it
 *     holding fewer tasks than the group has (one finding per group).
 *   The times compared are the coordinator's (`finishedAt`) and the
 *   workers' (`t`), from one machine's clock.
 *
 * Reassignment latency: for each `fault.start` of kind worker-kill or
 * worker-stop at t0 on `target` (a worker's proc name), the runs that proc
 * started after the previous kill/stop of the same target and before t0 and
 * had not ended (no `run.end` from that proc) by t0. For each, the sample is
 * the time from t0 to the first later `run.start` of that task by another proc
 * or with a higher attempt (a restarted worker keeps its proc name). Runs
 * never started again (a stopped worker that resumed and finished within the
 * grace) count as `notRerun`. Percentiles are nearest-rank.
 *
 * Counters: `groups` is the acknowledged groups, `tasks` the final tasks in
 * them, `faults` the `fault.start` lines by kind, `judged` the `worker.dead`
 * events and the runs with a limit that the two checks above looked at. `ok`
 * is: no anomaly.
 */
import { isDeepStrictEqual } from 'node:util';
import type {
  FaultStart,
  HistoryLine,
  RunAck,
  RunAdd,
  RunEnd,
  RunSpawn,
  RunStart,
  RunWaited,
  SubmitInvoke,
  WaitOk,
} from './history.js';
import type { EventView, GroupView, TaskView } from '../protocol/http.js';
import { DEFAULT_TIMEOUT_GRACE_MS, runDeadline } from '../core/deadline.js';
import { DEFAULT_LIVENESS } from '../core/liveness.js';
import { isFinal } from '../core/types.js';

export interface FinalState {
  groups: GroupView[];
  tasks: TaskView[];
  events: EventView[];
}

export interface CheckOptions {
  /** The right result (tasks are deterministic); `undefined` = any result is right. */
  expected: (handler: string, input: unknown) => unknown;
  /** The settings of the coordinator under test; each defaults to that of `regroup server`. */
  coordinator?: Partial<CoordinatorFigures>;
  /**
   * How many tasks a client's group must end with, its tasks growing it with
   * `ctx.add` (a crawl's pages); `undefined` (or absent): not judged.
   */
  expectedTasks?: (handler: string, inputs: readonly unknown[]) => number | undefined;
}

/** What the death and run-limit checks need to know of the coordinator. */
export interface CoordinatorFigures {
  deadAfterMs: number;
  closeGraceMs: number;
  timeoutGraceMs: number;
}

/** Faults that stop the coordinator from ending runs for a while (it is down, frozen, deposed or cannot write). */
const COORDINATOR_FAULTS: readonly FaultStart['kind'][] = [
  'coordinator-kill',
  'coordinator-kill-burst',
  'leader-kill',
  'leader-stop',
  'leader-db-cut',
  'disk-full',
];

/** Timers, sweeps and commits, on top of the figures. */
const SLACK_MS = 1_000;

export const ANOMALY_KINDS = [
  'lost',
  'committed_twice',
  'stale_accepted',
  'changed_after_read',
  'unexpected_result',
  'wait_unresolved',
  'healthy_declared_dead',
  'ran_past_limit',
  'added_twice',
  'parent_done_early',
] as const;
export type AnomalyKind = (typeof ANOMALY_KINDS)[number];

export interface Anomaly {
  kind: AnomalyKind;
  detail: string;
  taskId?: number;
  groupId?: string;
  key?: string;
  /** The worker process (healthy_declared_dead). */
  worker?: string;
}

export interface Reassignment {
  samples: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Interrupted runs whose task was never started again. */
  notRerun: number;
}

export interface Report {
  groups: number;
  tasks: number;
  /** fault.start count by kind. */
  faults: Record<string, number>;
  anomalies: Anomaly[];
  counts: Record<AnomalyKind, number>;
  reassignment: Reassignment;
  /** The same, for worker kills (detected by the closed connection) and stops (detected by silence) apart. */
  reassignmentByKind: { 'worker-kill': Reassignment; 'worker-stop': Reassignment };
  /** What the death and run-limit checks looked at: `worker.dead` events, runs of tasks with a limit. */
  judged: { deaths: number; limitedRuns: number };
  /** What the tree checks looked at. */
  trees: TreeFigures;
  ok: boolean;
}

export interface TreeFigures {
  /** Groups that tasks added to (`run.add`). */
  grownGroups: number;
  /** Adds, one per (task, key). */
  adds: number;
  /** Tasks added by them, one per (task, key). */
  addedTasks: number;
  /** Adds made again by a later attempt of their task (the same key), whose answers were compared. */
  addsRepeated: number;
  /** Child groups spawned, one per (task, key). */
  childGroups: number;
  /** Spawns made again by a later attempt of their task (the same key). */
  spawnsRepeated: number;
  /** Succeeded tasks whose committed run waited on a child group. */
  waitedParents: number;
}

/** The history and the final state, indexed once. */
interface Index {
  lines: HistoryLine[];
  invokes: Map<string, SubmitInvoke>;
  /** groupId -> the key it was acknowledged under. */
  acked: Map<string, string>;
  keyGroups: Map<string, Set<string>>;
  /** `${taskId}/${attempt}` -> the first run.end of that run. */
  ends: Map<string, RunEnd>;
  acks: Map<number, RunAck[]>;
  waits: Map<string, WaitOk[]>;
  groups: Map<string, GroupView>;
  tasks: Map<number, TaskView>;
  tasksOf: Map<string, TaskView[]>;
  /** The first run.start of each run, in time order. */
  starts: RunStart[];
  startsOf: Map<number, RunStart[]>;
  /** workerId -> the worker process it was given to (worker.session lines). */
  sessions: Map<string, string>;
  /** Faults from start to end (Infinity: never healed). */
  spans: FaultSpan[];
  /** The harness.stop line; Infinity without one. */
  stopAt: number;
  /** Events about a task, by taskId. */
  eventsOf: Map<number, EventView[]>;
  /** When a group.done or group.canceled event was written, by groupId. */
  groupEnds: Map<string, number[]>;
  /** worker.dead events. */
  deaths: EventView[];
  /** When a worker.dead event listed the task, by taskId. */
  deadWith: Map<number, number[]>;
  /** run.add lines by (task, key). */
  addsByKey: Map<string, RunAdd[]>;
  /** By group: the first run.add line of each (task, key) adding to it. */
  addsOf: Map<string, RunAdd[]>;
  /** run.spawn lines by (task, key). */
  spawnsByKey: Map<string, RunSpawn[]>;
  /** The first run.spawn line that was answered each child group. */
  spawnOf: Map<string, RunSpawn>;
  /** run.spawn lines by spawning task. */
  spawnsOfTask: Map<number, RunSpawn[]>;
  waited: RunWaited[];
  /** Groups of the final state by the task that spawned them. */
  childrenOf: Map<number, GroupView[]>;
}

interface FaultSpan {
  kind: FaultStart['kind'];
  target: string;
  from: number;
  to: number;
}

type Add = (a: Anomaly) => void;

const run = (taskId: number, attempt: number): string => `${taskId}/${attempt}`;
/** An add's or a spawn's identity: the task and its key. */
const keyOf = (taskId: number, key: string): string => `${taskId} ${key}`;

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/** Equal as JSON values. */
export function sameValue(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): unknown => JSON.parse(JSON.stringify(v ?? null) ?? 'null');
  return isDeepStrictEqual(norm(a), norm(b));
}

function index(history: HistoryLine[], final: FinalState): Index {
  const ix: Index = {
    lines: history
      .map((l, i) => ({ l, i }))
      .sort((a, b) => a.l.t - b.l.t || a.i - b.i)
      .map((x) => x.l),
    invokes: new Map(),
    acked: new Map(),
    keyGroups: new Map(),
    ends: new Map(),
    acks: new Map(),
    waits: new Map(),
    groups: new Map(final.groups.map((g) => [g.id, g])),
    tasks: new Map(final.tasks.map((t) => [t.taskId, t])),
    tasksOf: new Map(),
    starts: [],
    startsOf: new Map(),
    sessions: new Map(),
    spans: [],
    stopAt: Infinity,
    eventsOf: new Map(),
    groupEnds: new Map(),
    deaths: [],
    deadWith: new Map(),
    addsByKey: new Map(),
    addsOf: new Map(),
    spawnsByKey: new Map(),
    spawnOf: new Map(),
    spawnsOfTask: new Map(),
    waited: [],
    childrenOf: new Map(),
  };
  for (const t of final.tasks) push(ix.tasksOf, t.groupId, t);
  for (const g of final.groups) if (g.parent) push(ix.childrenOf, g.parent.taskId, g);
  indexEvents(ix, final.events);
  const open = new Map<string, FaultSpan[]>();
  const started = new Set<string>();
  for (const l of ix.lines) {
    switch (l.type) {
      case 'submit.invoke':
        if (!ix.invokes.has(l.key)) ix.invokes.set(l.key, l);
        break;
      case 'submit.ok':
        ix.acked.set(l.groupId, l.key);
        ix.keyGroups.set(l.key, (ix.keyGroups.get(l.key) ?? new Set()).add(l.groupId));
        break;
      case 'run.end':
        if (!ix.ends.has(run(l.taskId, l.attempt))) ix.ends.set(run(l.taskId, l.attempt), l);
        break;
      case 'run.ack':
        push(ix.acks, l.taskId, l);
        break;
      case 'wait.ok':
        push(ix.waits, l.groupId, l);
        break;
      case 'run.start':
        if (started.has(run(l.taskId, l.attempt))) break;
        started.add(run(l.taskId, l.attempt));
        ix.starts.push(l);
        push(ix.startsOf, l.taskId, l);
        break;
      case 'worker.session':
        ix.sessions.set(l.workerId, l.proc);
        break;
      case 'run.add': {
        const k = keyOf(l.taskId, l.key);
        if (!ix.addsByKey.has(k)) push(ix.addsOf, l.groupId, l);
        push(ix.addsByKey, k, l);
        break;
      }
      case 'run.spawn':
        push(ix.spawnsByKey, keyOf(l.taskId, l.key), l);
        push(ix.spawnsOfTask, l.taskId, l);
        if (!ix.spawnOf.has(l.childId)) ix.spawnOf.set(l.childId, l);
        break;
      case 'run.waited':
        ix.waited.push(l);
        break;
      case 'harness.stop':
        ix.stopAt = Math.min(ix.stopAt, l.t);
        break;
      case 'fault.start': {
        const span = { kind: l.kind, target: l.target, from: l.t, to: Infinity };
        ix.spans.push(span);
        push(open, `${l.kind} ${l.target}`, span);
        break;
      }
      case 'fault.end': {
        const span = open.get(`${l.kind} ${l.target}`)?.shift();
        if (span) span.to = l.t;
        break;
      }
      case 'submit.fail':
      case 'wait.fail':
      case 'failover':
        break; // read where needed (reassignment) or not at all
      default:
        break; // a line of a newer format: ignored
    }
  }
  return ix;
}

/** A field of an event's `data` (any JSON); undefined when it is not there. */
function field(e: EventView, key: string): unknown {
  return typeof e.data === 'object' && e.data !== null
    ? (e.data as Record<string, unknown>)[key]
    : undefined;
}

function indexEvents(ix: Index, events: readonly EventView[]): void {
  for (const e of events) {
    if (e.taskId != null && e.type.startsWith('task.')) push(ix.eventsOf, e.taskId, e);
    if (e.groupId != null && (e.type === 'group.done' || e.type === 'group.canceled'))
      push(ix.groupEnds, e.groupId, e.at);
    if (e.type === 'worker.dead') {
      ix.deaths.push(e);
      for (const key of ['requeued', 'poisoned']) {
        const ids = field(e, key);
        if (Array.isArray(ids))
          for (const id of ids) if (typeof id === 'number') push(ix.deadWith, id, e.at);
      }
    }
  }
}

function checkGroups(ix: Index, add: Add): void {
  for (const [groupId, key] of ix.acked) {
    const group = ix.groups.get(groupId);
    const submitted = ix.invokes.get(key)?.inputs.length ?? 0;
    const have = ix.tasksOf.get(groupId)?.length ?? 0;
    if (!group) {
      add({
        kind: 'lost',
        groupId,
        key,
        detail: `group ${groupId} (key ${key}) was acknowledged and is missing from the final state`,
      });
    } else if (have < submitted) {
      add({
        kind: 'lost',
        groupId,
        key,
        detail: `group ${groupId} (key ${key}) has ${have} of the ${submitted} tasks submitted`,
      });
    }
    if (!ix.waits.has(groupId)) {
      add({
        kind: 'wait_unresolved',
        groupId,
        key,
        detail: `no client's wait resolved for group ${groupId} (key ${key})`,
      });
    } else if (group && !group.done) {
      add({
        kind: 'wait_unresolved',
        groupId,
        key,
        detail: `group ${groupId} (key ${key}) is ${group.state}, not done, in the final state`,
      });
    }
  }
  for (const [key, ids] of ix.keyGroups) {
    if (ids.size > 1)
      add({
        kind: 'committed_twice',
        key,
        detail: `key ${key} was acknowledged as ${ids.size} groups: ${[...ids].join(', ')}`,
      });
  }
}

/** Result commits of a task: committed acks of runs that did not end in failure. */
function resultCommits(ix: Index, taskId: number): RunAck[] {
  return (ix.acks.get(taskId) ?? []).filter(
    (a) => a.status === 'committed' && ix.ends.get(run(a.taskId, a.attempt))?.ok !== false,
  );
}

function checkCommits(ix: Index, add: Add): void {
  for (const taskId of ix.acks.keys()) {
    const commits = resultCommits(ix, taskId);
    if (commits.length > 1) {
      const runs = commits.map((a) => `attempt ${a.attempt} by ${a.proc}`).join(', ');
      add({
        kind: 'committed_twice',
        taskId,
        detail: `task ${taskId} was committed ${commits.length} times: ${runs}`,
      });
    }
    const task = ix.tasks.get(taskId);
    for (const a of commits) {
      const end = ix.ends.get(run(taskId, a.attempt));
      const at = `task ${taskId} attempt ${a.attempt} (${a.proc}) was acked committed`;
      if (task?.state !== 'succeeded') {
        add({
          kind: 'lost',
          taskId,
          detail: `${at} and is ${task ? task.state : 'missing'} in the final state`,
        });
      } else if (task.attempt !== a.attempt) {
        add({
          kind: 'stale_accepted',
          taskId,
          detail: `${at} and the final task holds attempt ${task.attempt}`,
        });
      } else if (end && !sameValue(end.value, task.value)) {
        add({
          kind: 'stale_accepted',
          taskId,
          detail: `${at} with ${JSON.stringify(end.value)} and the final value is ${JSON.stringify(task.value)}`,
        });
      }
    }
  }
}

/** A stale run's value accepted, for tasks whose committed ack is not in the history. */
function checkStaleValues(ix: Index, add: Add): void {
  for (const [taskId, acks] of ix.acks) {
    const task = ix.tasks.get(taskId);
    if (task?.state !== 'succeeded' || resultCommits(ix, taskId).length > 0) continue;
    const winner = ix.ends.get(run(taskId, task.attempt));
    if (!winner?.ok || sameValue(winner.value, task.value)) continue;
    const loser = acks.find((a) => {
      const end = ix.ends.get(run(taskId, a.attempt));
      return (
        a.status === 'stale' &&
        a.attempt !== task.attempt &&
        end?.ok &&
        sameValue(end.value, task.value)
      );
    });
    if (loser)
      add({
        kind: 'stale_accepted',
        taskId,
        detail: `task ${taskId} holds the value of attempt ${loser.attempt} (answered stale), not that of attempt ${task.attempt}`,
      });
  }
}

function checkSeqs(ix: Index, add: Add): void {
  const bySeq = new Map<number, number[]>();
  for (const t of ix.tasks.values()) if (t.seq != null) push(bySeq, t.seq, t.taskId);
  for (const [seq, ids] of bySeq) {
    if (ids.length > 1)
      add({
        kind: 'committed_twice',
        taskId: ids[1],
        detail: `tasks ${ids.join(', ')} share finishing seq ${seq}`,
      });
  }
}

function checkReads(ix: Index, add: Add): void {
  for (const [groupId, waits] of ix.waits) {
    for (const w of waits) {
      for (const o of w.outcomes) {
        const t = ix.tasks.get(o.taskId);
        if (!t) continue; // missing: reported as lost
        if (t.index === o.index && t.state === o.state && sameValue(t.value, o.value)) continue;
        const read = `#${o.index} ${o.state} ${JSON.stringify(o.value)}`;
        const now = `#${t.index} ${t.state} ${JSON.stringify(t.value)}`;
        add({
          kind: 'changed_after_read',
          taskId: o.taskId,
          groupId,
          detail: `${w.proc} read task ${o.taskId} as ${read} at t=${w.t}; final: ${now}`,
        });
      }
    }
  }
}

/** The handler and inputs a group was made with: its client's submit, or the spawn that made it. */
function madeWith(
  ix: Index,
  groupId: string,
): { handler: string; inputs: readonly unknown[]; key?: string } | undefined {
  const key = ix.groups.get(groupId)?.idempotencyKey ?? ix.acked.get(groupId);
  const invoke = key === undefined || key === null ? undefined : ix.invokes.get(key);
  if (invoke) return { handler: invoke.handler, inputs: invoke.inputs, key: invoke.key };
  const spawn = ix.spawnOf.get(groupId);
  return spawn && { handler: spawn.handler, inputs: spawn.inputs };
}

/** A task's handler and input, from its group's submit or spawn, or the add that holds its index. */
function inputOf(
  ix: Index,
  t: TaskView,
): { handler: string; input: unknown; key?: string; by: string } | undefined {
  const made = madeWith(ix, t.groupId);
  if (made && t.index < made.inputs.length)
    return { handler: made.handler, input: made.inputs[t.index], key: made.key, by: '' };
  const handler = ix.groups.get(t.groupId)?.handler ?? made?.handler;
  if (handler === undefined) return undefined;
  for (const a of ix.addsOf.get(t.groupId) ?? []) {
    if (t.index >= a.first && t.index < a.first + a.count)
      return {
        handler,
        input: a.inputs[t.index - a.first],
        key: made?.key,
        by: `, added by task ${a.taskId} under "${a.key}"`,
      };
  }
  return undefined;
}

function checkResults(ix: Index, add: Add, expected: CheckOptions['expected']): void {
  for (const t of ix.tasks.values()) {
    if (t.state !== 'succeeded') continue;
    const src = inputOf(ix, t);
    if (!src) continue;
    const want = expected(src.handler, src.input);
    if (want === undefined || sameValue(want, t.value)) continue;
    add({
      kind: 'unexpected_result',
      taskId: t.taskId,
      groupId: t.groupId,
      ...(src.key === undefined ? {} : { key: src.key }),
      detail: `task ${t.taskId} (${src.handler} #${t.index}${src.by}) is ${JSON.stringify(t.value)}, expected ${JSON.stringify(want)}`,
    });
  }
}

// ---- Trees

const span = (a: { first: number; count: number }): string =>
  a.count === 0 ? `no tasks (at ${a.first})` : `tasks #${a.first}..#${a.first + a.count - 1}`;
const by = (l: { attempt: number; proc: string }): string => `attempt ${l.attempt}, ${l.proc}`;

/** Done, with every task there and succeeded: a group whose tasks' adds are all in the history. */
function settled(ix: Index, g: GroupView): boolean {
  const tasks = ix.tasksOf.get(g.id) ?? [];
  return (
    g.state === 'done' && tasks.length === g.total && tasks.every((t) => t.state === 'succeeded')
  );
}

/** No child added twice, for ctx.add: one answer per (task, key), disjoint indexes, the group's size. */
function checkAdds(ix: Index, add: Add, expectedTasks: CheckOptions['expectedTasks']): void {
  for (const lines of ix.addsByKey.values()) {
    const a = lines[0]!;
    const b = lines.find((l) => l.first !== a.first || l.count !== a.count);
    if (b)
      add({
        kind: 'added_twice',
        taskId: a.taskId,
        groupId: a.groupId,
        detail: `task ${a.taskId}'s add "${a.key}" to group ${a.groupId} was answered ${span(a)} (${by(a)}) and ${span(b)} (${by(b)}): a repeated key must be answered the first add's indexes`,
      });
  }
  for (const [groupId, adds] of ix.addsOf) {
    const sorted = adds.filter((a) => a.count > 0).sort((x, y) => x.first - y.first);
    for (let k = 1; k < sorted.length; k++) {
      const a = sorted[k - 1]!;
      const b = sorted[k]!;
      if (a.first + a.count > b.first)
        add({
          kind: 'lost',
          groupId,
          taskId: b.taskId,
          detail: `group ${groupId} gave task #${b.first} to two adds: task ${a.taskId}'s "${a.key}" (${span(a)}) and task ${b.taskId}'s "${b.key}" (${span(b)}); one add's tasks are not there`,
        });
    }
    const g = ix.groups.get(groupId);
    if (!g) {
      // A client's group or a child missing is reported as such; this one only an add knew of.
      if (!ix.acked.has(groupId) && !ix.spawnOf.has(groupId))
        add({
          kind: 'lost',
          groupId,
          detail: `group ${groupId}, which task ${adds[0]!.taskId} added to, is missing from the final state`,
        });
      continue;
    }
    const indexes = new Set((ix.tasksOf.get(groupId) ?? []).map((t) => t.index));
    for (const a of adds) {
      for (let i = a.first; i < a.first + a.count; i++) {
        if (indexes.has(i)) continue;
        add({
          kind: 'lost',
          groupId,
          taskId: a.taskId,
          detail: `task ${a.taskId}'s add "${a.key}" (${by(a)}) was answered ${span(a)} of group ${groupId}, and the final state has no task #${i}`,
        });
        break;
      }
    }
    const made = madeWith(ix, groupId);
    if (!made || !settled(ix, g)) continue;
    const added = adds.reduce((n, a) => n + a.count, 0);
    const want = made.inputs.length + added;
    if (g.total === want) continue;
    const parts = `${made.inputs.length} made with it and ${added} added by ${adds.length} adds (one per task and key)`;
    add(
      g.total > want
        ? {
            kind: 'added_twice',
            groupId,
            detail: `group ${groupId} has ${g.total} tasks, ${parts}: ${g.total - want} tasks no add accounts for`,
          }
        : {
            kind: 'lost',
            groupId,
            detail: `group ${groupId} has ${g.total} tasks, ${parts}: ${want - g.total} missing`,
          },
    );
  }
  if (!expectedTasks) return;
  for (const [groupId, key] of ix.acked) {
    const g = ix.groups.get(groupId);
    const invoke = ix.invokes.get(key);
    if (!g || !invoke || !settled(ix, g)) continue;
    const want = expectedTasks(invoke.handler, invoke.inputs);
    if (want === undefined || g.total === want) continue;
    const what = `group ${groupId} (key ${key}, ${invoke.handler}) has ${g.total} tasks; its ${invoke.inputs.length} inputs grow to ${want}`;
    add(
      g.total > want
        ? { kind: 'added_twice', groupId, key, detail: `${what}: a task was added twice` }
        : { kind: 'lost', groupId, key, detail: `${what}: an add is missing` },
    );
  }
}

/** No child added twice, for ctx.spawn: one child group per (task, key), and no other. */
function checkSpawns(ix: Index, add: Add): void {
  for (const lines of ix.spawnsByKey.values()) {
    const a = lines[0]!;
    const others = lines.filter((l) => l.childId !== a.childId);
    if (others.length === 0) continue;
    const all = [a, ...others].map((l) => `${l.childId} (${by(l)})`);
    add({
      kind: 'added_twice',
      taskId: a.taskId,
      groupId: a.groupId,
      detail: `task ${a.taskId}'s spawn "${a.key}" was answered ${new Set([a, ...others].map((l) => l.childId)).size} child groups: ${all.join(', ')}; a key names one child`,
    });
  }
  for (const [childId, s] of ix.spawnOf) {
    const c = ix.groups.get(childId);
    const at = `task ${s.taskId}'s spawn "${s.key}" (${by(s)}) was answered child group ${childId}`;
    if (!c) {
      add({
        kind: 'lost',
        taskId: s.taskId,
        groupId: childId,
        detail: `${at}, missing from the final state`,
      });
    } else if (c.parent?.taskId !== s.taskId || c.parent.groupId !== s.groupId) {
      const parent = c.parent ? `task ${c.parent.taskId} of group ${c.parent.groupId}` : 'none';
      add({
        kind: 'lost',
        taskId: s.taskId,
        groupId: childId,
        detail: `${at} (in group ${s.groupId}); the final state gives it the parent ${parent}`,
      });
    } else if ((ix.tasksOf.get(childId)?.length ?? 0) < s.inputs.length) {
      add({
        kind: 'lost',
        taskId: s.taskId,
        groupId: childId,
        detail: `${at} with ${s.inputs.length} tasks; it has ${ix.tasksOf.get(childId)?.length ?? 0} in the final state`,
      });
    }
  }
  for (const [taskId, children] of ix.childrenOf) {
    if (ix.tasks.get(taskId)?.state !== 'succeeded') continue;
    const spawns = ix.spawnsOfTask.get(taskId) ?? [];
    const named = new Set(spawns.map((l) => l.childId));
    const extra = children.filter((c) => !named.has(c.id));
    if (extra.length === 0) continue;
    const answered = [...new Map(spawns.map((l) => [l.key, l.childId]))]
      .map(([k, id]) => `"${k}" -> ${id}`)
      .join(', ');
    add({
      kind: 'added_twice',
      taskId,
      groupId: extra[0]!.id,
      detail: `task ${taskId} succeeded with ${children.length} child groups; ${extra.map((c) => c.id).join(', ')} answered none of its spawns (${answered || 'no spawn'})`,
    });
  }
}

/**
 * Parents done only after their children. Returns how many succeeded tasks
 * were judged as parents that waited.
 */
function checkParentsDone(ix: Index, add: Add): number {
  const parents = new Set<number>();
  for (const w of ix.waited) {
    const c = ix.groups.get(w.childId);
    if (!c) continue; // reported by checkSpawns when a spawn named it
    const t = ix.tasks.get(w.taskId);
    const committed = t?.state === 'succeeded' && t.attempt === w.attempt ? t : undefined;
    if (committed) parents.add(w.taskId);
    const read = `task ${w.taskId} (${by(w)}) read its child group ${w.childId} done with ${w.total} tasks at t=${w.t}`;
    let why: string | null = null;
    // Ended: done, or canceled (a wait ends on either); a canceled child's parent fails.
    if (!c.done || c.finishedAt == null) why = `${read}; it is ${c.state} in the final state`;
    else if (c.finishedAt > w.t) why = `${read}; it ended at t=${c.finishedAt}`;
    else if (committed?.finishedAt != null && committed.finishedAt < c.finishedAt)
      why = `task ${w.taskId} committed at t=${committed.finishedAt} (${by(w)}, its value built from child group ${w.childId}) before that child ended at t=${c.finishedAt}`;
    else if (c.total !== w.total) why = `${read}; it has ${c.total} tasks in the final state`;
    if (why) add({ kind: 'parent_done_early', taskId: w.taskId, groupId: w.childId, detail: why });
  }
  for (const [groupId, adds] of ix.addsOf) {
    const g = ix.groups.get(groupId);
    if (!g || g.state !== 'done' || g.finishedAt == null) continue;
    const done = `group ${groupId} became done at t=${g.finishedAt}`;
    const why: string[] = [];
    for (const t of ix.tasksOf.get(groupId) ?? []) {
      if (!isFinal(t.state))
        why.push(`${done} and its task ${t.taskId} (#${t.index}) is ${t.state}`);
      else if (t.finishedAt != null && t.finishedAt > g.finishedAt)
        why.push(
          `${done}, before its task ${t.taskId} (#${t.index}) finished at t=${t.finishedAt}`,
        );
    }
    for (const a of adds.flatMap((x) => ix.addsByKey.get(keyOf(x.taskId, x.key)) ?? [])) {
      const t = ix.tasks.get(a.taskId);
      if (t?.state === 'succeeded' && t.attempt === a.attempt && a.t > g.finishedAt)
        why.push(
          `${done}, before task ${a.taskId}'s add "${a.key}" (${by(a)}, the run that committed) resolved at t=${a.t}`,
        );
    }
    for (const w of ix.waits.get(groupId) ?? []) {
      if (w.outcomes.length !== g.total)
        why.push(
          `${w.proc} read group ${groupId} done with ${w.outcomes.length} tasks at t=${w.t}; it has ${g.total}`,
        );
    }
    if (why.length > 0)
      add({
        kind: 'parent_done_early',
        groupId,
        detail: why[0]! + (why.length > 1 ? ` (and ${why.length - 1} more signs)` : ''),
      });
  }
  return parents.size;
}

function figures(o: CheckOptions): CoordinatorFigures & { aftermathMs: number; detectMs: number } {
  const f: CoordinatorFigures = {
    deadAfterMs: o.coordinator?.deadAfterMs ?? DEFAULT_LIVENESS.deadAfterMs,
    closeGraceMs: o.coordinator?.closeGraceMs ?? DEFAULT_LIVENESS.closeGraceMs,
    timeoutGraceMs: o.coordinator?.timeoutGraceMs ?? DEFAULT_TIMEOUT_GRACE_MS,
  };
  return {
    ...f,
    aftermathMs: 2 * f.deadAfterMs + f.closeGraceMs + SLACK_MS,
    detectMs: f.deadAfterMs + SLACK_MS,
  };
}

/** Deaths of workers no fault explains. Returns the number of deaths judged. */
function checkDeaths(ix: Index, add: Add, aftermathMs: number): number {
  let judged = 0;
  for (const e of ix.deaths) {
    if (e.at >= ix.stopAt) continue;
    judged++;
    const name = field(e, 'name');
    const worker =
      (e.workerId == null ? undefined : ix.sessions.get(e.workerId)) ??
      (typeof name === 'string' ? name : undefined) ??
      e.workerId ??
      'an unknown worker';
    const faults = ix.spans.filter((s) => s.target === worker && s.from <= e.at);
    if (faults.some((s) => e.at <= s.to + aftermathMs)) continue;
    const last = faults.reduce<FaultSpan | null>((a, s) => (a && a.to >= s.to ? a : s), null);
    const why = `reason ${String(field(e, 'reason'))}, silent ${String(field(e, 'silentMs'))} ms`;
    add({
      kind: 'healthy_declared_dead',
      worker,
      detail: `${worker} (session ${e.workerId ?? '?'}) was declared dead at t=${e.at} (${why}) with no fault on it ${
        last
          ? `since its ${last.kind} ended at t=${last.to}, ${e.at - last.to} ms before`
          : 'in the whole run'
      }`,
    });
  }
  return judged;
}

/** The first moment at or after the run.start by which the run had certainly ended; null when unknown. */
function runEnd(ix: Index, s: RunStart): number | null {
  let end = Infinity;
  const by = (t: number | null | undefined): void => {
    if (t != null) end = Math.min(end, Math.max(t, s.t));
  };
  for (const a of ix.acks.get(s.taskId) ?? []) if (a.attempt === s.attempt && a.t >= s.t) by(a.t);
  for (const l of ix.startsOf.get(s.taskId) ?? []) if (l.attempt > s.attempt) by(l.t);
  for (const e of ix.eventsOf.get(s.taskId) ?? []) {
    if (e.at < s.t) continue;
    const attempt = field(e, 'attempt');
    // task.reassigned names the attempt it starts: only a later one ends this run.
    const ends =
      typeof attempt !== 'number'
        ? e.type !== 'task.reassigned'
        : attempt > s.attempt || (attempt === s.attempt && e.type !== 'task.reassigned');
    if (ends) by(e.at);
  }
  for (const t of ix.deadWith.get(s.taskId) ?? []) if (t >= s.t) by(t);
  for (const t of ix.groupEnds.get(s.groupId) ?? []) if (t >= s.t) by(t);
  const task = ix.tasks.get(s.taskId);
  if (task?.attempt === s.attempt && isFinal(task.state)) by(task.finishedAt);
  if (task && task.attempt > s.attempt) by(task.startedAt);
  return end === Infinity ? null : end;
}

/**
 * How long the run had run at its worst judged moment, counted from its
 * start or the end of the last coordinator fault before that moment; the
 * moments are its end and the start of each coordinator fault in between
 * (time within such a fault is not judged).
 */
function longestRun(
  start: number,
  end: number,
  outages: readonly FaultSpan[],
): { ranMs: number; from: number; at: number } {
  let worst = { ranMs: 0, from: start, at: start };
  const moments = [
    end,
    ...outages.filter((o) => o.from > start && o.from < end).map((o) => o.from),
  ];
  for (const m of moments) {
    if (outages.some((o) => o.from < m && m < o.to)) continue;
    let from = start;
    for (const o of outages) if (o.to > from && o.to <= m) from = o.to;
    if (m - from > worst.ranMs) worst = { ranMs: m - from, from, at: m };
  }
  return worst;
}

/** Runs still running past their limit. Returns the number of runs with a limit. */
function checkRunLimits(ix: Index, add: Add, f: ReturnType<typeof figures>): number {
  const outages = ix.spans.filter((s) => COORDINATOR_FAULTS.includes(s.kind));
  const lastT = ix.lines.at(-1)?.t ?? 0;
  let limited = 0;
  for (const s of ix.starts) {
    if (s.t >= ix.stopAt) continue;
    const options = ix.groups.get(s.groupId)?.options;
    if (!options) continue;
    const deadline = runDeadline({ sentAt: s.t, progressAt: s.t }, options, {
      graceMs: f.timeoutGraceMs,
      watchProgress: true,
    });
    if (!deadline) continue;
    limited++;
    const task = ix.tasks.get(s.taskId);
    let end = runEnd(ix, s);
    if (end === null && task?.state === 'running' && task.attempt === s.attempt)
      end = ix.stopAt === Infinity ? lastT : ix.stopAt;
    if (end === null) continue;
    end = Math.min(end, ix.stopAt);
    const limitMs = deadline.at - s.t + f.detectMs;
    const worst = longestRun(s.t, end, outages);
    if (worst.ranMs <= limitMs) continue;
    const limit =
      deadline.limit === 'timeoutMs'
        ? `timeoutMs ${options.timeoutMs}`
        : `heartbeatTimeoutMs ${options.heartbeatTimeoutMs}`;
    add({
      kind: 'ran_past_limit',
      taskId: s.taskId,
      groupId: s.groupId,
      detail: `task ${s.taskId} attempt ${s.attempt} (${s.proc}) was running ${worst.ranMs} ms, from t=${worst.from} to t=${worst.at}${
        worst.at === end && end === ix.stopAt ? ' (still running at the end)' : ''
      }; its limit is ${limitMs} ms (${limit} + grace ${f.timeoutGraceMs} + detection ${f.detectMs})`,
    });
  }
  return limited;
}

/** Nearest-rank percentile of sorted samples; null when there are none. */
export function nearestRank(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? null;
}

const STOPS: readonly string[] = ['worker-kill', 'worker-stop'];

/** The runs `proc` had started in (since, t0] and not ended by t0. */
function interrupted(lines: HistoryLine[], proc: string, since: number, t0: number): RunStart[] {
  const open = new Map<string, RunStart>();
  for (const l of lines) {
    if (l.t > t0) break;
    if (l.proc !== proc || l.t <= since) continue;
    if (l.type === 'run.start') open.set(run(l.taskId, l.attempt), l);
    if (l.type === 'run.end') open.delete(run(l.taskId, l.attempt));
  }
  return [...open.values()];
}

/** `only`: samples of that fault kind alone (the intervals still follow every kill and stop). */
export function reassignment(lines: HistoryLine[], only?: FaultStart['kind']): Reassignment {
  const samples: number[] = [];
  let notRerun = 0;
  const last = new Map<string, number>();
  const faults = lines.filter(
    (l): l is FaultStart => l.type === 'fault.start' && STOPS.includes(l.kind),
  );
  for (const f of faults) {
    const counted = only === undefined || f.kind === only;
    for (const r of counted
      ? interrupted(lines, f.target, last.get(f.target) ?? -Infinity, f.t)
      : []) {
      const again = lines.find(
        (l) =>
          l.type === 'run.start' &&
          l.t >= f.t &&
          l.taskId === r.taskId &&
          (l.proc !== f.target || l.attempt > r.attempt),
      );
      if (again) samples.push(again.t - f.t);
      else notRerun++;
    }
    last.set(f.target, f.t);
  }
  samples.sort((a, b) => a - b);
  return {
    samples: samples.length,
    p50Ms: nearestRank(samples, 50),
    p99Ms: nearestRank(samples, 99),
    maxMs: samples.at(-1) ?? null,
    notRerun,
  };
}

/** How many (task, key)s were answered to more than one attempt. */
function repeated(byKey: Map<string, { attempt: number }[]>): number {
  let n = 0;
  for (const lines of byKey.values()) if (new Set(lines.map((l) => l.attempt)).size > 1) n++;
  return n;
}

/** Checks a fault run: see the definitions at the top of this file. */
export function check(history: HistoryLine[], final: FinalState, options: CheckOptions): Report {
  const ix = index(history, final);
  const anomalies: Anomaly[] = [];
  const add: Add = (a) => anomalies.push(a);
  checkGroups(ix, add);
  checkCommits(ix, add);
  checkStaleValues(ix, add);
  checkSeqs(ix, add);
  checkReads(ix, add);
  checkResults(ix, add, options.expected);
  checkAdds(ix, add, options.expectedTasks);
  checkSpawns(ix, add);
  const waitedParents = checkParentsDone(ix, add);
  const f = figures(options);
  const deaths = checkDeaths(ix, add, f.aftermathMs);
  const limitedRuns = checkRunLimits(ix, add, f);
  const counts = Object.fromEntries(ANOMALY_KINDS.map((k) => [k, 0])) as Record<
    AnomalyKind,
    number
  >;
  for (const a of anomalies) counts[a.kind]++;
  const faults: Record<string, number> = {};
  for (const l of ix.lines)
    if (l.type === 'fault.start') faults[l.kind] = (faults[l.kind] ?? 0) + 1;
  let tasks = 0;
  for (const id of ix.acked.keys()) tasks += ix.tasksOf.get(id)?.length ?? 0;
  return {
    groups: ix.acked.size,
    tasks,
    faults,
    anomalies,
    counts,
    reassignment: reassignment(ix.lines),
    reassignmentByKind: {
      'worker-kill': reassignment(ix.lines, 'worker-kill'),
      'worker-stop': reassignment(ix.lines, 'worker-stop'),
    },
    judged: { deaths, limitedRuns },
    trees: {
      grownGroups: ix.addsOf.size,
      adds: ix.addsByKey.size,
      addedTasks: [...ix.addsByKey.values()].reduce((n, l) => n + l[0]!.count, 0),
      addsRepeated: repeated(ix.addsByKey),
      childGroups: ix.spawnsByKey.size,
      spawnsRepeated: repeated(ix.spawnsByKey),
      waitedParents,
    },
    ok: anomalies.length === 0,
  };
}

const ms = (v: number | null): string => (v === null ? '-' : `${v} ms`);

/** A short human table, one line per figure, then the first anomalies. */
export function formatReport(r: Report, maxAnomalies = 20): string {
  const rows: [string, string][] = [
    ['groups', String(r.groups)],
    ['tasks', String(r.tasks)],
    ...Object.entries(r.faults)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, n]): [string, string] => [`fault ${k}`, String(n)]),
    ['reassigned runs', String(r.reassignment.samples)],
    ['reassignment p50', ms(r.reassignment.p50Ms)],
    ['reassignment p99', ms(r.reassignment.p99Ms)],
    ['reassignment max', ms(r.reassignment.maxMs)],
    ['not rerun', String(r.reassignment.notRerun)],
    [
      'after worker-kill p50/p99',
      `${ms(r.reassignmentByKind['worker-kill'].p50Ms)} / ${ms(r.reassignmentByKind['worker-kill'].p99Ms)} (${r.reassignmentByKind['worker-kill'].samples} runs)`,
    ],
    [
      'after worker-stop p50/p99',
      `${ms(r.reassignmentByKind['worker-stop'].p50Ms)} / ${ms(r.reassignmentByKind['worker-stop'].p99Ms)} (${r.reassignmentByKind['worker-stop'].samples} runs)`,
    ],
    ['worker deaths judged', String(r.judged.deaths)],
    ['runs with a limit', String(r.judged.limitedRuns)],
    [
      'grown groups / adds',
      `${r.trees.grownGroups} / ${r.trees.adds} (${r.trees.addedTasks} tasks; ${r.trees.addsRepeated} made again by a later attempt)`,
    ],
    [
      'child groups',
      `${r.trees.childGroups} (${r.trees.spawnsRepeated} spawns made again by a later attempt)`,
    ],
    ['parents that waited', String(r.trees.waitedParents)],
    ...ANOMALY_KINDS.map((k): [string, string] => [k, String(r.counts[k])]),
    ['result', r.ok ? 'OK' : `FAIL (${r.anomalies.length} anomalies)`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  const out = rows.map(([k, v]) => k.padEnd(width) + v);
  for (const a of r.anomalies.slice(0, maxAnomalies)) out.push(`  ${a.kind}: ${a.detail}`);
  if (r.anomalies.length > maxAnomalies)
    out.push(`  ... ${r.anomalies.length - maxAnomalies} more`);
  return out.join('\n');
}
