import type { GroupCounts, GroupState } from './types.js';

/** Tasks not final yet. */
export function outstanding(c: GroupCounts): number {
  return c.pending + c.running;
}

/**
 * A group is done exactly when it is sealed and every task is final. An open
 * group is never done (more tasks may come); a canceled group is always done.
 */
export function isGroupDone(state: GroupState, c: GroupCounts): boolean {
  if (state === 'canceled' || state === 'done') return true;
  if (state === 'open') return false;
  return outstanding(c) === 0;
}

/** The state a group moves to after its counters changed. */
export function nextGroupState(state: GroupState, c: GroupCounts): GroupState {
  if (state === 'sealed' && outstanding(c) === 0) return 'done';
  return state;
}

/** The counters add up: total = pending + running + succeeded + failed + canceled. */
export function countsConsistent(c: GroupCounts): boolean {
  const parts = [c.pending, c.running, c.succeeded, c.failed, c.canceled];
  return (
    parts.every((n) => Number.isInteger(n) && n >= 0) &&
    parts.reduce((a, b) => a + b, 0) === c.total
  );
}
