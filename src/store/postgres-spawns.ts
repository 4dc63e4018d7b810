/**
 * The child groups of running tasks (ctx.spawn) of one tick on PostgreSQL,
 * decided op by op in tick order like the SQLite store's applier: the fence
 * (checkFence, on the task rows locked `FOR UPDATE`), then the key (a repeat
 * in the same tick sees the spawn before it), then a new sealed group with
 * its tasks. A tick rarely carries more than a few spawns: each is a
 * statement or two, not a batch.
 */
import { checkFence } from '../core/fence.js';
import type { TaskState } from '../core/types.js';
import type { RunContext } from './postgres-runs.js';
import { toJson } from './rows.js';
import type { SpawnOp, SpawnOutcome } from './store.js';
import { snapshot } from './tick-groups.js';

interface TaskRow {
  id: number;
  group_id: string;
  state: TaskState;
  attempt: number;
  worker_id: string | null;
}

const keyOf = (taskId: number, key: string): string => `${taskId}\u0000${key}`;

export async function applySpawns(cx: RunContext, ops: SpawnOp[]): Promise<SpawnOutcome[]> {
  if (ops.length === 0) return [];
  const ids = [...new Set(ops.map((o) => o.taskId))];
  const rows = await cx.rows<TaskRow>('lockRunTasks', [ids]);
  const tasks = new Map(rows.map((r) => [Number(r.id), r]));
  const made = new Map<string, string>();
  const out: SpawnOutcome[] = [];
  for (const op of ops) out.push(await spawn(cx, op, tasks.get(op.taskId), made));
  return out;
}

async function spawn(
  cx: RunContext,
  op: SpawnOp,
  t: TaskRow | undefined,
  made: Map<string, string>,
): Promise<SpawnOutcome> {
  if (!t) return { status: 'stale' };
  const fence = checkFence({ ...t, workerId: t.worker_id }, op.attempt, op.workerId);
  if (fence !== 'ok') return { status: fence };
  const k = keyOf(op.taskId, op.key);
  let prev = made.get(k);
  if (prev === undefined) {
    const [row] = await cx.rows<{ id: string }>('spawnedGroup', [op.taskId, op.key]);
    prev = row?.id;
  }
  if (prev !== undefined) {
    await cx.loadGroups([prev]);
    const existing = cx.groupOf(prev);
    const status = existing.handler === op.group.handler ? 'existing' : 'conflict';
    return { status, group: snapshot(existing) };
  }
  const n = { ...op.group, idempotencyKey: null, open: false };
  const g = cx.groups.create(n, { groupId: t.group_id, taskId: op.taskId });
  made.set(k, g.id);
  await cx.rows('insertSpawnedGroup', [
    cx.now,
    g.id,
    g.handler,
    g.state,
    g.policy,
    JSON.stringify(g.options),
    t.group_id,
    op.taskId,
    op.key,
    op.keepChildren,
  ]);
  const inputs = op.group.inputs;
  if (inputs.length > 0) {
    await cx.rows('insertTasks', [
      inputs.map(() => g.id),
      inputs.map((_, i) => i),
      inputs.map(() => g.options.priority),
      inputs.map((v) => toJson(v)),
    ]);
  }
  cx.groups.move(g, null, 'pending', inputs.length);
  cx.groups.settle(g);
  return { status: 'created', group: snapshot(g) };
}
