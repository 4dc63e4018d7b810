/**
 * How the CLI shows groups, workers and tasks to a person: tables and short
 * summaries. Pure functions of the views and `now`, so they are tested
 * without a coordinator. (`--json` prints the views themselves.)
 */
import { fileURLToPath } from 'node:url';
import type {
  CancelReply,
  GroupView,
  RetryReply,
  TaskError,
  TaskView,
  WorkerView,
} from '../client/index.js';
import { ago, formatTable } from './table.js';

/** Why a group waits: no connected worker can run its pending tasks (GroupView.waiting). */
export type Waiting = NonNullable<GroupView['waiting']>;

/** Share of a group's tasks that are final, "0%".."100%" (a group with no tasks: "-" until done). */
export function progressPercent(g: GroupView): string {
  if (g.total === 0) return g.done ? '100%' : '-';
  const final = g.succeeded + g.failed + g.canceled;
  // Never round up to 100% while something is outstanding.
  const pct = Math.floor((100 * final) / g.total);
  return `${pct}%`;
}

/**
 * One row per group. Trees add columns only when the page has them: PARENT
 * (the group that spawned it; "-" for a client's group) when a group of the
 * page has a parent, CHILDREN (how many groups its tasks spawned) when one
 * has children; a flat page looks as it always did.
 */
export function groupsTable(groups: readonly GroupView[], now: number): string {
  const parents = groups.some((g) => g.parent);
  const children = groups.some((g) => (g.children ?? 0) > 0);
  const header = [
    'GROUP',
    ...(parents ? ['PARENT'] : []),
    'HANDLER',
    'STATE',
    'PROGRESS',
    'OK',
    'FAILED',
    'RUNNING',
    'PENDING',
    'CANCELED',
    'TOTAL',
    ...(children ? ['CHILDREN'] : []),
    'CREATED',
  ];
  const rows = groups.map((g) =>
    cells([
      g.id,
      ...(parents ? [g.parent?.groupId ?? '-'] : []),
      g.handler,
      g.waiting ? `${g.state} (waiting)` : g.state,
      progressPercent(g),
      ...[g.succeeded, g.failed, g.running, g.pending, g.canceled, g.total].map(String),
      ...(children ? [g.children === undefined ? '-' : String(g.children)] : []),
      ago(now - g.createdAt),
    ]),
  );
  return formatTable(header, rows);
}

/**
 * STATE is alive, suspect, draining or dead; SLOTS is slots in use / slots,
 * and `+N waiting` for handlers waiting on their children with their slot
 * given back; HEARTBEAT the age of the last message.
 */
export function workersTable(workers: readonly WorkerView[]): string {
  const header = ['WORKER', 'NAME', 'STATE', 'HEARTBEAT', 'SLOTS', 'DONE', 'HANDLERS'];
  const rows = workers.map((w) =>
    cells([
      w.workerId,
      w.name,
      w.connected || w.health === 'dead' ? w.health : `${w.health} (disconnected)`,
      ago(w.lastSeenAgoMs),
      `${w.running}/${w.slots}${(w.waiting ?? 0) > 0 ? ` +${w.waiting} waiting` : ''}`,
      String(w.tasksDone),
      w.handlers.join(','),
    ]),
  );
  return formatTable(header, rows);
}

/** Longest error message shown in a table cell; `--json` has it whole. */
const ERROR_WIDTH = 60;

export interface TasksTableOptions {
  /** Under a task's row: its whole stack, not only the frame where the handler threw. */
  stacks?: boolean;
}

/**
 * One row per task; under the row of a task that has not succeeded, where
 * its last error was thrown (the first frame in the user's code), or with
 * `stacks` the whole stack, indented. Every string from the coordinator is
 * shown printable (see `printable`).
 */
export function tasksTable(
  tasks: readonly TaskView[],
  now: number,
  o: TasksTableOptions = {},
): string {
  const header = ['INDEX', 'TASK', 'STATE', 'ATTEMPT', 'WORKER', 'DURATION', 'ERROR'];
  const rows = tasks.map((t) =>
    cells([
      String(t.index),
      String(t.taskId),
      t.state,
      String(t.attempt),
      t.workerId ?? '-',
      taskDuration(t, now),
      t.error ? clip(errorText(t.error), ERROR_WIDTH) : '',
    ]),
  );
  const [head = '', ...lines] = formatTable(header, rows).split('\n');
  const out = [head];
  lines.forEach((line, i) => {
    out.push(line);
    const t = tasks[i];
    if (t?.error?.stack === undefined || t.state === 'succeeded') return;
    const stack = o.stacks === true ? t.error.stack.split('\n') : [throwSite(t.error.stack)];
    for (const l of stack) out.push(`  ${printable(readablePaths(l.trim()))}`);
  });
  return out.join('\n');
}

/** `kind: message`, with the error's class when it says more than `Error`. */
function errorText(e: TaskError): string {
  const name = e.name !== undefined && e.name !== 'Error' ? `${e.name}: ` : '';
  return `${e.kind}: ${name}${e.message}`;
}

/**
 * The frame of a stack where the handler threw: the first one outside Node
 * itself and node_modules (the first frame when every one is), else the
 * stack's first line.
 */
