import type { WorkerHealth } from './types.js';

export interface LivenessOptions {
  /** How often a worker beats. Default 500 ms. */
  heartbeatMs: number;
  /** Silence after which a worker is dead. Default 2000 ms. */
  deadAfterMs: number;
  /** A closed connection not resumed within this is dead. Default 500 ms. */
  closeGraceMs: number;
}

export const DEFAULT_LIVENESS: Readonly<LivenessOptions> = Object.freeze({
  heartbeatMs: 500,
  deadAfterMs: 2000,
  closeGraceMs: 500,
});

export interface SessionView {
  /** Last time anything arrived from the worker. */
  lastSeenAt: number;
  /** When its connection closed, or null while connected. */
  closedAt: number | null;
  draining: boolean;
  /**
   * Until then it is not judged dead, whatever its silence or close: a
   * coordinator stall long enough to cut connections (stallGraceMs) gives
   * every session this long to come back. Absent or 0: no grace.
   */
  graceUntil?: number;
}

/**
 * The health of one worker session at `now`.
 * - dead: silent for deadAfterMs, or disconnected for closeGraceMs;
 * - suspect: missed a beat (silent for more than 1.5 beats) or disconnected
 *   within the grace; gets no new tasks;
 * - draining: asked to stop; gets no new tasks, keeps its runs;
 * - alive: otherwise.
 */
export function judgeWorker(s: SessionView, now: number, o: LivenessOptions): WorkerHealth {
  const silentMs = now - s.lastSeenAt;
  const grace = s.graceUntil !== undefined && now < s.graceUntil;
  if (!grace && silentMs >= o.deadAfterMs) return 'dead';
  if (!grace && s.closedAt !== null && now - s.closedAt >= o.closeGraceMs) return 'dead';
  if (s.draining) return 'draining';
  if (s.closedAt !== null || silentMs > o.heartbeatMs * 1.5) return 'suspect';
  return 'alive';
}

/**
 * How long the coordinator itself could not hear, judged from its own sweep:
 * a sweep due `sweepMs` after the last one that comes later than that by more
 * than `toleranceMs` was held up by the coordinator (its event loop blocked
 * by a large request, a slow disk or a GC pause; its process paused). All of
 * that lateness is time no beat could have been read, so it must not count
 * as any worker's silence. 0 when the sweep came on time.
 */
export function stalledMs(
  lastSweepAt: number,
  now: number,
  sweepMs: number,
  toleranceMs = STALL_TOLERANCE_MS,
): number {
  const late = now - lastSweepAt - sweepMs;
  return late > toleranceMs ? late : 0;
}

/** Lateness of a sweep below this is timer jitter, not a stall. */
export const STALL_TOLERANCE_MS = 20;

/**
 * After a stall of `stallMs`, how long every session has to come back
 * before it can be judged dead; 0 when the stall was too short to cut a
 * connection. A stall of deadAfterMs - heartbeatMs or more makes each
 * worker's own silence timer cut its socket, and its reconnects fail (each
 * after a handshake timeout of deadAfterMs) until the stall ends: it comes
 * back within a handshake timeout plus its reconnect backoff plus the
 * resume. 2 x deadAfterMs + closeGraceMs covers a backoff up to
 * deadAfterMs (the worker's default reconnectMaxMs, 1 s, is less).
 */
export function stallGraceMs(stallMs: number, o: LivenessOptions): number {
  if (stallMs < o.deadAfterMs - o.heartbeatMs) return 0;
  return 2 * o.deadAfterMs + o.closeGraceMs;
}

/** Whether a worker in this health may be given new tasks. */
export function canTakeWork(health: WorkerHealth): boolean {
  return health === 'alive';
}

/**
 * The next time judgeWorker's answer can change for this session (whole
 * milliseconds), so a shell can sleep until then. For a session already
 * suspect it may lie in the past: the shell should take max(now, it).
 */
export function nextJudgementAt(s: SessionView, o: LivenessOptions): number {
  // A death cannot come before the grace ends.
  const dead = (t: number): number => Math.max(t, s.graceUntil ?? 0);
  const candidates = [
    dead(s.lastSeenAt + o.deadAfterMs),
    Math.floor(s.lastSeenAt + o.heartbeatMs * 1.5) + 1,
  ];
  if (s.closedAt !== null) candidates.push(dead(s.closedAt + o.closeGraceMs));
  return Math.min(...candidates);
}
