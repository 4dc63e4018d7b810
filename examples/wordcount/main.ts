/**
 * `npm run example:wordcount [-- --mb 4 --maps 32 --reduces 8 --workers 3 --slots 8]`
 *
 * A MapReduce word count on regroup: a coordinator (SQLite, in a temporary
 * folder) and worker processes start here; the client submits one root
 * task, which spawns one map task per chunk of a generated corpus, then one
 * reduce task per key range; it returns the totals, and this program checks
 * them against a count of the same text in this process.
 */
import { fileURLToPath } from 'node:url';
import { numberFlags, startCluster } from '../lib/cluster.js';
import type { Totals } from './handlers.js';
import { compare, DEFAULT_WORDCOUNT, prepareWordcount } from './job.js';

const HANDLERS = fileURLToPath(new URL('./handlers.js', import.meta.url));

const flags = numberFlags(process.argv.slice(2), {
  mb: DEFAULT_WORDCOUNT.bytes / 2 ** 20,
  maps: DEFAULT_WORDCOUNT.maps,
  reduces: DEFAULT_WORDCOUNT.reduces,
  top: DEFAULT_WORDCOUNT.top,
  seed: DEFAULT_WORDCOUNT.seed,
  pauseMs: 0,
  workers: 3,
  // A waiting parent holds its slot (for now): the root and its waits need one each.
  slots: 8,
});

const fmt = (n: number): string => n.toLocaleString('en-US');
const t0 = performance.now();
const elapsed = (): string => `${((performance.now() - t0) / 1000).toFixed(2)} s`;

const cluster = await startCluster({
  handlers: HANDLERS,
  workers: flags.workers,
  slots: flags.slots,
});
let ok = false;
try {
  console.log(
    `coordinator ${cluster.url} (SQLite in ${cluster.dir}), ${flags.workers} workers × ${flags.slots} slots`,
  );
  const { job, expected, bytes } = prepareWordcount(cluster.dir, {
    bytes: Math.round(flags.mb * 2 ** 20),
    seed: flags.seed,
    maps: flags.maps,
    reduces: flags.reduces,
    top: flags.top,
    pauseMs: flags.pauseMs,
  });
  console.log(
    `corpus: ${fmt(bytes)} bytes, ${fmt(expected.words)} words (seed ${flags.seed}); ${job.chunks.length} map tasks, ${job.ranges.length} reduce tasks (key ranges ${job.ranges.map((r) => `${r.from}-${r.to}`).join(' ')})`,
  );
  const started = performance.now();
  const root = await cluster.client.submit('wordcount', [job]);
  const [totals] = (await root.wait()) as [Totals];
  console.log(
    `root task ${root.id} done in ${((performance.now() - started) / 1000).toFixed(2)} s: ${fmt(totals.words)} words, ${fmt(totals.distinct)} distinct (map group ${totals.mapGroup}, reduce group ${totals.reduceGroup})`,
  );
  console.log(`top ${totals.top.length}:`);
  for (const [i, w] of totals.top.entries())
    console.log(`  ${String(i + 1).padStart(2)}. ${w.word.padEnd(12)} ${fmt(w.count).padStart(9)}`);
  const diff = compare(totals, expected);
  ok = diff.length === 0;
  if (ok)
    console.log(
      `counts match: every word's count in all ${expected.ranges.length} key ranges equals the single-process count (${elapsed()} in all)`,
    );
  else console.log(`counts DIFFER from the single-process count:\n  ${diff.join('\n  ')}`);
} finally {
  await cluster.close();
}
process.exit(ok ? 0 : 1);
