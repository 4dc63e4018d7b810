/**
 * The op kinds of a tick as the stores apply them: one applier per kind,
 * called kind by kind in commit order (core/ops.ts), so a store cannot leave
 * a kind out (the applier table is typed by the list) nor apply them in
 * another order.
 */
import { OP_KINDS, perOpKind, type OpKind } from '../core/ops.js';
import type { OpOf, OutcomeOf, Tick, TickOutcome } from './store.js';

/** One function per op kind: applies one op, returns its outcome. */
export type OpAppliers = { [K in OpKind]: (op: OpOf<K>) => OutcomeOf<K> };
export type OpOutcomes = { [K in OpKind]: OutcomeOf<K>[] };

/** Applies the tick's ops kind by kind in commit order, each kind in the order given. */
export function applyOps(tick: Tick, appliers: OpAppliers): OpOutcomes {
  const out = perOpKind((): unknown[] => []);
  for (const k of OP_KINDS) {
    const apply = appliers[k] as (op: unknown) => unknown;
    const ops = (tick[k] ?? []) as unknown[];
    out[k] = ops.map((op) => apply(op));
  }
  return out as OpOutcomes;
}

/** True when the tick has nothing to write: it costs no transaction at all. */
export function isEmptyTick(t: Tick): boolean {
  return (
    OP_KINDS.every((k) => !t[k]?.length) &&
    !t.workers?.length &&
    !t.claims?.length &&
    !t.events?.length
  );
}

export function emptyOutcome(): TickOutcome {
  const ops = perOpKind((): unknown[] => []) as OpOutcomes;
  return { ...ops, claimed: [], revoked: [], changedGroups: [] };
}
