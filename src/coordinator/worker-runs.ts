/**
 * What the gateway does with a run's reports that take more than an ack.
 * Ending a run that failed, the one way: decided in core (decideFailure),
 * queued as a fenced failure op, the fact recorded once it really happened.
 * The worker's `fail` report and the coordinator's own deadline both end
 * here. A running task's add (ctx.add) is checked, queued and answered here.
 */
import type { ErrorCode } from '../core/errors.js';
import { fact } from '../core/events.js';
import { holdsLease } from '../core/fence.js';
import { decideFailure } from '../core/retry.js';
import type { TaskError } from '../core/types.js';
import type { Limits } from '../protocol/limits.js';
import type { Add, Added } from '../protocol/worker.js';
import type { RunOutcome, TaskAddOutcome } from '../store/store.js';
import type { Engine } from './engine.js';
import { scoped } from './facts.js';
import type { ResolvedCoordinatorOptions } from './options.js';
import type { Session } from './sessions.js';

export function failRun(
  o: ResolvedCoordinatorOptions,
  engine: Engine,
  ref: { taskId: number; attempt: number; workerId: string },
  error: TaskError,
): Promise<RunOutcome> {
  const { taskId, attempt, workerId } = ref;
  const lease = engine.leases.get(taskId);
  let retryAt: number | null = null;
  if (holdsLease(lease, attempt, workerId)) {
    const d = decideFailure({
      errorsBefore: lease.errors,
      error,
      options: lease.options,
      now: o.now(),
      random: o.random,
    });
    if (d.kind === 'retry') retryAt = d.retryAt;
  }
  const op = { taskId, attempt, workerId, error, retryAt, nodeFailure: false };
  const scope = { workerId, groupId: lease?.groupId ?? null, taskId };
  const said = { attempt, kind: error.kind, error: error.message };
  // Recorded only when it really happened (a stale report changes nothing).
  return engine.request('failures', op, (outcome) => {
    if (outcome !== 'applied') return null;
    return retryAt === null
      ? fact('task.failed', said, scope)
      : fact('task.retried', { ...said, retryAt }, scope);
  });
}

/** Size of a value as the UTF-8 bytes of its JSON, the unit every limit is stated in. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? 'null', 'utf8');
}

/** Why an add's inputs are refused by the limits a client's add has (maxTasksPerRequest, maxInputBytes), or null. */
export function addRefusal(
  limits: Limits,
  inputs: readonly unknown[],
  what: 'ctx.add' | 'ctx.spawn' = 'ctx.add',
): { code: ErrorCode; message: string } | null {
  const { maxTasksPerRequest, maxInputBytes } = limits;
  if (inputs.length > maxTasksPerRequest) {
    return {
      code: 'too_many_tasks',
      message: `${what} of ${inputs.length} tasks; at most ${maxTasksPerRequest} in one ${what === 'ctx.add' ? 'add' : 'spawn'} (maxTasksPerRequest): ${what === 'ctx.add' ? 'add them in parts (several ctx.add calls)' : 'spawn a smaller group and let its tasks ctx.add the rest, or spawn several groups'}, or raise the coordinator's --max-tasks-per-request`,
    };
  }
  for (let i = 0; i < inputs.length; i++) {
    const size = jsonBytes(inputs[i] ?? null);
    if (size > maxInputBytes) {
      return {
        code: 'input_too_large',
        message: `input ${i} of ${what} is ${size} bytes of JSON; at most ${maxInputBytes} (maxInputBytes): store large data elsewhere and pass a reference, or raise the coordinator's --max-input-bytes`,
      };
    }
  }
  return null;
}

/**
 * A running task's add (ctx.add), the one way: its inputs checked against a
 * client add's limits, queued as a fenced taskAdds op, and answered `added`
 * once committed. The fact is recorded only when tasks were really added. A
 * commit the engine could not make (shutting down, leadership lost) is not
 * answered: the worker keeps the add and sends it again after it resumes,
 * and its key makes that safe.
 */
export function addFromRun(
  o: ResolvedCoordinatorOptions,
  engine: Engine,
  s: Pick<Session, 'workerId' | 'send'>,
  m: Add,
): void {
  const ref = { taskId: m.taskId, attempt: m.attempt, seq: m.seq };
  const refused = addRefusal(o.limits, m.inputs);
  if (refused !== null) {
    s.send({ t: 'added', ...ref, ok: false, ...refused });
    return;
  }
  const { taskId, attempt, key, inputs } = m;
  const groupId = engine.leases.get(taskId)?.groupId ?? null;
  const scope = { workerId: s.workerId, groupId, taskId };
  const op = { taskId, attempt, workerId: s.workerId, key, inputs };
  engine
    .request('taskAdds', op, (out) =>
      out.status === 'added' && out.count > 0
        ? fact('group.tasks_added', { key, first: out.first, count: out.count }, scope)
        : null,
    )
    .then(
      (out) => s.send({ t: 'added', ...ref, ...addAnswer(op, out) }),
      (e: unknown) =>
        scoped(o.logger, scope)('warn', 'add not committed', {
          attempt,
          err: (e as Error).message,
        }),
    );
}

/** The `added` fields for a committed outcome. */
function addAnswer(
  op: { taskId: number; attempt: number; key: string; inputs: unknown[] },
  out: TaskAddOutcome,
): Pick<Added, 'ok' | 'first' | 'count' | 'code' | 'message'> {
  const task = `task ${op.taskId}`;
  switch (out.status) {
    case 'added':
    case 'duplicate':
      return { ok: true, first: out.first, count: out.count };
    case 'conflict':
      return {
        ok: false,
        code: 'idempotency_conflict',
        message: `ctx.add key ${JSON.stringify(op.key)} of ${task} first added ${out.count} tasks (indexes from ${out.first}); this call adds ${op.inputs.length}, so nothing was added: a repeated add (a run of the task again) must add as many inputs under a key as the first. Give adds that change from run to run keys of their own (ctx.add(inputs, { key }))`,
      };
    case 'stale':
    case 'already_final':
      return fenceRefusal(out.status, op, 'add');
  }
}

/**
 * The answer to an add or a spawn whose fence did not hold: the attempt no
 * longer holds its lease (`stale`), or its task has ended (`already_final`).
 * Nothing was made either way; the code is `stale_attempt`.
 */
export function fenceRefusal(
  status: 'stale' | 'already_final',
  op: { taskId: number; attempt: number },
  call: 'add' | 'spawn',
): { ok: false; code: 'stale_attempt'; message: string } {
  const [calls, made] = call === 'add' ? ['adds', 'added'] : ['spawns', 'spawned'];
  const message =
    status === 'stale'
      ? `task ${op.taskId} attempt ${op.attempt} no longer holds its lease on this worker (the task went back to pending or to another run): its ${calls} no longer count, nothing was ${made}`
      : `task ${op.taskId} has ended (its group was canceled or failed fast, or the coordinator failed the run): nothing was ${made}`;
  return { ok: false, code: 'stale_attempt', message };
}
