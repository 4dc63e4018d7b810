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

/** Why no worker of `workers` can run the handler with these labels; null when one can. */
export function whyWaiting(
  handler: string,
  requires: readonly string[],
  workers: readonly Offer[],
): WaitingReason | null {
  if (workers.length === 0) return { code: 'no_worker', message: 'no worker is connected' };
  const offering = workers.filter((w) => w.handlers.has(handler));
  if (offering.length === 0) {
    const all = workers.flatMap((w) => [...w.handlers]);
    const near = closest(handler, all);
    const hint = near === null ? '' : ` (did you mean ${JSON.stringify(near)}?)`;
    return {
      code: 'no_handler',
      message: `no worker offers handler ${JSON.stringify(handler)}${hint}; connected workers offer: ${list(all)}`,
    };
  }
  if (offering.some((w) => offers(w, handler, requires))) return null;
  const have = offering.flatMap((w) => [...w.labels]);
  return {
    code: 'no_label',
    message:
      `no connected worker offering ${JSON.stringify(handler)} has labels ${list(requires)}; ` +
      `workers offering it have: ${have.length === 0 ? '(no labels)' : list(have)}`,
  };
}

/**
 * The offered name a typo most likely meant: the nearest by edits (insert,
 * delete, replace, swap two neighbours), at most 1 edit for names up to 4
 * characters and 2 for longer ones; the first in sort order on a tie; null
 * when none is that near. Names whose length differs by more are not
 * compared, so the cost stays small with many handlers.
 */
export function closest(name: string, offered: Iterable<string>): string | null {
  const most = name.length <= 4 ? 1 : 2;
  let best: string | null = null;
  let bestD = most + 1;
  for (const o of [...new Set(offered)].sort()) {
    if (Math.abs(o.length - name.length) > most) continue;
    const d = edits(name, o, bestD);
    if (d < bestD) [best, bestD] = [o, d];
  }
  return best;
}

/** Optimal string alignment distance, or `cap` as soon as it is sure to be at least that. */
function edits(a: string, b: string, cap: number): number {
  let before: number[] = [];
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let low = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, before[j - 2]! + 1);
      row.push(d);
      low = Math.min(low, d);
    }
    if (low >= cap) return cap;
    [before, prev] = [prev, row];
  }
  return Math.min(prev[b.length]!, cap);
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
