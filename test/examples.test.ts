/**
 * The examples (issue 14, item 5), with real processes and a SQLite file.
 * The word count finishes with the right counts while one worker is
 * SIGKILLed in the map phase and the root task's worker in the reduce phase
 * (the root runs again elsewhere and finds its two child groups by their
 * keys); the merge sort sorts. The phases are read from the run log the
 * handlers append to (REGROUP_RUN_LOG).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, startWorker, until, type Proc } from '../src/testing/procs.js';
import type { Totals } from '../examples/wordcount/handlers.js';
import { compare, countLocally, prepareWordcount } from '../examples/wordcount/job.js';
import { chunkBoundaries, generateCorpus } from '../examples/wordcount/corpus.js';
import {
  countWords,
  keyRanges,
  mergeParts,
  partition,
  rangeOf,
} from '../examples/wordcount/words.js';
import type { Sorted } from '../examples/mergesort/handlers.js';
import { randomNumbers } from '../examples/mergesort/numbers.js';
import { readRunLog, realProcessesWithClients, serverAndWorkers } from './real-processes.js';

const example = (path: string): string =>
  fileURLToPath(new URL(`../examples/${path}`, import.meta.url));

const tmp = realProcessesWithClients('regroup-examples-');

/** A line of the run log (examples/lib/tree.ts, logRun). */
interface RunLine {
  at: number;
  pid: number;
  taskId: number;
  groupId: string;
  index: number;
  attempt: number;
  phase?: 'root' | 'map' | 'reduce';
  event: string;
  child?: string;
  /** The id of the group a spawn made. */
  spawned?: string;
}

const readRuns = (file: string): RunLine[] => readRunLog<RunLine>(file);

/** Waits for the first run-log line that `pick` accepts. */
function lineWhere(file: string, what: string, pick: (l: RunLine) => boolean): Promise<RunLine> {
  return until(what, () => readRuns(file).find(pick), 30_000, 25);
}

void describe('word count, in one process', () => {
  void it('the corpus is the same for a seed; chunks cut no word; map and reduce add up to the whole count', () => {
    const text = generateCorpus({ bytes: 200_000, seed: 5 });
    assert.equal(generateCorpus({ bytes: 200_000, seed: 5 }), text);
    assert.notEqual(generateCorpus({ bytes: 200_000, seed: 6 }), text);
    const chunks = chunkBoundaries(text, 7);
    assert.equal(chunks.length, 7);
    assert.equal(chunks[0]!.start, 0);
    assert.equal(chunks.at(-1)!.end, text.length);
    chunks.forEach((c, i) => {
      if (i > 0) assert.equal(c.start, chunks[i - 1]!.end, 'contiguous');
      assert.match(text[c.end] ?? ' ', /\s/, 'a chunk ends at whitespace or the end');
    });
    const ranges = keyRanges(5);
    assert.deepEqual(
      ranges.map((r) => `${r.from}-${r.to}`),
      ['a-e', 'f-j', 'k-o', 'p-t', 'u-z'],
    );
    for (const letter of 'abcdefghijklmnopqrstuvwxyz') rangeOf(letter, ranges);
    // Map every chunk, reduce every range: the same as counting the whole text.
    const mapped = chunks.map((c) => partition(countWords(text.slice(c.start, c.end)), ranges));
    const reduced = ranges.map((_, r) => mergeParts(mapped.map((m) => m[r]!)));
    const whole = countLocally(text, ranges, 5);
    const words = reduced.reduce((n, m) => n + [...m.values()].reduce((a, b) => a + b, 0), 0);
    assert.equal(words, whole.words);
    assert.equal(
      reduced.reduce((n, m) => n + m.size, 0),
      whole.distinct,
    );
    assert.equal(whole.top[0]?.word, 'the', 'Zipf: the most common word first');
    assert.ok(whole.distinct > 1000, `a long tail: ${whole.distinct} distinct words`);
  });
});

