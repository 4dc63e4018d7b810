/**
 * Credit-based dispatch. A worker has `free` slots (its slots minus the runs it
 * holds); the plan never gives a worker more than that. Groups are served
 * round robin, one task per group per round, so a huge group cannot starve a
 * small one; within a group, candidates come in the order given (the store
 * orders them by priority, then index). A task goes only to a worker that has
 * its handler and all of its `requires` labels; among those, to the one with
 * the most free slots, so load spreads; a task whose last attempt ended by
 * its worker's death or a timeout (`avoid`) goes to another worker when one
 * with a free slot can run it.
 */

export interface Candidate {
  taskId: number;
  groupId: string;
  handler: string;
  requires: readonly string[];
  /** The worker its last attempt died or timed out on: another one is preferred. */
  avoid?: string;
}

export interface WorkerCredit {
  workerId: string;
  free: number;
  handlers: ReadonlySet<string>;
  labels: ReadonlySet<string>;
}

export interface Assignment {
  taskId: number;
  workerId: string;
}

export function canRun(w: WorkerCredit, c: Candidate): boolean {
  if (!w.handlers.has(c.handler)) return false;
  for (const label of c.requires) if (!w.labels.has(label)) return false;
  return true;
}

/**
 * `groups` are the candidate lists, one per group, in the round-robin order
 * to serve them. Returns assignments; the input is not changed.
 */
export function planDispatch(
  groups: readonly (readonly Candidate[])[],
  workers: readonly WorkerCredit[],
): Assignment[] {
  const free = new Map<string, number>();
  let totalFree = 0;
  for (const w of workers) {
    if (w.free > 0) {
      free.set(w.workerId, w.free);
      totalFree += w.free;
    }
  }
  const out: Assignment[] = [];
  if (totalFree === 0) return out;
  const cursors = groups.map(() => 0);
  let progressed = true;
  while (totalFree > 0 && progressed) {
    progressed = false;
    for (let g = 0; g < groups.length && totalFree > 0; g++) {
      const list = groups[g]!;
      // Take this group's next candidate that some worker can run.
      while (cursors[g]! < list.length) {
        const c = list[cursors[g]!]!;
        cursors[g]!++;
        const w = bestWorker(workers, free, c);
        if (w === null) continue;
        out.push({ taskId: c.taskId, workerId: w });
        free.set(w, free.get(w)! - 1);
        totalFree--;
        progressed = true;
        break;
      }
    }
  }
  return out;
}

function bestWorker(
  workers: readonly WorkerCredit[],
  free: Map<string, number>,
  c: Candidate,
): string | null {
  let best: string | null = null;
  let bestFree = 0;
  let avoided = false;
  for (const w of workers) {
    const f = free.get(w.workerId) ?? 0;
    if (f <= 0 || !canRun(w, c)) continue;
    if (w.workerId === c.avoid) {
      avoided = true;
      continue;
    }
    if (f > bestFree) {
      best = w.workerId;
      bestFree = f;
    }
  }
  // Only the worker to avoid can run it now: it runs there rather than wait.
  if (best === null && avoided) return c.avoid!;
  return best;
}

/** Rotates a list so that round robin starts after the last group served. */
export function rotate<T>(list: readonly T[], start: number): T[] {
  if (list.length === 0) return [];
  const k = ((start % list.length) + list.length) % list.length;
  return [...list.slice(k), ...list.slice(0, k)];
}
