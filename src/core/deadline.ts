/**
 * Every lease ends: the rules by which the coordinator itself ends a run its
 * worker does not report (docs/design.md, "Lease ends"). Pure: times are
 * arguments.
 */
import type { TaskError, TaskOptions } from './types.js';

/** Added to a run's limits before the coordinator acts, so a worker's own timeout report wins. Default 5 s. */
export const DEFAULT_TIMEOUT_GRACE_MS = 5_000;

/** Most slots one worker is granted, whatever its hello announces. */
export const DEFAULT_MAX_WORKER_SLOTS = 1024;

/**
 * Most runs of one worker that wait on their children with their slot
 * given back (a suspend past it is not taken: the run keeps its slot).
 * Bounds the leases one session holds: slots + reserve + this.
 */
export const DEFAULT_MAX_SUSPENDED_PER_WORKER = 10_000;

/** What the coordinator knows of one run it sent. */
export interface RunClock {
  /** When the run was sent to the worker (moved forward by the coordinator's stalls). */
  sentAt: number;
  /** The last sign of progress (ctx.heartbeat or a checkpoint), or sentAt when none came yet. */
  progressAt: number;
}

export type RunLimit = 'timeoutMs' | 'heartbeatTimeoutMs';

/**
 * When the coordinator ends this run itself, and by which limit; null when no
 * limit applies. `timeoutMs` counts from the send, `heartbeatTimeoutMs` from
 * the last progress; both get `graceMs` on top (network, coalescing, and the
 * worker's own timeout report, which comes first). `watchProgress` is false
 * for a worker that cannot report progress (an older worker library): its
 * runs are never cut for missing heartbeats.
 */
export function runDeadline(
  run: RunClock,
  limits: Pick<TaskOptions, 'timeoutMs' | 'heartbeatTimeoutMs'>,
  o: { graceMs: number; watchProgress: boolean },
): { at: number; limit: RunLimit } | null {
  let best: { at: number; limit: RunLimit } | null = null;
  if (limits.timeoutMs > 0)
    best = { at: run.sentAt + limits.timeoutMs + o.graceMs, limit: 'timeoutMs' };
  // Options stored before heartbeatTimeoutMs existed lack it: no limit.
  const hb = limits.heartbeatTimeoutMs ?? 0;
  if (o.watchProgress && hb > 0) {
    const at = run.progressAt + hb + o.graceMs;
    if (best === null || at < best.at) best = { at, limit: 'heartbeatTimeoutMs' };
  }
  return best;
}

/** The error a run ended by the coordinator fails with: kind timeout, naming the limit. */
export function deadlineError(
  limit: RunLimit,
  ref: { taskId: number; attempt: number },
  limits: Pick<TaskOptions, 'timeoutMs' | 'heartbeatTimeoutMs'>,
  graceMs: number,
): TaskError {
  const message =
    limit === 'timeoutMs'
      ? `task ${ref.taskId} attempt ${ref.attempt} was not reported within its timeoutMs (${limits.timeoutMs}) + the coordinator's grace (${graceMs} ms): the coordinator ended it`
      : `task ${ref.taskId} attempt ${ref.attempt} showed no progress (ctx.heartbeat or a checkpoint) within its heartbeatTimeoutMs (${limits.heartbeatTimeoutMs}) + the coordinator's grace (${graceMs} ms): the coordinator ended it`;
  return { kind: 'timeout', message };
}

/**
 * How often, at most, a worker sends progress for one run: a quarter of its
 * heartbeatTimeoutMs (at least 10 ms). A heartbeat inside that window is
 * sent at its end, so the coordinator hears of any heartbeat within a
 * quarter of the limit.
 */
export function progressEveryMs(heartbeatTimeoutMs: number): number {
  return Math.max(10, Math.floor(heartbeatTimeoutMs / 4));
}

/** A run the coordinator sent on the current connection: the frame it went out in (null: queued, not sent yet). */
export interface SentRun {
  taskId: number;
  attempt: number;
  frame: number | null;
}

/**
 * The runs a worker has lost: sent in a frame the worker says it received
 * (frame <= `framesReceived`, counted on the same connection, unreadable
 * frames included) and not among the runs it holds. A frame the worker
 * could not parse is counted but its runs are not held, so they come out
 * here; a run still on its way (a later frame) does not.
 */
export function lostRuns<R extends SentRun>(
  sent: Iterable<R>,
  framesReceived: number,
  held: readonly { taskId: number; attempt: number }[],
): R[] {
  const holds = new Set(held.map((r) => `${r.taskId}:${r.attempt}`));
  const out: R[] = [];
  for (const r of sent) {
    if (r.frame === null || r.frame > framesReceived) continue;
    if (!holds.has(`${r.taskId}:${r.attempt}`)) out.push(r);
  }
  return out;
}

/** The slots a worker is granted: what it announced, at most `maxWorkerSlots`. */
export function grantedSlots(announced: number, maxWorkerSlots: number): number {
  return Math.max(1, Math.min(announced, maxWorkerSlots));
}
