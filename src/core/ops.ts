/**
 * The kinds of op a coordinator tick carries, written once. The list is in
 * commit order: the store applies a tick's ops kind by kind in this order
 * (src/store/store.ts), and the engine's queue, the store's Tick and
 * TickOutcome, and the set of ops answered with a commit error (`client`)
 * all derive from it.
 *
 * - client: the op comes from a client request; when a commit fails it is
 *   answered with the error (the client retries). Other ops (worker reports,
 *   the engine's own) are kept and committed by a later tick.
 */
export const OPS = [
  { kind: 'createGroups', client: true },
  { kind: 'addTasks', client: true },
  { kind: 'seals', client: true },
  { kind: 'cancels', client: true },
  { kind: 'retries', client: true },
  // Before commits: a task's add and its result in one tick apply in that order.
  { kind: 'taskAdds', client: false },
  // A running task's child groups (ctx.spawn), fenced like taskAdds.
  { kind: 'spawns', client: false },
  { kind: 'commits', client: false },
  { kind: 'failures', client: false },
  { kind: 'requeues', client: false },
  { kind: 'checkpoints', client: false },
  { kind: 'scheduleTimeouts', client: false },
] as const;

export type OpKind = (typeof OPS)[number]['kind'];

/** Every op kind, in commit order. */
export const OP_KINDS: readonly OpKind[] = OPS.map((o) => o.kind);

const CLIENT: ReadonlySet<OpKind> = new Set(OPS.filter((o) => o.client).map((o) => o.kind));

/** Ops from clients are answered with the error when a commit fails; the client retries. */
export function isClientOp(kind: OpKind): boolean {
  return CLIENT.has(kind);
}

/** A record with one entry per op kind, each `init()`: queues, outcomes, empty ticks. */
export function perOpKind<T>(init: (kind: OpKind) => T): { [K in OpKind]: T } {
  return Object.fromEntries(OP_KINDS.map((k) => [k, init(k)])) as { [K in OpKind]: T };
}
