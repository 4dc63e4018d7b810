import { Command } from 'commander';
import type { ChildrenPage, Client, GroupView } from '../client/index.js';
import {
  COMMAND_RECONNECT_FOR_MS,
  integer,
  makeClient,
  reportError,
  withConnectionOptions,
  type ConnectionOptions,
} from './common.js';
import { formatTable } from './table.js';
import {
  duration,
  groupsTable,
  printable,
  progressPercent,
  waitingDeadline,
  waitingFix,
  waitingNotes,
  workersTable,
} from './views.js';
import { interruptSignal, watch } from './watch.js';

export interface StatusFlags extends ConnectionOptions {
  limit: number;
  watch?: boolean;
  interval: number;
}

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('without a group id: the workers and the recent groups; with one: that group')
    .argument('[groupId]', 'a group id')
    .option('--limit <n>', 'how many recent groups', integer(1), 20)
    .option('--watch', 'redraw until Ctrl-C (the screen is cleared only on a terminal)')
    .option('--interval <ms>', 'with --watch: time between redraws', integer(100), 1000);
  withConnectionOptions(cmd).addHelpText(
    'after',
    '\nWith --json: {"workers":[WorkerView],"groups":[GroupView]} (with a group id, the GroupView);' +
      ' with --watch, one such line per redraw. See docs/cli.md.',
  );
  return cmd.action(async (groupId: string | undefined, flags: StatusFlags) => {
    process.exitCode = await runStatus(groupId, flags);
  });
}

export async function runStatus(groupId: string | undefined, flags: StatusFlags): Promise<number> {
  const json = flags.json === true;
  const client = makeClient(flags, COMMAND_RECONNECT_FOR_MS);
  const frame = (): Promise<string> =>
    groupId === undefined
      ? overview(client, flags.limit, json)
      : groupStatus(client, groupId, json);
  try {
    if (flags.watch !== true) {
      process.stdout.write(`${await frame()}\n`);
      return 0;
    }
    const { signal, dispose } = interruptSignal();
    // Ctrl-C also ends a request in flight (it rejects with `closed`).
    signal.addEventListener('abort', () => client.close());
    try {
      return await watch(frame, {
        intervalMs: flags.interval,
        out: process.stdout,
        clear: process.stdout.isTTY === true && !json,
        json,
        signal,
      });
    } finally {
      dispose();
    }
  } catch (e) {
    return reportError(e, json);
  } finally {
    client.close();
  }
}

/** Children shown under `status <group>`; `regroup groups --parent` lists them all. */
const CHILDREN_SHOWN = 5;

async function groupStatus(client: Client, id: string, json: boolean): Promise<string> {
  const group = client.group(id);
  const g = await group.status();
  if (json) return JSON.stringify(g);
  const text = describeGroup(g);
  if ((g.children ?? 0) === 0) return text;
  const page = await group.children({ limit: CHILDREN_SHOWN });
  return [text, '', ...childrenLines(g, page)].join('\n');
}

/** The first children of a group under its description: a table, and where the rest are. */
export function childrenLines(g: GroupView, page: ChildrenPage, now = Date.now()): string[] {
  const n = g.children ?? page.groups.length;
  const first = page.next === null ? '' : `; the first ${page.groups.length}`;
  const lines = [`children (${n}${first}, oldest first)`];
  if (page.groups.length === 0) return [...lines, '  none left'];
  lines.push(groupsTable(page.groups, now));
  if (page.next !== null) lines.push(`more: regroup groups --parent ${g.id} --after ${page.next}`);
  return lines;
}

async function overview(client: Client, limit: number, json: boolean): Promise<string> {
  // The clients' groups: a tree's children would crowd them out (`regroup groups --all` has them).
  const [workers, groups] = await Promise.all([
    client.workers(),
    client.listGroups({ limit, roots: true }),
  ]);
  if (json) return JSON.stringify({ workers, groups });
  return [
    `workers (${workers.length})`,
    workers.length === 0 ? '  none' : workersTable(workers),
    '',
    `groups (${groups.length} most recent)`,
    groups.length === 0 ? '  none' : groupsTable(groups, Date.now()),
    ...waitingNotes(groups),
  ].join('\n');
}

/** One group, a row per field; a waiting group says why, since when, what to do and when it gives up. */
export function describeGroup(g: GroupView, now = Date.now()): string {
  const rows: [string, string][] = [
    ['group', g.id],
    ['handler', printable(g.handler)],
    ['state', g.done || g.state === 'done' ? g.state : `${g.state} (not done)`],
    ['policy', g.policy],
    ['progress', progressPercent(g)],
    ['total', String(g.total)],
    ['pending', String(g.pending)],
    ['running', String(g.running)],
    ['succeeded', String(g.succeeded)],
    ['failed', String(g.failed)],
    ['canceled', String(g.canceled)],
    ['created', new Date(g.createdAt).toISOString()],
  ];
  // Where it sits in a tree: the task that spawned it, and how many groups its tasks spawned.
  if (g.parent) rows.splice(1, 0, ['parent', `${g.parent.groupId} (task ${g.parent.taskId})`]);
  if (g.children !== undefined) rows.push(['children', String(g.children)]);
  if (g.finishedAt !== null) rows.push(['finished', new Date(g.finishedAt).toISOString()]);
  const w = g.waiting;
  if (w) {
    const since = `${duration(now - w.since)} (since ${new Date(w.since).toISOString()}, ${w.code})`;
    rows.push(
      ['waiting', printable(w.message)],
      ['waiting for', since],
      ['to fix', waitingFix(g, w)],
    );
    const deadline = waitingDeadline(g, w, now);
    if (deadline !== null) rows.push(['gives up', deadline]);
  }
  return formatTable(['', ''], rows).split('\n').slice(1).join('\n');
}
