/** What the store contract's files share: a fresh store per case, and the reads they check with. */
import assert from 'node:assert/strict';
import { countsConsistent } from '../../src/core/group.js';
import type { GroupInfo } from '../../src/core/types.js';
import type { ClaimedTask, Store } from '../../src/store/store.js';
import type { StoreHarness } from './contract.js';

export type Make = () => Promise<StoreHarness>;

/** A test body run on a fresh store, cleaned up whatever happens. */
export function using(make: Make, body: (h: StoreHarness) => Promise<void>): () => Promise<void> {
  return async () => {
    const h = await make();
    try {
      await body(h);
    } finally {
      await h.cleanup();
    }
  };
}

/** The group, which must exist, with counters that add up. */
export async function mustGroup(store: Store, id: string): Promise<GroupInfo> {
  const g = await store.getGroup(id);
  assert.ok(g, `group ${id} exists`);
  assert.ok(countsConsistent(g), `counts of ${id} add up: ${JSON.stringify(g)}`);
  return g;
}

/** Claims the next ready task of the group for `workerId`. */
export async function claimOne(
  store: Store,
  now: number,
  groupId: string,
  workerId = 'worker-1',
): Promise<ClaimedTask> {
  const [ready] = await store.readyTasks([groupId], now, 1);
  assert.ok(ready, `group ${groupId} has a ready task`);
  const out = await store.commitTick({ now, claims: [{ taskId: ready.taskId, workerId }] });
  const [c] = out.claimed;
  assert.ok(c, 'the claim took');
  return c;
}
