/**
 * The built CLI on a tree of groups (issue 14, item 4), against a real
 * coordinator process whose SQLite file was seeded with a tree before it
 * started (test/tree-seed.ts): `groups` shows the clients' groups with their
 * children counts and stays readable with 1,000 children (`--all`: a PARENT
 * column; `--parent`: one group's children, paged), `status <group>` shows
 * its parent and first children, `cancel` says how many descendants it
 * canceled, and flags that do not go together are refused with what to do.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type { GroupView } from '../src/protocol/http.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { CLI, killAll, liveProcesses, startServer, tempDir } from '../src/testing/procs.js';
import { seedTree } from './tree-seed.js';

const N = 1000;
const kid = (i: number): string => `c${String(i).padStart(4, '0')}`;

let url = '';
const tmp = tempDir('regroup-tree-cli-');

before(async () => {
  const db = join(tmp.dir, 'tree.db');
  const seed = new SqliteStore({ path: db });
  await seed.open();
  const now = Date.now() - 60_000;
  const children = Array.from({ length: N }, (_, i) => ({
    id: kid(i),
    inputs: [i, i],
    ...(i === 0 ? { children: [{ id: 'grand' }] } : {}),
  }));
  await seedTree(seed, { id: 'root', inputs: [0, 1], children }, now);
  await seedTree(seed, { id: 'flat', inputs: [1, 2, 3] }, now + 1000);
  await seedTree(
    seed,
    { id: 'doomed', inputs: [0, 1], children: [{ id: 'd1', inputs: [0, 1] }, { id: 'd2' }] },
    now + 2000,
  );
  await seed.close();
  url = (await startServer(db)).url;
});
after(async () => {
  await killAll();
  tmp.cleanup();
  assert.equal(liveProcesses(), 0, 'a test left a process running');
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, REGROUP_URL: url, REGROUP_TOKEN: '' }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function json<T>(...args: string[]): Promise<T> {
  const r = await cli(...args, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

/** The lines of the table that opens the output (it ends at the first blank line). */
function tableLines(stdout: string): string[] {
  const lines = stdout.trimEnd().split('\n');
  const end = lines.indexOf('');
  return end < 0 ? lines : lines.slice(0, end);
}

/** The cells of a table line (columns are two spaces apart at least). */
const cells = (line: string): string[] => line.trim().split(/\s{2,}/);

