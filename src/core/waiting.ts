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
    return {
      code: 'no_handler',
      message: `no worker offers handler ${JSON.stringify(handler)}; connected workers offer: ${list(all)}`,
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