export function throwSite(stack: string): string {
  const frames = stack.split('\n').filter((l) => /^\s*at /.test(l));
  const own = frames.find((f) => !/\(?node:|[\\/]node_modules[\\/]/.test(f));
  return (own ?? frames[0] ?? stack.split('\n')[0] ?? '').trim();
}

/** `file:///home/a/h.js:3:9` as `/home/a/h.js:3:9`, shorter and clickable in a terminal. */
function readablePaths(line: string): string {
  return line.replace(/file:\/\/[^\s)]+/g, (url) => {
    try {
      return fileURLToPath(url);
    } catch {
      return url;
    }
  });
}

/** How long the last run took (a running task: so far); "-" when it never ran or its end is unknown. */
export function taskDuration(t: TaskView, now: number): string {
  const start = t.startedAt ?? null;
  if (start === null) return '-';
  if (t.state === 'running') return duration(now - start);
  const end = t.finishedAt ?? null;
  return end === null || end < start ? '-' : duration(end - start);
}

/** "850ms", "4.2s", "3m05s", "2h10m". */
export function duration(ms: number): string {
  const v = Math.max(0, Math.round(ms));
  if (v < 1000) return `${v}ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(1)}s`;
  const s = Math.floor(v / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One line of at most `width` characters, printable (escapes count in the width). */
function clip(s: string, width: number): string {
  const flat = printable(s.replace(/\s+/g, ' '));
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}

/** The cells of a table row, printable. */
function cells(row: readonly string[]): string[] {
  return row.map(printable);
}

/** One line: the group's id, state and counters. */
export function groupLine(g: GroupView): string {
  const counts = `${g.succeeded} succeeded, ${g.failed} failed, ${g.canceled} canceled, ${g.running} running, ${g.pending} pending`;
  return `group ${g.id}: ${g.state} (${counts}; ${g.total} tasks)`;
}

/** `cancel`'s line: the group, then how many groups under it the cancel ended (when any). */
export function cancelLine(r: CancelReply): string {
  if (r.descendants === 0) return groupLine(r);
  const n = r.descendants === 1 ? '1 descendant group' : `${r.descendants} descendant groups`;
  return `${groupLine(r)}; ${n} canceled with it`;
}

export function retryLine(id: string, r: RetryReply): string {
  if (r.retried === 0) return `group ${id}: no failed tasks, nothing retried (${r.group.state})`;
  const n = r.retried === 1 ? '1 failed task' : `${r.retried} failed tasks`;
  return `group ${id}: ${n} back to pending; the group is ${r.group.state} again`;
}

/**
 * A string for a terminal: control characters (a user-given label, a worker
 * name or an error message may hold escape sequences or newlines) and the
 * invisible characters that reorder or break lines (bidi controls, line and
 * paragraph separators) are shown as `\u001b`, never sent as such. `--json`
 * output is never passed through this: it stays exact.
 */
export function printable(s: string): string {
  return s.replace(
    /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** The line `submit` prints when its group starts waiting: `waiting: <what is missing>`. */
export function waitingLine(w: Waiting): string {
  return `waiting: ${printable(w.message)}`;
}

/** What an operator can do about a waiting group, one line. Names are quoted as JSON (they are user-given). */
export function waitingFix(g: Pick<GroupView, 'id' | 'handler' | 'options'>, w: Waiting): string {
  const handler = JSON.stringify(g.handler);
  const requires = g.options.requires;
  const labels = requires.length === 0 ? '' : ` and --labels ${printable(requires.join(','))}`;
  const worker = `start a worker whose handler module exports ${handler}${labels}`;
  const cancel = `or cancel the group (regroup cancel ${g.id})`;
  switch (w.code) {
    case 'no_worker':
      return `${worker} (regroup worker --url <coordinator> --handlers <module>)`;
    case 'no_handler':
      return `${worker}, ${cancel} and submit again with the right --handler`;
    case 'no_label':
      return `${worker}, ${cancel}`;
  }
}

/**
 * When the coordinator gives up on a waiting group (its scheduleTimeoutMs
 * runs out: the pending tasks fail as unschedulable); null when it waits forever.
 */
export function waitingDeadline(
  g: Pick<GroupView, 'options'>,
  w: Waiting,
  now: number,
): string | null {
  const limit = g.options.scheduleTimeoutMs;
  if (limit <= 0) return null;
  const left = w.since + limit - now;
  const when = left > 0 ? `in ${duration(left)}` : 'now';
  return `${when}: its pending tasks fail as unschedulable (scheduleTimeoutMs ${limit})`;
}

/** The lines `submit` prints on stderr when its group starts waiting: the reason, then what to do. */
export function waitingLines(
  g: Pick<GroupView, 'id' | 'handler' | 'options'>,
  w: Waiting,
  now: number,
): string[] {
  const lines = [waitingLine(w), `  to fix: ${waitingFix(g, w)}`];
  const deadline = waitingDeadline(g, w, now);
  if (deadline !== null) lines.push(`  gives up ${deadline}`);
  return lines;
}

/** Most waiting groups named under a table of groups; the rest are counted. */
const WAITING_NOTES_MAX = 10;

/** Lines under a table of groups: why each waiting group waits (none when no group waits). */
export function waitingNotes(groups: readonly GroupView[]): string[] {
  const waiting = groups.filter((g) => g.waiting);
  if (waiting.length === 0) return [];
  const lines = waiting
    .slice(0, WAITING_NOTES_MAX)
    .map((g) => `group ${g.id} waits: ${printable(g.waiting!.message)}`);
  const more = waiting.length - WAITING_NOTES_MAX;
  if (more > 0) lines.push(`and ${more} more waiting groups (regroup status <group> says why)`);
  return ['', ...lines];
}
