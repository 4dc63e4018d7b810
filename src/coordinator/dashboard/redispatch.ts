/**
 * Follows the tasks of a dead worker until they run again, for the
 * dashboard's timeline: "w2 dead: 17 tasks back to pending, re-dispatched to
 * w1 and w3 in 0.8 s". Pure: time comes in as arguments.
 */

/** How long a death is followed before its sentence is written with what is known. */
export const REDISPATCH_BOUND_MS = 60_000;

export interface Death {
  workerId: string;
  name: string;
  reason: string;
  requeued: number[];
  poisoned: number[];
  at: number;
}

/** One followed death: which tasks still wait, and where the others went. */
interface Followed {
  death: Death;
  waiting: Set<number>;
  /** Worker name -> tasks re-dispatched to it, in order of first appearance. */
  to: Map<string, number>;
  /** When the last one was re-dispatched (ms), or null. */
  lastAt: number | null;
  /** Finished: every task re-dispatched, or the bound passed. */
  closed: boolean;
}

export interface DeathReport {
  /** The dead worker's id: one timeline entry per death. */
  workerId: string;
  at: number;
  text: string;
  /** True once the sentence is final (all re-dispatched, or the bound passed). */
  final: boolean;
}

export class RedispatchTracker {
  private readonly open = new Map<string, Followed>();
  /** taskId -> the worker whose death sent it back (the latest death wins). */
  private readonly byTask = new Map<number, Followed>();

  constructor(private readonly boundMs = REDISPATCH_BOUND_MS) {}

  /** Whether any death is still followed (listen to dispatches only then). */
  get following(): boolean {
    return this.open.size > 0;
  }

  /** A worker died; returns its first sentence (final at once when it held nothing to requeue). */
  died(d: Death): DeathReport {
    const f: Followed = {
      death: d,
      waiting: new Set(d.requeued),
      to: new Map(),
      lastAt: null,
      closed: d.requeued.length === 0,
    };
    if (!f.closed) {
      this.open.set(d.workerId, f);
      for (const t of d.requeued) this.byTask.set(t, f);
    }
    return report(f, d.at);
  }

  /** A run was sent; returns the report of the death it completes or advances, or null. */
  dispatched(taskId: number, workerName: string, now: number): DeathReport | null {
    const f = this.byTask.get(taskId);
    if (!f) return null;
    this.byTask.delete(taskId);
    f.waiting.delete(taskId);
    f.to.set(workerName, (f.to.get(workerName) ?? 0) + 1);
    f.lastAt = now;
    if (f.waiting.size === 0) this.close(f);
    return report(f, now);
  }

  /** Closes deaths followed for longer than the bound; returns their final reports. */
  expire(now: number): DeathReport[] {
    const out: DeathReport[] = [];
    for (const f of [...this.open.values()]) {
      if (now - f.death.at < this.boundMs) continue;
      this.close(f);
      out.push(report(f, now));
    }
    return out;
  }

  private close(f: Followed): void {
    f.closed = true;
    this.open.delete(f.death.workerId);
    for (const t of f.waiting) if (this.byTask.get(t) === f) this.byTask.delete(t);
  }
}

function report(f: Followed, now: number): DeathReport {
  return {
    workerId: f.death.workerId,
    at: f.death.at,
    text: deathSentence(f, now),
    final: f.closed,
  };
}

/** "a", "a and b", "a, b and c" */
export function joinNames(names: string[]): string {
  if (names.length <= 1) return names.join('');
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

export function seconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
}

function tasks(n: number): string {
  return n === 1 ? '1 task' : `${n} tasks`;
}

function deathSentence(f: Followed, now: number): string {
  const d = f.death;
  const head = `${d.name} dead (${d.reason})`;
  const poison = d.poisoned.length > 0 ? `, ${tasks(d.poisoned.length)} failed as poison` : '';
  const n = d.requeued.length;
  if (n === 0) return `${head}: ${d.poisoned.length > 0 ? poison.slice(2) : 'it held no tasks'}`;
  const back = `${head}: ${tasks(n)} back to pending${poison}`;
  const names = joinNames([...f.to.keys()]);
  const moved = n - f.waiting.size;
  if (f.waiting.size === 0)
    return `${back}, re-dispatched to ${names} in ${seconds((f.lastAt ?? d.at) - d.at)}`;
  if (!f.closed)
    return moved === 0
      ? `${back}, waiting to run again`
      : `${back}, ${moved} re-dispatched to ${names} so far`;
  const waited = `not re-dispatched within ${seconds(now - d.at)}`;
  return moved === 0
    ? `${back}, ${waited}`
    : `${back}, ${moved} re-dispatched to ${names}; ${f.waiting.size} ${waited}`;
}
