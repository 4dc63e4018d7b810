/**
 * Trees of tasks (issue 14, item 2): a running task spawns a child group with
 * ctx.spawn and waits on it through the handle. Real processes and a real
 * SQLite file: the sum of a child group; a worker SIGKILLed while the parent
 * waits and its children run (the parent runs again, finds the same child
 * group, and no finished child runs twice); canceling the root cancels every
 * descendant and aborts their running handlers; a handle reaches only the
 * groups under its own task.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { GroupView } from '../src/protocol/http.js';
import { startServer, startWorker, until } from '../src/testing/procs.js';
import {
  fixture,
  readRunLog,
  realProcessesWithClients,
  serverAndWorkers,
} from './real-processes.js';

const HANDLERS = fixture('spawn-handlers.js');
const tmp = realProcessesWithClients('regroup-spawn-');
const client = tmp.client;

interface RunLine {
  taskId: number;
  groupId: string;
  index: number;
  attempt: number;
  pid: number;
  at: number;
  event: 'start' | 'end' | 'spawned' | 'crash' | 'aborted';
  handler: string;
  child?: string;
  n?: number;
  depth?: number;
}

const readRuns = (file: string): RunLine[] => readRunLog<RunLine>(file);

interface SumResult {
  sum: number;
  child: string;
  parent: GroupView['parent'];
}

void describe('trees: ctx.spawn (real processes, SQLite file)', () => {
  void it('a task spawns a group of 5, waits on it, and returns the sum; the child records its parent', async () => {
    const { url, runLog } = await serverAndWorkers(tmp.dir, 'sum', HANDLERS, {
      workers: ['w1'],
      concurrency: 4,
    });
    const c = client(url);
    const root = await c.submit('sumOfSquares', [{ count: 5 }]);
    const [result] = (await root.wait()) as [SumResult];
    assert.equal(result.sum, 1 + 4 + 9 + 16 + 25);
    const rootTask = (await root.tasks()).tasks[0]!;
    assert.deepEqual(result.parent, { groupId: root.id, taskId: rootTask.taskId });
    const child = await c.group(result.child).status();
    assert.deepEqual([child.state, child.total, child.succeeded], ['done', 5, 5]);
    assert.deepEqual(child.parent, { groupId: root.id, taskId: rootTask.taskId });
    const starts = readRuns(runLog).filter((r) => r.handler === 'square' && r.event === 'start');
    assert.deepEqual(starts.map((r) => r.n).sort(), [1, 2, 3, 4, 5], 'each child ran once');
  });

  void it('a tree of depth 4 and fan-out 3 finishes on one worker with one slot: a waiting parent gives its slot back', async () => {
    const { url, runLog } = await serverAndWorkers(tmp.dir, 'one-slot', HANDLERS, {
      workers: ['w1'],
      concurrency: 1,
    });
    const c = client(url);
    const root = await c.submit('treeSum', [{ depth: 4, fanout: 3, leafMs: 5 }]);
    // While the parents wait, the worker shows them as waiting, beside its one busy slot.
    const seen = await until(
      'waiting handlers on the worker',
      async () => {
        const [w] = await c.workers();
        return w !== undefined && w.waiting >= 2 ? w : null;
      },
      30_000,
    );
    assert.equal(seen.slots, 1);
    assert.ok(seen.running <= 1, `at most one run holds the one slot (${seen.running})`);
    // Without the slot given back, the root would hold the only slot and wait forever.
    const [count] = (await root.wait({ signal: AbortSignal.timeout(90_000) })) as [number];
    assert.equal(count, 81, '3^4 leaves');
    const starts = readRuns(runLog).filter((r) => r.event === 'start');
    assert.equal(starts.length, 1 + 3 + 9 + 27 + 81, 'every node ran');
    assert.equal(new Set(starts.map((r) => r.taskId)).size, starts.length, 'each once');
    assert.deepEqual(
      starts.map((r) => r.attempt).filter((a) => a !== 1),
      [],
      'no run was cut short',
    );
    const [after] = await c.workers();
    assert.deepEqual([after?.running, after?.waiting], [0, 0]);
  });

  void it('a worker SIGKILLed while the parent waits and children run: the parent runs again, finds the same child group, and no finished child runs twice', async () => {
    const { url, runLog } = await serverAndWorkers(tmp.dir, 'crash', HANDLERS, {
      workers: ['w1', 'w2'],
      concurrency: 3,
    });
    const c = client(url);
    const root = await c.submit('sumOfSquares', [{ count: 8, ms: 300, crash: 2 }]);
    const [result] = (await root.wait()) as [SumResult];
    assert.equal(
      result.sum,
      [1, 2, 3, 4, 5, 6, 7, 8].reduce((a, n) => a + n * n, 0),
    );

    const runs = readRuns(runLog);
    const parentRuns = runs.filter((r) => r.handler === 'sumOfSquares' && r.event === 'spawned');
    assert.deepEqual(
      parentRuns.map((r) => r.attempt),
      [1, 2],
      'the parent ran twice: its worker was killed while it waited',
    );
    assert.notEqual(parentRuns[0]!.pid, parentRuns[1]!.pid, 'attempt 2 ran on the other worker');
    assert.equal(parentRuns[1]!.child, parentRuns[0]!.child, 'attempt 2 found the same child');
    assert.equal(result.child, parentRuns[0]!.child);

    const crash = runs.find((r) => r.event === 'crash');
    assert.ok(crash, 'the parent logged its crash');
    const endedBefore = runs.filter(
      (r) => r.handler === 'square' && r.event === 'end' && r.at <= crash.at,
    );
    assert.ok(endedBefore.length >= 2, 'children had finished before the kill');
    for (const done of endedBefore) {
      const starts = runs.filter(
        (r) => r.handler === 'square' && r.event === 'start' && r.taskId === done.taskId,
      );
      assert.equal(starts.length, 1, `child ${done.n} finished before the kill and ran once`);
    }
    const child = await c.group(result.child).status();
    assert.deepEqual([child.state, child.total, child.succeeded], ['done', 8, 8]);
  });

  void it('canceling the root cancels every descendant, and their running handlers see their signal abort', async () => {
    const { url, runLog } = await serverAndWorkers(tmp.dir, 'cancel', HANDLERS, {
      workers: ['w1', 'w2'],
      concurrency: 4,
    });
    const c = client(url);
    // 1 root, 2 nodes, 4 leaves that would run for a minute.
    const root = await c.submit('treeSum', [{ depth: 2, fanout: 2, leafMs: 60_000 }]);
    const leaves = (): RunLine[] =>
      readRuns(runLog).filter((r) => r.event === 'start' && r.depth === 0);
    await until('the 4 leaves started', () => leaves().length === 4 || null, 20_000);
    await root.cancel();
    const runs = (): RunLine[] => readRuns(runLog);
    await until(
      'all 7 running handlers saw their signal abort',
      () => runs().filter((r) => r.event === 'aborted').length === 7 || null,
      10_000,
    );
    const spawned = runs()
      .filter((r) => r.event === 'spawned')
      .map((r) => r.child!);
    assert.equal(spawned.length, 3, 'the root and its 2 children spawned');
    for (const id of spawned) {
      const g = await c.group(id).status();
      assert.equal(g.state, 'canceled', `descendant ${id} was canceled`);
      assert.equal(g.done, true);
    }
    const r = await root.status();
    assert.equal(r.state, 'canceled');
  });

  void it('a handle reaches only the groups under its own task: another group is group_not_found', async () => {
    const { url } = await startServer(join(tmp.dir, 'peek.db'));
    await startWorker(url, HANDLERS, 'w1', ['--concurrency', '4']);
    const c = client(url);
    const other = await c.submit('square', [{ n: 3 }]);
    await other.wait();
    const peek = await c.submit('peek', [{ group: other.id }]);
    const [out] = (await peek.wait()) as [{ code: string; message: string; mine: number }];
    assert.equal(out.code, 'group_not_found');
    assert.match(out.message, /under task/);
    assert.equal(out.mine, 4, 'its own child still answers');

    // The handle lists its group's children, paged; not another group's.
    const fam = await c.submit('family', [{ group: other.id }]);
    const [f] = (await fam.wait()) as [
      {
        counts: number[];
        pages: { groupId: string; taskId: number }[][];
        children: number;
        other: string | null;
      },
    ];
    assert.deepEqual(f.counts, [2, 3]);
    assert.equal(f.children, 2);
    assert.equal(f.pages.length, 2);
    const parents = f.pages.map((p) => p.map((g) => g.groupId));
    assert.deepEqual(
      parents.map((p) => p.length),
      [1, 1],
      'one child a page',
    );
    const childId = parents[0]![0]!;
    assert.equal(parents[1]![0], childId, 'both pages list children of the same group');
    assert.notEqual(f.pages[0]![0]!.taskId, f.pages[1]![0]!.taskId, 'two different children');
    assert.equal(f.other, 'group_not_found');
  });
});