void describe('regroup CLI on a tree of groups', () => {
  void it("groups: the clients' groups, newest first, with how many children each has", async () => {
    const r = await cli('groups');
    assert.equal(r.code, 0, r.stderr);
    const lines = tableLines(r.stdout);
    assert.ok(cells(lines[0]!).includes('CHILDREN'), lines[0]);
    assert.ok(!cells(lines[0]!).includes('PARENT'), 'no spawned group on this page');
    const col = cells(lines[0]!).indexOf('CHILDREN');
    const rows = lines.slice(1).map(cells);
    assert.deepEqual(
      rows.map((c) => [c[0], c[col]]),
      [
        ['doomed', '2'],
        ['flat', '0'],
        ['root', String(N)],
      ],
    );
    const page = await json<{ groups: GroupView[]; next: number | null }>('groups');
    assert.deepEqual(
      page.groups.map((g) => g.children),
      [2, 0, N],
    );
  });

  void it('groups --all: a thousand spawned groups in one table, each marked with its parent', async () => {
    const r = await cli('groups', '--all', '--limit', '1000');
    assert.equal(r.code, 0, r.stderr);
    const lines = tableLines(r.stdout);
    const head = cells(lines[0]!);
    assert.deepEqual(head.slice(0, 3), ['GROUP', 'PARENT', 'HANDLER']);
    const rows = lines.slice(1);
    assert.equal(rows.length, 1000);
    // No worker is connected: the waiting groups are named under the table, ten at most.
    assert.match(r.stdout, /^and \d+ more waiting groups/m);
    // Readable: every row has every column, one line each, no wider than its header's table.
    const width = lines[0]!.length;
    for (const row of rows) {
      assert.equal(cells(row).length, head.length, row);
      assert.ok(row.trimEnd().length <= width + 10, `row wider than the table: ${row}`);
    }
    const byId = new Map(rows.map((row) => [cells(row)[0]!, cells(row)]));
    assert.equal(byId.get('grand')?.[1], kid(0));
    assert.equal(byId.get(kid(999))?.[1], 'root');
    assert.equal(byId.get('doomed')?.[1], '-');
    assert.match(r.stdout, /^more: --after \S+$/m);
  });

  void it("groups --parent: a group's children oldest first, paged with --after", async () => {
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const args = ['groups', '--parent', 'root', '--limit', '300'];
      if (after !== null) args.push('--after', after);
      const page = await json<{ groups: GroupView[]; next: string | null }>(...args);
      seen.push(...page.groups.map((g) => g.id));
      if (page.next === null) break;
      after = page.next;
    }
    assert.deepEqual(
      seen,
      Array.from({ length: N }, (_, i) => kid(i)),
    );
    const table = await cli('groups', '--parent', 'root', '--limit', '2', '--after', kid(10));
    assert.equal(table.code, 0, table.stderr);
    const lines = tableLines(table.stdout);
    assert.deepEqual(
      lines.slice(1, 3).map((l) => cells(l).slice(0, 2)),
      [
        [kid(11), 'root'],
        [kid(12), 'root'],
      ],
    );
    assert.match(table.stdout, new RegExp(`^more: --after ${kid(12)}$`, 'm'));
    const none = await cli('groups', '--parent', 'flat');
    assert.equal(none.stdout, 'group flat has no children\n');
    const state = await json<{ groups: GroupView[] }>(
      'groups',
      '--parent',
      'root',
      '--state',
      'done',
    );
    assert.deepEqual(state.groups, []);
  });

  void it('status <group>: its parent, its children count and the first few children', async () => {
    const r = await cli('status', 'root');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^children\\s+${N}$`, 'm'));
    assert.doesNotMatch(r.stdout, /^parent/m);
    assert.match(r.stdout, new RegExp(`^children \\(${N}; the first 5, oldest first\\)$`, 'm'));
    for (let i = 0; i < 5; i++)
      assert.match(
        r.stdout,
        new RegExp(`^${kid(i)}\\s+root\\s+child\\s+sealed \\(waiting\\)\\s+\\d+%`, 'm'),
      );
    assert.doesNotMatch(r.stdout, new RegExp(kid(5)));
    assert.match(
      r.stdout,
      new RegExp(`^more: regroup groups --parent root --after ${kid(4)}$`, 'm'),
    );
    const c = await cli('status', kid(0));
    assert.match(c.stdout, /^parent\s+root \(task \d+\)$/m);
    assert.match(c.stdout, /^children\s+1$/m);
    assert.match(c.stdout, /^grand\s+c0000\s+child\s+sealed \(waiting\)/m);
    const g = await json<GroupView>('status', 'grand');
    assert.equal(g.parent?.groupId, kid(0));
    assert.equal(g.children, 0);
  });

  void it('cancel: says how many descendant groups it canceled', async () => {
    const r = await cli('cancel', 'doomed');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /^group doomed: canceled \(1 succeeded, 0 failed, 1 canceled, .*; 2 descendant groups canceled with it$/m,
    );
    for (const id of ['d1', 'd2'])
      assert.equal((await json<GroupView>('status', id)).state, 'canceled');
    const again = await json<GroupView & { descendants: number }>('cancel', 'doomed');
    assert.equal(again.descendants, 0);
  });

  void it('refuses flags that do not go together, saying what to do (exit 2)', async () => {
    const cases: [string[], RegExp][] = [
      [['groups', '--after', kid(1), '--before', '5'], /--after and --before do not go together/],
      [['groups', '--parent', 'root', '--before', '5'], /paged with --after/],
      [['groups', '--parent', 'root', '--all'], /--all and --parent do not go together/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(...args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^regroup: bad_request: /);
      assert.match(r.stderr, message);
    }
    const bad = await cli('groups', '--parent', 'root', '--after', 'flat');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /validation_failed: .*after must be the id of a child of group root/);
    const missing = await cli('groups', '--parent', 'nope');
    assert.match(missing.stderr, /^regroup: group_not_found: no group with id nope/);
  });
});
