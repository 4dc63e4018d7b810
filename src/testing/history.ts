/**
 * The history of a fault run: every process of the harness appends what it
 * invoked and what came back, one JSON object per line, to its own file. The
 * checker (checker.ts) reads all of them plus the final state of the store.
 *
 * Times are milliseconds since the epoch on this machine (all processes share
 * its clock, the coordinators' too, so the times of the coordinator's events
 * compare with them). `proc` names the writer: `client-1`, `worker-3`,
 * `nemesis`, `harness`. Readers skip line types they do not know.
 *
 * Trees: a worker also writes what its runs' `ctx.add` and `ctx.spawn`
 * answered and when a run's wait on a child resolved (`run.add`,
 * `run.spawn`, `run.waited`), so the checker knows every added task's and
 * child task's input, and which runs built their result from a child.
 */
import { appendFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface Base {
  /** When it happened (ms since epoch). */
  t: number;
  /** Who wrote it. */
  proc: string;
}

/** A client asked for a group. `key` is its idempotency key: the same key is the same group. */
export interface SubmitInvoke extends Base {
  type: 'submit.invoke';
  key: string;
  handler: string;
  inputs: unknown[];
}
/** The coordinator acknowledged the group: from now on it must never be lost. */
export interface SubmitOk extends Base {
  type: 'submit.ok';
  key: string;
  groupId: string;
}
/** The submit failed for good (after the client's own retries). The group may or may not exist. */
export interface SubmitFail extends Base {
  type: 'submit.fail';
  key: string;
  code: string;
}
/** A client's wait resolved: the outcomes it read, in input order. */
export interface WaitOk extends Base {
  type: 'wait.ok';
  groupId: string;
  outcomes: { index: number; taskId: number; state: string; value?: unknown }[];
}
/** A client gave up waiting (the run ended first). */
export interface WaitFail extends Base {
  type: 'wait.fail';
  groupId: string;
  code: string;
}
/** A worker started a run. */
export interface RunStart extends Base {
  type: 'run.start';
  taskId: number;
  attempt: number;
  groupId: string;
  index: number;
}
/** A run ended in the handler (before the result was reported). */
export interface RunEnd extends Base {
  type: 'run.end';
  taskId: number;
  attempt: number;
  ok: boolean;
  value?: unknown;
}
/** The coordinator answered a worker's report. `committed` means: this run's result is THE result. */
export interface RunAck extends Base {
  type: 'run.ack';
  taskId: number;
  attempt: number;
  status: 'committed' | 'already_final' | 'stale';
}
/**
 * A run's `ctx.add` resolved (the add is committed): the tasks
 * `first`..`first + count - 1` of `groupId` are `inputs`, in order. `key` is
 * the handler's key, or `#n` for the run's n-th add without one (the key the
 * worker gives it). Any attempt of the task that repeats the key must be
 * answered the same `first` and `count`.
 */
export interface RunAdd extends Base {
  type: 'run.add';
  taskId: number;
  attempt: number;
  groupId: string;
  key: string;
  first: number;
  count: number;
  inputs: unknown[];
}
/**
 * A run's `ctx.spawn` resolved (the child group is committed): `childId` is
 * a group of `handler` over `inputs` whose parent is this task. `key` as for
 * `run.add`: every attempt that repeats it must get the same child.
 */
export interface RunSpawn extends Base {
  type: 'run.spawn';
  taskId: number;
  attempt: number;
  /** The spawning task's group. */
  groupId: string;
  key: string;
  childId: string;
  handler: string;
  inputs: unknown[];
}
/**
 * A run's wait on a child group it spawned resolved: the child was done, with
 * `total` tasks of which `succeeded` succeeded, as the run read it. A run
 * that goes on to return a value built from them must not commit before the
 * child became done.
 */
export interface RunWaited extends Base {
  type: 'run.waited';
  taskId: number;
  attempt: number;
  childId: string;
  total: number;
  succeeded: number;
}
/**
 * A worker process was welcomed by a coordinator: `workerId` is the session
 * the coordinator knows it by (a new one, or the same one resumed). The
 * checker maps the coordinator's `worker.dead` events to processes by it.
 */
export interface WorkerSession extends Base {
  type: 'worker.session';
  workerId: string;
  resumed: boolean;
}
/**
 * The harness stops every worker for good (the run is over; the final state
 * is read next). Deaths and runs after this moment are not judged.
 */
export interface HarnessStop extends Base {
  type: 'harness.stop';
}
/** The nemesis started or healed a fault. `target` names a process or link. */
export interface FaultStart extends Base {
  type: 'fault.start';
  kind: FaultKind;
  target: string;
  /** The pid of a killed or stopped process, when there is one. */
  pid?: number;
}
export interface FaultEnd extends Base {
  type: 'fault.end';
  kind: FaultKind;
  target: string;
}
/**
 * PostgreSQL mode: after a fault on the leader (`kind`, on `target`), a
 * coordinator with a newer epoch answered as leader `ms` after the fault
 * began (its /healthz says leader and it served a read). `leader` is null and
 * `ms` the time waited when none did within the harness's limit.
 */
export interface Failover extends Base {
  type: 'failover';
  kind: FaultKind;
  target: string;
  /** The leader's epoch before the fault. */
  from: number;
  /** The new leader's epoch; null on a timeout. */
  epoch: number | null;
  leader: string | null;
  ms: number;
}

export type FaultKind =
  | 'worker-kill'
  | 'worker-stop'
  | 'coordinator-kill'
  | 'coordinator-kill-burst'
  | 'partition-both'
  | 'partition-in'
  | 'partition-out'
  | 'partition-flap'
  | 'slow-link'
  | 'lossy-link'
  | 'lost-reply'
  | 'disk-full'
  // PostgreSQL mode: several coordinators, one leading.
  | 'leader-kill'
  | 'leader-stop'
  | 'leader-db-cut'
  | 'standby-kill';

export type HistoryLine =
  | SubmitInvoke
  | SubmitOk
  | SubmitFail
  | WaitOk
  | WaitFail
  | RunStart
  | RunEnd
  | RunAck
  | RunAdd
  | RunSpawn
  | RunWaited
  | WorkerSession
  | HarnessStop
  | FaultStart
  | FaultEnd
  | Failover;

/** Appends to one process's history file. Synchronous, so a line is on disk before the process can be killed. */
export class HistoryWriter {
  constructor(
    private readonly file: string,
    private readonly proc: string,
  ) {}

  write(line: DistributiveOmit<HistoryLine, 't' | 'proc'>): void {
    appendFileSync(this.file, JSON.stringify({ t: Date.now(), proc: this.proc, ...line }) + '\n');
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** Reads every `*.jsonl` history file of a directory, merged and sorted by time. A torn last line (a kill mid-write) is skipped. */
export function readHistory(dir: string): HistoryLine[] {
  const lines: HistoryLine[] = [];
  for (const name of readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()) {
    for (const raw of readFileSync(join(dir, name), 'utf8').split('\n')) {
      if (raw.trim() === '') continue;
      try {
        lines.push(JSON.parse(raw) as HistoryLine);
      } catch {
        // a line cut by SIGKILL
      }
    }
  }
  return lines.sort((a, b) => a.t - b.t);
}
