import { Command } from 'commander';
import type { Client, GroupView, WorkerView } from '../client/index.js';
import {
  EXIT,
  integer,
  makeClient,
  reportError,
  withConnectionOptions,
  type ConnectionOptions,
} from './common.js';
import { ago, formatTable } from './table.js';

interface StatusFlags extends ConnectionOptions {
  limit: number;
}

/** A status query should not hang on a wrong URL for the SDK's default minute. */
const STATUS_RECONNECT_FOR_MS = 5_000;

export function statusCommand(): Command {
  const cmd = new Command('status')
    .description('without a group id: recent groups and the workers; with one: that group')
    .argument('[groupId]', 'a group id')
    .option('--limit <n>', 'how many recent groups', integer(1), 20);
  return withConnectionOptions(cmd).action(
    async (groupId: string | undefined, flags: StatusFlags) => {
      process.exitCode = await runStatus(groupId, flags);
    },
  );
}

export async function runStatus(groupId: string | undefined, flags: StatusFlags): Promise<number> {
  let client: Client | undefined;
  try {
    client = makeClient(flags, STATUS_RECONNECT_FOR_MS);
    const out =
      groupId === undefined
        ? await overview(client, flags.limit, flags.json === true)
        : await groupStatus(client, groupId, flags.json === true);
    process.stdout.write(`${out}\n`);
    return EXIT.ok;
  } catch (e) {
    return reportError(e, flags.json);
  } finally {
    client?.close();
  }
}

async function groupStatus(client: Client, id: string, json: boolean): Promise<string> {
  const g = await client.group(id).status();
  return json ? JSON.stringify(g) : describeGroup(g);
}

async function overview(client: Client, limit: number, json: boolean): Promise<string> {
  const [groups, workers] = await Promise.all([client.listGroups({ limit }), client.workers()]);
  if (json) return JSON.stringify({ groups, workers });
  const now = Date.now();
  return [
    `groups (${groups.length} most recent)`,
    groups.length === 0 ? '  none' : groupsTable(groups, now),
    '',
    `workers (${workers.length})`,
    workers.length === 0 ? '  none' : workersTable(workers),
  ].join('\n');
}

export function describeGroup(g: GroupView): string {
  const rows: [string, string][] = [
    ['group', g.id],
    ['handler', g.handler],
    ['state', g.done || g.state === 'done' ? g.state : `${g.state} (not done)`],
    ['policy', g.policy],
    ['total', String(g.total)],
    ['pending', String(g.pending)],
    ['running', String(g.running)],
    ['succeeded', String(g.succeeded)],
    ['failed', String(g.failed)],
    ['canceled', String(g.canceled)],
    ['created', new Date(g.createdAt).toISOString()],
  ];
  if (g.finishedAt !== null) rows.push(['finished', new Date(g.finishedAt).toISOString()]);
  return formatTable(['', ''], rows).split('\n').slice(1).join('\n');
}

export function groupsTable(groups: readonly GroupView[], now: number): string {
  const header = [
    'GROUP',
    'HANDLER',
    'STATE',
    'TOTAL',
    'PENDING',
    'RUNNING',
    'OK',
    'FAILED',
    'CANCELED',
    'CREATED',
  ];
  const rows = groups.map((g) => [
    g.id,
    g.handler,
    g.state,
    ...[g.total, g.pending, g.running, g.succeeded, g.failed, g.canceled].map(String),
    ago(now - g.createdAt),
  ]);
  return formatTable(header, rows);
}

export function workersTable(workers: readonly WorkerView[]): string {
  const header = ['WORKER', 'NAME', 'HEALTH', 'SLOTS', 'RUNNING', 'DONE', 'SEEN', 'HANDLERS'];
  const rows = workers.map((w) => [
    w.workerId,
    w.name,
    w.connected ? w.health : `${w.health} (disconnected)`,
    String(w.slots),
    String(w.running),
    String(w.tasksDone),
    ago(w.lastSeenAgoMs),
    w.handlers.join(','),
  ]);
  return formatTable(header, rows);
}
