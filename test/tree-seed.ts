/**
 * Trees of groups written straight into a store, without workers: a root
 * group submitted as a client would, and below it groups spawned by its
 * tasks (a claimed task applies a spawns op, then succeeds). For the tests
 * of what reads the tree (API, CLI, dashboard, metrics) while the worker
 * side of ctx.spawn is built apart.
 */
import assert from 'node:assert/strict';
import { resolveTaskOptions } from '../src/core/options.js';
import type { Store } from '../src/store/store.js';

export interface TreeSpec {
  id: string;
  handler?: string;
  /** Inputs of the group's tasks; a child with none is done at once. Default [0]. */
  inputs?: unknown[];
  /** Groups spawned by this group's first task, in this order. */
  children?: TreeSpec[];
}

const SEED_WORKER = 'seed-worker';

/**
 * Writes `spec` into the store: the root as a client's sealed group, each
 * group's children spawned by its first task (which then succeeds), depth
 * first. Every write is one tick at `now` (the same createdAt for a
 * group's children, as when one tick commits many spawns).
 */
export async function seedTree(store: Store, spec: TreeSpec, now = Date.now()): Promise<void> {
  const inputs = spec.inputs ?? [0];
  await store.commitTick({
    now,
    createGroups: [
      {
        id: spec.id,
        handler: spec.handler ?? 'parent',
        policy: 'collectAll',
        idempotencyKey: null,
        open: false,
        options: resolveTaskOptions({}),
        inputs,
      },
    ],
  });
  await spawnChildren(store, spec, now);
}

async function spawnChildren(store: Store, spec: TreeSpec, now: number): Promise<void> {
  const children = spec.children ?? [];
  if (children.length === 0) return;
  const [ready] = await store.readyTasks([spec.id], now, 1);
  assert.ok(ready, `group ${spec.id} has a task to spawn its children from`);
  const claimed = await store.commitTick({
    now,
    claims: [{ taskId: ready.taskId, workerId: SEED_WORKER }],
  });
  const run = claimed.claimed[0];
  assert.ok(run, `the seed claimed a task of ${spec.id}`);
  const fence = { taskId: run.taskId, attempt: run.attempt, workerId: SEED_WORKER };
  const out = await store.commitTick({
    now,
    spawns: children.map((c, i) => ({
      ...fence,
      key: `#${i}`,
      group: {
        id: c.id,
        handler: c.handler ?? 'child',
        policy: 'collectAll' as const,
        options: resolveTaskOptions({}),
        inputs: c.inputs ?? [0],
      },
      keepChildren: false,
    })),
  });
  assert.deepEqual(
    out.spawns.map((s) => s.status),
    children.map(() => 'created'),
  );
  for (const c of children) await spawnChildren(store, c, now);
  await store.commitTick({ now, commits: [{ ...fence, value: null }] });
}
