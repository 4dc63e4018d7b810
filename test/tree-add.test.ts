/**
 * Trees of tasks, first slice (issue 14, item 1): a running task adds tasks
 * to its own group with ctx.add. Real processes and a real SQLite file: a
 * crawler-style group grows from 1 task to 31, and a worker killed between a
 * parent's committed add and its result leaves the group with 31 tasks all
 * the same (the parent runs again elsewhere and its add, by key, adds nothing).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '../src/client/index.js';
import type { EventView } from '../src/protocol/http.js';
import { startServer, startWorker } from '../src/testing/procs.js';
import { fixture, realProcessesWithClients } from './real-processes.js';

const HANDLERS = fixture('tree-handlers.js');
const tmp = realProcessesWithClients('regroup-tree-');

/** What the crawl handler returns. */
interface Page {
  path: string;
  depth: number;
  index: number;
  added: { first: number; count: number } | null;
}

interface RunLine {
  taskId: number;
  index: number;
  attempt: number;
  pid: number;
  path: string;
  added: Page['added'];
}

const MAX_DEPTH = 4;
/** 1 + 2 + 4 + 8 + 16 pages. */
const PAGES = 31;

function readRuns(file: string): RunLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as RunLine);
}

async function events(url: string, type: string): Promise<EventView[]> {
  const r = await fetch(`${url}/v1/events?after=0&limit=1000`);
  assert.equal(r.status, 200);
  const body = (await r.json()) as { events: EventView[] };
  return body.events.filter((e) => e.type === type);
}

/**
 * Every page once, in index order, and each parent's add names its two
 * children: the results at indexes first and first + 1 are its links.
 */
function checkTree(results: Page[]): void {
  assert.equal(results.length, PAGES, 'every page has one result');
  assert.equal(new Set(results.map((r) => r.path)).size, PAGES, 'no page twice');
  results.forEach((r, i) => {
    assert.equal(r.index, i, 'results come in index order');
    if (r.depth === MAX_DEPTH) {
      assert.equal(r.added, null);
      return;
    }
    assert.ok(r.added, `page ${r.path} added its links`);
    assert.equal(r.added.count, 2);
    assert.equal(results[r.added.first]?.path, `${r.path}0`);
    assert.equal(results[r.added.first + 1]?.path, `${r.path}1`);
  });
}

async function crawl(url: string, root: object): Promise<{ results: Page[]; client: Client }> {
  const client = tmp.client(url);
  const group = await client.submit('crawl', [
    { path: 'r', depth: 0, maxDepth: MAX_DEPTH, ms: 20, ...root },
  ]);
  const results = (await group.wait()) as Page[];
  const status = await group.status();
  assert.deepEqual(
    [status.state, status.total, status.succeeded, status.failed],
    ['done', PAGES, PAGES, 0],
  );
  return { results, client };
}

void describe('trees: ctx.add (real processes, SQLite file)', () => {
  void it('a group grows from 1 task to 31 with ctx.add; wait() returns every result in index order', async () => {
    const { url } = await startServer(join(tmp.dir, 'grow.db'));
    for (const name of ['w1', 'w2']) await startWorker(url, HANDLERS, name, ['--concurrency', '4']);
    const { results } = await crawl(url, {});
    checkTree(results);
    const added = await events(url, 'group.tasks_added');
    assert.equal(added.length, PAGES - 16, 'one event per page that added its links');
    for (const e of added) assert.deepEqual((e.data as { count: number }).count, 2);
  });

  void it('a worker SIGKILLed after a parent add committed, before its result: the parent runs again elsewhere, the group still has 31 tasks', async () => {
    const runLog = join(tmp.dir, 'crash-runs.jsonl');
    const { url } = await startServer(join(tmp.dir, 'crash.db'));
    const env = { REGROUP_RUN_LOG: runLog };
    for (const name of ['w1', 'w2'])
      await startWorker(url, HANDLERS, name, ['--concurrency', '4'], env);
    const { results } = await crawl(url, { crash: 'r0' });
    checkTree(results);
    const runs = readRuns(runLog);
    const parent = runs.filter((r) => r.path === 'r0');
    assert.deepEqual(
      parent.map((r) => r.attempt),
      [1, 2],
      'the killed parent ran twice: attempt 1, then attempt 2',
    );
    const [first, second] = parent as [RunLine, RunLine];
    assert.notEqual(first.pid, second.pid, 'attempt 2 ran on the other worker');
    assert.deepEqual(second.added, first.added, 'attempt 2 got the indexes of attempt 1');
    // Each page ran at most twice (the dead worker's other runs go again too), never as a new task.
    const tasks = new Set(runs.map((r) => r.taskId));
    assert.equal(tasks.size, PAGES, 'handlers ran for 31 tasks, not more');
    assert.equal((await events(url, 'worker.dead')).length, 1);
    assert.equal((await events(url, 'group.tasks_added')).length, PAGES - 16);
  });
});