void describe('examples (real processes, SQLite file)', () => {
  void it(
    'word count: the right counts with a worker SIGKILLed in the map phase and the root task’s worker in the reduce phase',
    {
      timeout: 150_000,
    },
    async () => {
      const runLog = join(tmp.dir, 'wordcount-runs.jsonl');
      const env = { REGROUP_RUN_LOG: runLog };
      const handlers = example('wordcount/handlers.js');
      const { url } = await startServer(join(tmp.dir, 'wordcount.db'));
      const start = (name: string): Promise<Proc> =>
        startWorker(url, handlers, name, ['--concurrency', '8'], env);
      const pool: Proc[] = [];
      for (const name of ['w1', 'w2', 'w3', 'w4']) pool.push(await start(name));
      const byPid = (pid: number): Proc => {
        const p = pool.find((w) => w.pid === pid);
        assert.ok(p, `a worker of pid ${pid}`);
        return p;
      };

      const { job, expected } = prepareWordcount(tmp.dir, {
        bytes: 2 ** 20,
        seed: 3,
        maps: 16,
        reduces: 6,
        top: 10,
        // Long enough for a kill to land inside each phase.
        pauseMs: 500,
      });
      const client = tmp.client(url);
      const group = await client.submit('wordcount', [job]);

      // Map phase: kill a worker running a map task, not the root's.
      const root1 = await lineWhere(runLog, 'the root task', (l) => l.phase === 'root');
      const map = await lineWhere(
        runLog,
        'a map task on a worker other than the root’s',
        (l) => l.phase === 'map' && l.event === 'start' && l.pid !== root1.pid,
      );
      const mapVictim = byPid(map.pid);
      await mapVictim.kill();
      pool.push(await start('w5'));

      // Reduce phase: kill the worker of the root task, which waits on the reduce group.
      await lineWhere(runLog, 'a reduce task', (l) => l.phase === 'reduce' && l.event === 'start');
      const rootVictim = byPid(root1.pid);
      await rootVictim.kill();
      const reduceKillAt = Date.now();
      pool.push(await start('w6'));

      const [totals] = (await group.wait()) as [Totals];
      assert.deepEqual(compare(totals, expected), [], 'the counts equal the single-process count');
      assert.equal(totals.words, expected.words);
      assert.ok(totals.words > 100_000, `a real corpus: ${totals.words} words`);

      const runs = readRuns(runLog);
      const killed = new Set([mapVictim.pid, rootVictim.pid]);
      const rootStarts = runs.filter((l) => l.phase === 'root' && l.event === 'start');
      assert.deepEqual(
        rootStarts.map((l) => l.attempt),
        [1, 2],
        'the root ran twice: its worker died in the reduce phase',
      );
      assert.notEqual(rootStarts[1]!.pid, rootStarts[0]!.pid);
      const spawned = (attempt: number, child: string): string | undefined =>
        runs.find(
          (l) =>
            l.phase === 'root' &&
            l.event === 'spawned' &&
            l.attempt === attempt &&
            l.child === child,
        )?.spawned;
      assert.ok(spawned(1, 'map') && spawned(1, 'reduce'));
      assert.equal(spawned(2, 'map'), spawned(1, 'map'), 'attempt 2 found the map group');
      assert.equal(spawned(2, 'reduce'), spawned(1, 'reduce'), 'attempt 2 found the reduce group');
      assert.equal(totals.mapGroup, spawned(1, 'map'));

      for (const [phase, count] of [
        ['map', job.chunks.length],
        ['reduce', job.ranges.length],
      ] as const) {
        const lines = runs.filter((l) => l.phase === phase);
        const tasks = new Set(lines.map((l) => l.taskId));
        assert.equal(tasks.size, count, `${count} ${phase} tasks, none made twice`);
        for (const id of tasks) {
          const mine = lines.filter((l) => l.taskId === id);
          assert.ok(
            mine.some((l) => l.event === 'end'),
            `${phase} task ${id} finished`,
          );
          // Finished on a worker that lives on: its result is durable, never run again.
          const done = mine.find((l) => l.event === 'end' && !killed.has(l.pid));
          if (done)
            assert.deepEqual(
              mine.filter((l) => l.event === 'start' && l.at > done.at),
              [],
              `${phase} task ${id} ran again after it finished`,
            );
        }
      }
      assert.ok(
        runs.some((l) => l.phase === 'map' && l.attempt === 2),
        'a map task ran again: the first kill landed in the map phase',
      );
      assert.deepEqual(
        runs.filter((l) => l.phase === 'map' && l.event === 'start' && l.at >= reduceKillAt),
        [],
        'no map task ran after the root’s worker died: the re-run root found every map done',
      );
    },
  );

  void it(
    'merge sort: a tree of spawns 4 levels deep (15 waiting parents) sorts 20,000 numbers on 2 workers × 2 slots',
    { timeout: 90_000 },
    async () => {
      const handlers = example('mergesort/handlers.js');
      const { url, runLog } = await serverAndWorkers(tmp.dir, 'mergesort', handlers, {
        workers: ['s1', 's2'],
        concurrency: 2,
      });
      const client = tmp.client(url);
      const group = await client.submit('mergesort', [{ seed: 11, n: 20_000, depth: 4 }]);
      const [sorted] = (await group.wait()) as [Sorted];
      const expected = randomNumbers(11, 20_000).sort((a, b) => a - b);
      assert.equal(sorted.values.length, 20_000);
      assert.deepEqual(sorted.values, expected);
      assert.deepEqual([sorted.tasks, sorted.depth], [31, 4]);
      const runs = readRuns(runLog);
      const leaves = runs.filter((l) => l.event === 'leaf');
      assert.equal(new Set(leaves.map((l) => l.taskId)).size, 16, '16 leaves');
      assert.equal(
        new Set(runs.filter((l) => l.event === 'spawned').map((l) => l.spawned)).size,
        15,
        '15 child groups',
      );
    },
  );
});
