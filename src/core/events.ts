/**
 * The facts a coordinator records: one list of event types, the data each one
 * carries, and the union the recorder takes. A fact goes to the durable event
 * log (GET /v1/events, the dashboard), the in-process emitter (`fact`) and the
 * log, from one call: coordinator/facts.ts. docs/design.md, "The event log",
 * describes each one.
 */
import type { WaitingCode } from './waiting.js';
import type { FailureKind } from './types.js';

/** Every event type, by subject: the coordinator, groups, tasks, workers. */
export const EVENT_TYPES = [
  'coordinator.started',
  'group.created',
  'group.waiting',
  'group.unschedulable',
  'group.canceled',
  'group.retried',
  'group.tasks_added',
  'group.done',
  'task.failed',
  'task.retried',
  'task.poisoned',
  'task.lost',
  'task.reassigned',
  'worker.joined',
  'worker.resumed',
  'worker.draining',
  'worker.dead',
  'worker.left',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

const KNOWN: ReadonlySet<string> = new Set(EVENT_TYPES);
export function isEventType(s: string): s is EventType {
  return KNOWN.has(s);
}

/** What each event type carries in `data`. */
export interface EventData {
  /** A term began: the leases and workers it recovered from the store, and the leases whose worker was gone. */
  'coordinator.started': { leases: number; workers: number; orphans: number };
  /** A client submitted a group, or a running task spawned one (ctx.spawn): then `parent` names the task, its group and the spawn's key. */
  'group.created': {
    handler: string;
    tasks: number;
    open: boolean;
    parent?: { groupId: string; taskId: number; key: string };
  };
  /** No connected worker can run the group's pending tasks (docs/design.md, "Why a task waits"). */
  'group.waiting': { handler: string; code: WaitingCode; message: string };
  /** Its schedule timeout ran out: `failed` pending tasks failed as unschedulable. */
  'group.unschedulable': { failed: number; message: string };
  /**
   * A client canceled a live group (or one with live descendants): `canceled`
   * of its tasks are canceled, and `descendants` live groups under it
   * (spawned by its tasks, and so on down) were canceled in the same commit
   * (absent when none were).
   */
  'group.canceled': { canceled: number; descendants?: number };
  /** A client retried the group: `retried` failed tasks are pending again. */
  'group.retried': { retried: number };
  /** A running task (the fact's taskId) added `count` tasks, indexes first..first+count-1, under its add `key` (ctx.add). */
  'group.tasks_added': { key: string; first: number; count: number };
  'group.done': { total: number; succeeded: number; failed: number; canceled: number };
  /** The attempt failed for good. */
  'task.failed': { attempt: number; kind: FailureKind; error: string };
  /** The attempt failed; the task runs again at `retryAt` (ms since the epoch). */
  'task.retried': { attempt: number; kind: FailureKind; error: string; retryAt: number };
  /** Its workers died under it too many times: failed as poison. */
  'task.poisoned': { attempt: number; error: string };
  /** A run sent in a frame the worker received but does not hold: back to pending at once. */
  'task.lost': { attempt: number; frame: number | null; framesReceived: number };
  /** A task of a dead worker was sent to another worker `afterDeathMs` after the death. */
  'task.reassigned': { attempt: number; from: string; to: string; afterDeathMs: number };
  /** `previous`: the worker id it asked to resume when the resume was refused. */
  'worker.joined': { name: string; slots: number; previous?: string };
  'worker.resumed': { name: string; leases: number };
  'worker.draining': { name: string; running: number };
  /** `silentMs`: how long nothing had arrived from it; its runs went back (`requeued`) or failed as poison. */
  'worker.dead': {
    name: string;
    reason: 'disconnected' | 'silent';
    silentMs: number;
    requeued: number[];
    poisoned: number[];
  };
  'worker.left': { name: string };
}

/** What a fact is about; each is null or absent when it is not about one. */
export interface FactScope {
  workerId?: string | null;
  groupId?: string | null;
  taskId?: number | null;
}

/** One fact, typed by its event type. `at`: when it happened (ms); now when absent. */
export type Fact = {
  [K in EventType]: FactScope & { type: K; data: EventData[K]; at?: number };
}[EventType];

/** A fact's type and data, for building one before its scope is known. */
export function fact<K extends EventType>(
  type: K,
  data: EventData[K],
  scope: FactScope = {},
): Fact {
  return { ...scope, type, data } as Fact;
}
