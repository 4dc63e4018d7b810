/**
 * A tree of groups through the client API and the SDK (issue 14, item 4),
 * against a real coordinator on a real SQLite file in this process: a
 * group's children, paged; only the clients' groups; children counts; the
 * parent on a child; a cancel that says how many descendants it ended; bad
 * paging refused with a code and what to fix. The tree is written into the
 * store before the coordinator starts (test/tree-seed.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Client, RegroupError, type GroupView } from '../src/client/index.js';
import { Coordinator } from '../src/coordinator/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { tempDir } from '../src/testing/procs.js';
import { seedTree } from './tree-seed.js';

const tmp = tempDir('regroup-tree-api-');
let coordinator: Coordinator;
let url: string;
let client: Client;

/** root: 12 children c00..c11 (c00 with 2 of its own, c01 empty so done); other: a lone client group. */
const KIDS = Array.from({ length: 12 }, (_, i) => `c${String(i).padStart(2, '0')}`);

before(async () => {
  const path = join(tmp.dir, 'tree.db');
  const seed = new SqliteStore({ path });
  await seed.open();
  const now = Date.now() - 10_000;
  await seedTree(
    seed,
    {
      id: 'root',
      inputs: [1, 2],
      children: KIDS.map((id, i) => ({
        id,
        inputs: i === 1 ? [] : [i],
        ...(i === 0 ? { children: [{ id: 'g0' }, { id: 'g1' }] } : {}),
      })),
    },
    now,
  );
  await seedTree(seed, { id: 'other' }, now + 1);
  await seedTree(seed, {
    id: 'doomed',
    inputs: [0, 1],
    children: [{ id: 'd1', inputs: [0, 1], children: [{ id: 'd2' }] }],
  });
  await seed.close();
  coordinator = new Coordinator({ store: new SqliteStore({ path }), port: 0 });
  url = await coordinator.start();
  client = new Client({ url, reconnectForMs: 0 });
});
after(async () => {
  client.close();
  await coordinator.stop();
  tmp.cleanup();
});

async function get(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url + path);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

const ids = (gs: GroupView[]): string[] => gs.map((g) => g.id);

void describe('client API: a tree of groups', () => {
  void it("lists a group's children in creation order, paged by next, each with its own count", async () => {
    const seen: GroupView[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await client.group('root').children({ limit: 5, ...(after ? { after } : {}) });
      seen.push(...page.groups);
      if (page.next === null) break;
      assert.equal(page.next, page.groups.at(-1)?.id);
      after = page.next;
    }
    assert.deepEqual(ids(seen), KIDS);
    const c00 = seen[0]!;
    assert.deepEqual(c00.parent?.groupId, 'root');
    assert.equal(c00.children, 2);
    assert.equal(seen[1]!.state, 'done');
    assert.equal(seen[2]!.children, 0);
    // A full last page says next; the page after it is empty with next null.
    const full = await client.group('root').children({ limit: 12 });
    assert.equal(full.next, 'c11');
    assert.deepEqual(await client.group('root').children({ after: 'c11' }), {
      groups: [],
      next: null,
    });
    assert.deepEqual(ids((await client.group('c00').children()).groups), ['g0', 'g1']);
    assert.deepEqual(await client.group('other').children(), { groups: [], next: null });
  });

  void it('GET /v1/groups/{id} carries the parent and the children count', async () => {
    const root = await client.group('root').status();
    assert.equal(root.children, 12);
    assert.equal(root.parent, null);
    const g0 = await client.group('g0').status();
    assert.equal(g0.children, 0);
    assert.equal(g0.parent?.groupId, 'c00');
    assert.equal(typeof g0.parent?.taskId, 'number');
  });

  void it("lists every group, or only the clients' (roots), each with its children count", async () => {
    const all = await client.listGroups({ limit: 100 });
    assert.equal(all.length, 3 + 12 + 2 + 2);
    const roots = await client.listGroups({ limit: 100, roots: true });
    assert.deepEqual(ids(roots), ['doomed', 'other', 'root']);
    assert.deepEqual(
      roots.map((g) => g.children),
      [1, 0, 12],
    );
    for (const g of all) assert.equal(typeof g.children, 'number', g.id);
  });

  void it('pages every group newest first with after=next, none skipped though 15 share a millisecond', async () => {
    const whole = (await get('/v1/groups?limit=1000')).body as { groups: GroupView[] };
    const seen: string[] = [];
    let next: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const q: string = next === null ? '' : `&after=${next}`;
      const page = (await get(`/v1/groups?limit=4${q}`)).body as {
        groups: GroupView[];
        next: string | null;
      };
      seen.push(...ids(page.groups));
      next = page.next;
      if (next === null) break;
      assert.equal(next, page.groups.at(-1)?.id);
    }
    assert.equal(next, null, 'the listing ended');
    assert.deepEqual(seen, ids(whole.groups));
    assert.equal(new Set(seen).size, 1 + 12 + 2 + 1 + 3, 'every group once');
    // The client pages the same way.
    const first = await client.listGroups({ limit: 4 });
    const second = await client.listGroups({ limit: 4, after: first.at(-1)!.id });
    assert.deepEqual(ids([...first, ...second]), seen.slice(0, 8));
  });

  void it('refuses paging that cannot work, saying what to do', async () => {
    const cases: [string, number, string, RegExp][] = [
      ['/v1/groups?parent=nope', 404, 'group_not_found', /no group with id nope/],
      ['/v1/groups?parent=root&after=g0', 400, 'validation_failed', /child of group root/],
      ['/v1/groups?parent=root&after=zzz', 400, 'validation_failed', /zzz is no group/],
      [
        '/v1/groups?parent=root&before=5',
        400,
        'validation_failed',
        /before does not go with parent/,
      ],
      ['/v1/groups?parent=root&roots=true', 400, 'validation_failed', /roots does not go/],
      ['/v1/groups?after=c00&before=5', 400, 'validation_failed', /after and before do not go/],
      ['/v1/groups?after=zzz', 400, 'validation_failed', /zzz is no group/],
      ['/v1/groups?roots=yes', 400, 'validation_failed', /roots must be one of true, false/],
      ['/v1/groups?parent=a%20b', 400, 'validation_failed', /parent must be a group id/],
    ];
    for (const [path, status, code, message] of cases) {
      const r = await get(path);
      assert.equal(r.status, status, path);
      const e = r.body['error'] as { code: string; message: string };
      assert.equal(e.code, code, path);
      assert.match(e.message, message, path);
    }
  });

  void it('cancel says how many descendants it canceled; a second cancel none', async () => {
    const out = await client.group('doomed').cancel();
    assert.equal(out.state, 'canceled');
    assert.equal(out.descendants, 2);
    for (const id of ['d1', 'd2'])
      assert.equal((await client.group(id).status()).state, 'canceled');
    const again = await client.group('doomed').cancel();
    assert.equal(again.descendants, 0);
    // A child's cancel leaves its parent, and counts its own descendants only. c00 had
    // ended (its one task spawned and succeeded): it stays done, its live children do not.
    const c00 = await client.group('c00').cancel();
    assert.equal(c00.state, 'done');
    assert.equal(c00.descendants, 2);
    assert.equal((await client.group('root').status()).state, 'sealed');
    await assert.rejects(client.group('nope').cancel(), (e: unknown) => {
      assert.ok(e instanceof RegroupError);
      assert.equal(e.code, 'group_not_found');
      return true;
    });
  });
});
