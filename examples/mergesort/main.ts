/**
 * `npm run example:mergesort [-- --n 100000 --depth 5 --workers 3 --slots 4]`
 *
 * A parallel merge sort on regroup: the root task sorts `n` numbers by
 * spawning two children for the halves, which do the same, `depth` levels
 * down (2^(depth+1) - 1 tasks); this program checks the result against
 * Array.prototype.sort.
 */
import { fileURLToPath } from 'node:url';
import { numberFlags, startCluster } from '../lib/cluster.js';
import type { Sorted } from './handlers.js';
import { randomNumbers } from './numbers.js';

const HANDLERS = fileURLToPath(new URL('./handlers.js', import.meta.url));

const flags = numberFlags(process.argv.slice(2), {
  n: 100_000,
  depth: 5,
  seed: 7,
  workers: 3,
  // Every task above the leaves holds its slot while it waits (for now): 2^depth - 1 of them.
  slots: 4,
});

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
  const started = performance.now();
  const root = await cluster.client.submit('mergesort', [
    { seed: flags.seed, n: flags.n, depth: flags.depth },
  ]);
  const [sorted] = (await root.wait()) as [Sorted];
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  console.log(
    `root task ${root.id} done in ${seconds} s: ${sorted.values.length.toLocaleString('en-US')} numbers sorted by ${sorted.tasks} tasks, ${sorted.depth} levels of spawns below the root`,
  );
  const expected = randomNumbers(flags.seed, flags.n).sort((a, b) => a - b);
  ok = sorted.values.length === expected.length && sorted.values.every((v, i) => v === expected[i]);
  console.log(
    ok
      ? 'sorted correctly: equal to Array.prototype.sort of the same numbers'
      : 'NOT sorted correctly',
  );
} finally {
  await cluster.close();
}
process.exit(ok ? 0 : 1);
