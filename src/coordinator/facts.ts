/**
 * How a fact is told: the engine's `record` writes it to the durable event
 * log, emits it in process (`fact`) and logs it, with the line this table
 * gives. Scoped loggers carry a worker's or a group's ids on every line.
 */
import type { EventData, EventType, Fact, FactScope } from '../core/events.js';
import type { LogLevel, Logger } from './options.js';

/** A recorded fact: `at` is set. */
export type RecordedFact = Fact & { at: number };

/** Level, message, and the fields when they are not the data as it is. */
type Line = readonly [LogLevel, string, Record<string, unknown>?];
type LogLine<K extends EventType> = (data: EventData[K]) => Line | null;

/**
 * The log line of each fact, or null when it is not logged. Hot facts (a
 * group created or done, a retry) are debug: one group per request is
 * common; what an operator must see is warn.
 */
const LOG_LINES: { [K in EventType]: LogLine<K> } = {
  'coordinator.started': (d) =>
    d.leases > 0 || d.workers > 0 ? ['info', 'recovered state'] : null,
  'group.created': () => ['debug', 'group created'],
  'group.waiting': () => ['warn', 'group waiting: no connected worker can run it'],
  'group.unschedulable': () => ['warn', 'schedule timeout: pending tasks failed'],
  'group.canceled': () => ['info', 'group canceled'],
  'group.retried': () => ['info', 'group retried'],
  'group.tasks_added': () => ['debug', 'a running task added tasks to its group'],
  'group.done': () => ['debug', 'group done'],
  'task.failed': () => ['info', 'task failed for good'],
  'task.retried': () => ['debug', 'task failed; it runs again'],
  'task.poisoned': () => ['warn', 'task failed for good: poison'],
  'task.lost': () => ['warn', 'a run never reached its worker; requeued'],
  'task.reassigned': () => ['debug', 'task reassigned'],
  'worker.joined': () => ['info', 'worker joined'],
  'worker.resumed': () => ['info', 'worker resumed'],
  'worker.draining': () => ['info', 'worker draining'],
  // Counts, not the task lists: a log line stays small whatever the worker held.
  'worker.dead': (d) => [
    'warn',
    'worker dead',
    { ...d, requeued: d.requeued.length, poisoned: d.poisoned.length },
  ],
  'worker.left': () => ['info', 'worker left'],
};

/** Logs a fact as its table line says, with its scope and data as fields. */
export function logFact(log: Logger, f: Fact): void {
  const line = (LOG_LINES[f.type] as LogLine<EventType>)(f.data);
  if (line === null) return;
  const [level, msg, fields] = line;
  scoped(log, f)(level, msg, fields ?? f.data);
}

/** A logger whose every line carries the scope's ids (those that are set). */
export function scoped(log: Logger, scope: FactScope): Logger {
  const ids: Record<string, unknown> = {};
  if (scope.workerId != null) ids.workerId = scope.workerId;
  if (scope.groupId != null) ids.groupId = scope.groupId;
  if (scope.taskId != null) ids.taskId = scope.taskId;
  return (level, msg, fields) => log(level, msg, { ...ids, ...fields });
}
