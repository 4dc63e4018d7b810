/** `regroup groups`: recent groups, newest first, paged; `regroup tasks <group>`: a group's tasks, paged. */
import { Command, Option } from 'commander';
import type { Client, GroupState, GroupView, TaskState } from '../client/index.js';
import { GROUP_STATES, TASK_STATES } from '../core/types.js';
import { integer, runCommand, withConnectionOptions, type ConnectionOptions } from './common.js';
import { groupsTable, tasksTable, waitingNotes } from './views.js';

/** Groups read per request while looking for `--state` matches. */
const SCAN_PAGE = 1000;
/** Groups read at most for one `--state` answer; the rest is the next page. */
const SCAN_MAX = 10_000;

interface GroupsFlags extends ConnectionOptions {
  limit: number;
  before?: number;
  state?: GroupState;
}

export function groupsCommand(): Command {
  const cmd = new Command('groups')
    .description('recent groups, newest first')
    .option('--limit <n>', 'most groups shown (1..1000)', integer(1), 20)
    .option('--before <createdAt>', 'paging: groups created before this time (ms)', integer(0))
    .addOption(new Option('--state <state>', 'only groups in this state').choices(GROUP_STATES));
  withConnectionOptions(cmd).addHelpText(
    'after',
    '\nWith --json: {"groups":[GroupView],"next":<createdAt>|null}; pass next as --before for the next page.',
  );
  return cmd.action(async (flags: GroupsFlags) => {
    process.exitCode = await runCommand(flags, async (client) => {
      const page = await listGroups(client, flags);
      if (flags.json) return JSON.stringify(page);
      const lines = [page.groups.length === 0 ? 'no groups' : groupsTable(page.groups, Date.now())];
      lines.push(...waitingNotes(page.groups));
      if (page.next !== null) lines.push('', `more: --before ${page.next}`);
      return lines.join('\n');
    });
  });
}

export interface GroupsPage {
  groups: GroupView[];
  /** The `--before` of the next page; null when there is none. */
  next: number | null;
}

/**
 * A page of groups. The API pages by creation time; `--state` is filtered
 * here, reading further pages until `limit` groups match (at most SCAN_MAX
 * groups read per answer: then `next` says where to go on).
 */
export async function listGroups(
  client: Client,
  o: { limit: number; before?: number; state?: GroupState },
): Promise<GroupsPage> {
  if (o.state === undefined) {
    const groups = await client.listGroups({ limit: o.limit, ...before(o.before) });
    const last = groups[groups.length - 1];
    return { groups, next: groups.length === o.limit && last ? last.createdAt : null };
  }
  const out: GroupView[] = [];
  let cursor = o.before;
  for (let read = 0; read < SCAN_MAX;) {
    const page = await client.listGroups({ limit: SCAN_PAGE, ...before(cursor) });
    read += page.length;
    for (const g of page) {
      if (g.state !== o.state) continue;
      out.push(g);
      if (out.length === o.limit) return { groups: out, next: g.createdAt };
    }
    const last = page[page.length - 1];
    if (page.length < SCAN_PAGE || !last) return { groups: out, next: null };
    cursor = last.createdAt;
  }
  return { groups: out, next: cursor ?? null };
}

function before(b: number | undefined): { before?: number } {
  return b === undefined ? {} : { before: b };
}

interface TasksFlags extends ConnectionOptions {
  stack?: boolean;
  limit: number;
  after?: number;
  state?: TaskState;
}

export function tasksCommand(): Command {
  const cmd = new Command('tasks')
    .description("a group's tasks in input order: state, attempt, worker, duration, error")
    .argument('<groupId>', 'a group id')
    .addOption(new Option('--state <state>', 'only tasks in this state').choices(TASK_STATES))
    .option('--limit <n>', 'most tasks shown (1..10000)', integer(1), 100)
    .option('--after <index>', 'paging: tasks with an index greater than this', integer(0))
    .option(
      '--stack',
      "under a task that did not succeed, its error's whole stack (default: where it threw)",
    );
  withConnectionOptions(cmd).addHelpText(
    'after',
    '\nWith --json: {"tasks":[TaskView],"next":<index>|null}; pass next as --after for the next page.',
  );
  return cmd.action(async (groupId: string, flags: TasksFlags) => {
    process.exitCode = await runCommand(flags, async (client) => {
      const page = await client.group(groupId).tasks({
        limit: flags.limit,
        ...(flags.after === undefined ? {} : { after: flags.after }),
        ...(flags.state === undefined ? {} : { state: flags.state }),
      });
      if (flags.json) return JSON.stringify(page);
      const what = flags.state === undefined ? 'no tasks' : `no ${flags.state} tasks`;
      const lines = [
        page.tasks.length === 0
          ? what
          : tasksTable(page.tasks, Date.now(), { stacks: flags.stack === true }),
      ];
      if (page.next !== null) lines.push('', `more: --after ${page.next}`);
      return lines.join('\n');
    });
  });
}
