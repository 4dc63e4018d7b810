/**
 * Why a group waits: its pending tasks need a handler and labels that no
 * connected worker has. Pure: the engine passes the connected workers in
 * (alive or suspect, not draining: a draining worker takes no new tasks).
 */
import type { TaskError } from './types.js';

/**
 * no_worker: no worker is connected at all.
 * no_handler: no connected worker offers the group's handler.
 * no_label: workers offer the handler, none of them has every required label.
 */
export const WAITING_CODES = ['no_worker', 'no_handler', 'no_label'] as const;
export type WaitingCode = (typeof WAITING_CODES)[number];

export interface WaitingReason {
  code: WaitingCode;
  message: string;
}

/** A group's reason to wait, and since when (ms epoch) no connected worker could run it. */
export interface GroupWaiting extends WaitingReason {
  since: number;
}

/** What a connected worker offers. */
export interface Offer {
  handlers: ReadonlySet<string>;
  labels: ReadonlySet<string>;
}

/** Names listed in a message at most; the rest are counted ("and 3 more"). */
export const MAX_LISTED = 10;

/** True when the worker can run tasks of this handler that require these labels. */
export function offers(w: Offer, handler: string, requires: readonly string[]): boolean {
  if (!w.handlers.has(handler)) return false;
  for (const label of requires) if (!w.labels.has(label)) return false;
  return true;
}

/**
 * The verdict alone, cheap (no message): why no worker of `workers` can run
 * the handler with these labels, or null when one can. O(workers x labels).
 */
export function waitingCode(
  handler: string,
  requires: readonly string[],
  workers: readonly Offer[],
): WaitingCode | null {
  if (workers.length === 0) return 'no_worker';
  let offered = false;
  for (const w of workers) {
    if (!w.handlers.has(handler)) continue;
    if (offers(w, handler, requires)) return null;
    offered = true;
  }
  return offered ? 'no_label' : 'no_handler';
}

/**
 * Why no worker of `workers` can run the handler with these labels, said
 * for a person; null when one can. `offered`: every handler the workers
 * offer, sorted and distinct, when the caller has it already.
 */
export function whyWaiting(
  handler: string,
  requires: readonly string[],
  workers: readonly Offer[],
  offered: readonly string[] = offeredHandlers(workers),
): WaitingReason | null {
  const code = waitingCode(handler, requires, workers);
  switch (code) {
    case null:
      return null;
    case 'no_worker':
      return { code, message: 'no worker is connected' };
    case 'no_handler': {
      const near = closest(handler, offered);
      const hint = near === null ? '' : ` (did you mean ${JSON.stringify(near)}?)`;
      return {
        code,
        message: `no worker offers handler ${JSON.stringify(handler)}${hint}; connected workers offer: ${list(offered)}`,
      };
    }
    case 'no_label': {
      const have = workers.filter((w) => w.handlers.has(handler)).flatMap((w) => [...w.labels]);
      return {
        code,
        message:
          `no connected worker offering ${JSON.stringify(handler)} has labels ${list(requires)}; ` +
          `workers offering it have: ${have.length === 0 ? '(no labels)' : list(have)}`,
      };
    }
  }
}

/** Every handler the workers offer, sorted and distinct. */
export function offeredHandlers(workers: readonly Offer[]): string[] {
  const all = new Set<string>();
  for (const w of workers) for (const h of w.handlers) all.add(h);
  return [...all].sort();
}

/** No suggestion is looked for among more offered names than this (the cost stays small). */
export const MAX_SUGGEST_FROM = 1000;

/**
 * The offered name a typo most likely meant: the nearest by edits (insert,
 * delete, replace, swap two neighbours), at most 1 edit for names up to 4
 * characters and 2 for longer ones; the first in sort order on a tie; null
 * when none is that near, or when more than MAX_SUGGEST_FROM names are
 * offered. Each comparison costs O(length), whatever the names.
 */
export function closest(name: string, offered: Iterable<string>): string | null {
  const names = [...new Set(offered)];
  if (names.length > MAX_SUGGEST_FROM) return null;
  const most = name.length <= 4 ? 1 : 2;
  let best: string | null = null;
  let bestD = most + 1;
  for (const o of names.sort()) {
    const d = edits(name, o, bestD);
    if (d < bestD) [best, bestD] = [o, d];
  }
  return best;
}

/**
 * Optimal string alignment distance, or `cap` when it is at least that.
 * Only the band of cells within `cap` of the diagonal is computed: a path
 * outside it costs `cap` or more.
 */
function edits(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  let before = new Array<number>(b.length + 1).fill(cap);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => Math.min(j, cap));
  let row = new Array<number>(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    row.fill(cap);
    row[0] = Math.min(i, cap);
    let low = row[0];
    for (let j = Math.max(1, i - cap); j <= Math.min(b.length, i + cap); j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, before[j - 2]! + 1);
      row[j] = Math.min(d, cap);
      low = Math.min(low, row[j]!);
    }
    if (low >= cap) return cap;
    [before, prev, row] = [prev, row, before];
  }
  return prev[b.length]!;
}

/** Sorted, distinct, at most MAX_LISTED names, then "and N more". */
export function list(names: Iterable<string>): string {
  const all = [...new Set(names)].sort();
  if (all.length === 0) return '(none)';
  const shown = all.slice(0, MAX_LISTED).join(', ');
  return all.length > MAX_LISTED ? `${shown} and ${all.length - MAX_LISTED} more` : shown;
}

/** The error of tasks failed by a schedule timeout: what was missing, and the option that ended the wait. */
export function unschedulableError(w: WaitingReason, scheduleTimeoutMs: number): TaskError {
  return {
    kind: 'unschedulable',
    message: `no connected worker could run this task for ${scheduleTimeoutMs} ms (scheduleTimeoutMs): ${w.message}`,
  };
}
