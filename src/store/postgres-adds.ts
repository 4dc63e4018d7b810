/**
 * The adds of running tasks (ctx.add) of one tick on PostgreSQL. The tasks
 * they name are loaded `FOR UPDATE` (with their groups), and the keys already
 * used under them are read in one statement; each op is then decided in
 * memory, in tick order, the way the SQLite store's op-by-op applier decides
 * it: the fence (checkFence), then the key (a repeat in the same tick sees
 * the add before it), then the tasks take the group's next indexes. The new
 * tasks and the keys are written in one statement each.
 */
import { checkFence } from '../core/fence.js';
import type { TaskState } from '../core/types.js';
import { columns, push, type RunContext } from './postgres-runs.js';
import { toJson } from './rows.js';
import type { TaskAddOp, TaskAddOutcome } from './store.js';
import { repeatedAdd } from './tick-groups.js';

interface TaskRow {
  id: number;
  group_id: string;
  state: TaskState;
  attempt: number;
  worker_id: string | null;
}

interface AddRow {
  task_id: number;
  key: string;
  first_idx: number;
  count: number;
}

type Made = { first: number; count: number };

const keyOf = (taskId: number, key: string): string => `${taskId}\u0000${key}`;

export async function applyTaskAdds(cx: RunContext, ops: TaskAddOp[]): Promise<TaskAddOutcome[]> {
  if (ops.length === 0) return [];
  const ids = [...new Set(ops.map((o) => o.taskId))];
  const rows = await cx.rows<TaskRow>('lockRunTasks', [ids]);
  const tasks = new Map(rows.map((r) => [r.id, r]));
  await cx.loadGroups(rows.map((r) => r.group_id));
  const made = new Map<string, Made>();
  const prev = await cx.rows<AddRow>('taskAddsByKey', [
    ops.map((o) => o.taskId),
    ops.map((o) => o.key),
  ]);
  for (const r of prev) made.set(keyOf(r.task_id, r.key), { first: r.first_idx, count: r.count });
  const newTasks = columns(4);
  const newAdds = columns(4);
  const out = ops.map((op): TaskAddOutcome => {
    const t = tasks.get(op.taskId);
    if (!t) return { status: 'stale' };
    const fence = checkFence({ ...t, workerId: t.worker_id }, op.attempt, op.workerId);
    if (fence !== 'ok') return { status: fence };
    const k = keyOf(op.taskId, op.key);
    const before = made.get(k);
    if (before) return repeatedAdd(before, op.inputs.length);
    const g = cx.groupOf(t.group_id);
    const first = g.total;
    const count = op.inputs.length;
    op.inputs.forEach((input, i) =>
      push(newTasks, g.id, first + i, g.options.priority, toJson(input)),
    );
    cx.groups.move(g, null, 'pending', count);
    made.set(k, { first, count });
    push(newAdds, op.taskId, op.key, first, count);
    return { status: 'added', first, count };
  });
  const n = (cols: unknown[][]) => cols[0]?.length ?? 0;
  if (n(newTasks) > 0) await cx.rows('insertTasks', newTasks);
  if (n(newAdds) > 0) await cx.write('insertTaskAdds', newAdds, n(newAdds));
  return out;
}
