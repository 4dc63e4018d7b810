/**
 * `regroup groups`: the groups clients submitted, newest first, paged
 * (`--all`: spawned ones too; `--parent <group>`: a group's children);
 * `regroup tasks <group>`: a group's tasks, paged.
 */
import { Command, Option } from 'commander';
import type { Client, GroupState, GroupView, TaskState } from '../client/index.js';
import { RegroupError } from '../core/errors.js';
import { GROUP_STATES, TASK_STATES } from '../core/types.js';
import {
  EXIT,
  integer,
  reportError,
  runCommand,
  withConnectionOptions,
  type ConnectionOptions,
} from './common.js';
import { groupsTable, tasksTable, waitingNotes } from './views.js';

/** Groups read per request while looking for `--state` matches. */
const SCAN_PAGE = 1000;
/** Groups read at most for one `--state` answer; the rest is the next page. */
const SCAN_MAX = 10_000;

interface GroupsFlags extends ConnectionOptions {
  limit: number;
  before?: number;
  state?: GroupState;
  all?: boolean;
  parent?: string;
  after?: string;
}

export function groupsCommand(): Command {
  const cmd = new Command('groups')
    .description(
      'the groups clients submitted, newest first (--all: spawned groups too; --parent: the children of a group)',
    )
    .option('--limit <n>', 'most groups shown (1..1000)', integer(1), 20)
    .option(
      '--before <createdAt>',
      'groups created before this time (ms); to page, use --after (groups of one millisecond are not skipped)',
      integer(0),
    )
    .addOption(new Option('--state <state>', 'only groups in this state').choices(GROUP_STATES))
    .option('--all', 'every group, the ones spawned by tasks too (a PARENT column names theirs)')
    .option('--parent <groupId>', "the group's children (spawned by its tasks), oldest first")
    .option(
      '--after <groupId>',
      'paging: the groups listed after this one (the "more:" of the previous page)',
    );
  withConnectionOptions(cmd).addHelpText(
    'after',
    '\nWith --json: {"groups":[GroupView],"next":<groupId>|null}; pass next as --after for the next page.',
  );
  return cmd.action(async (flags: GroupsFlags) => {
    const misuse = groupsMisuse(flags);
    if (misuse !== null) {
      reportError(new RegroupError('bad_request', misuse), flags.json);
      process.exitCode = EXIT.usage;
      return;
    }
    process.exitCode = await runCommand(flags, async (client) => {
      const page = await listGroups(client, flags);
      if (flags.json) return JSON.stringify(page);
      const none =
        flags.parent === undefined ? 'no groups' : `group ${flags.parent} has no children`;
      const lines = [page.groups.length === 0 ? none : groupsTable(page.groups, Date.now())];
      lines.push(...waitingNotes(page.groups));
      if (page.next !== null) lines.push('', `more: --after ${page.next}`);
      return lines.join('\n');
    });
  });
}

/** Flags that do not go together, said as what to do instead; null when they are fine. */
function groupsMisuse(f: GroupsFlags): string | null {
  if (f.parent !== undefined) {
    if (f.before !== undefined)
      return "--before pages the newest-first listing; a group's children are paged with --after <the next of the previous page>";
    if (f.all === true)
      return "--all and --parent do not go together: --parent lists one group's children";
    return null;
  }
  if (f.after !== undefined && f.before !== undefined)
    return '--after and --before do not go together: page with --after <the more: of the previous page>';
  return null;
}

export interface GroupsPage {
  groups: GroupView[];
  /** The `--after` of the next page (a group id); null when there is none. */
  next: string | null;
}

/** Where a page starts: after a group (exact), or before a time (--before, coarse). */
interface Cursor {
  before?: number;
  after?: string;
}

/**
 * A page of groups: the clients' (roots) unless `all`, or a group's
 * children with `parent`. The API pages by creation time (children: by the
 * last child's id); `--state` is filtered here, reading further pages until
 * `limit` groups match (at most SCAN_MAX groups read per answer: then
 * `next` says where to go on).
 */
export async function listGroups(
  client: Client,
  o: {
    limit: number;
    before?: number;
    state?: GroupState;
    all?: boolean;
    parent?: string;
    after?: string;
  },
): Promise<GroupsPage> {
  const read = async (
    limit: number,
    c: Cursor,
  ): Promise<{ groups: GroupView[]; next: Cursor | null }> => {
    if (o.parent !== undefined) {
      const page = await client.group(o.parent).children({ limit, ...c });
      return { groups: page.groups, next: page.next === null ? null : { after: page.next } };
    }
    const groups = await client.listGroups({
      limit,
      ...(c.before === undefined ? {} : { before: c.before }),
      ...(c.after === undefined ? {} : { after: c.after }),
      ...(o.all === true ? {} : { roots: true }),
    });
    const last = groups[groups.length - 1];
    return { groups, next: groups.length === limit && last ? { after: last.id } : null };
  };
  const start: Cursor =
    o.after !== undefined
      ? { after: o.after }
      : o.before !== undefined && o.parent === undefined
        ? { before: o.before }
        : {};
  const shown = (c: Cursor | null): string | null => c?.after ?? null;
  if (o.state === undefined) {
    const page = await read(o.limit, start);
    return { groups: page.groups, next: shown(page.next) };
  }
  const out: GroupView[] = [];
  let cursor: Cursor = start;
  for (let seen = 0; seen < SCAN_MAX;) {
    const page = await read(SCAN_PAGE, cursor);
    seen += page.groups.length;
    for (const g of page.groups) {
      if (g.state !== o.state) continue;
      out.push(g);
      if (out.length === o.limit) return { groups: out, next: g.id };
    }
    if (page.next === null) return { groups: out, next: null };
    cursor = page.next;
  }
  return { groups: out, next: shown(cursor) };
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
