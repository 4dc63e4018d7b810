/**
 * The bounded fault run of `npm test`: every kind of fault, at least 200 of
 * them, then the checker must find nothing lost, nothing committed twice, no
 * stale result accepted, every group resolved, no healthy worker declared
 * dead, no run past its limit, no child added twice and no parent done
 * before its children (with worker deaths, limited runs, and trees grown by
 * ctx.add and ctx.spawn, some of whose adds and spawns were made again by a
 * later attempt, to judge).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { formatChaos, runChaos } from '../src/testing/chaos/harness.js';
import { FAULT_KINDS } from '../src/testing/chaos/nemesis.js';

const seed = Number(process.env['REGROUP_CHAOS_SEED'] ?? 20261126);

it(
  `fault run (seed ${seed}): 200+ faults of every kind, checker clean`,
  { timeout: 9 * 60_000 },
  async () => {
    const result = await runChaos({
      seed,
      minutes: 3,
      requireNetns: process.env['CI'] !== undefined,
      log: () => {},
    });
    process.stdout.write(formatChaos(result) + '\n');
    const total = Object.values(result.faults).reduce((a, b) => a + b, 0);
    assert.ok(total >= 200, `only ${total} faults were injected`);
    for (const kind of FAULT_KINDS)
      assert.ok((result.faults[kind] ?? 0) > 0, `no ${kind} fault was injected`);
    const c = result.report.counts;
    assert.deepEqual(
      [c.lost, c.committed_twice, c.stale_accepted, c.wait_unresolved],
      [0, 0, 0, 0],
      'lost, committed twice, stale accepted, unresolved',
    );
    assert.ok(
      result.report.ok,
      result.report.anomalies
        .slice(0, 10)
        .map((a) => `${a.kind}: ${a.detail}`)
        .join('\n'),
    );
    assert.ok(result.report.groups > 0 && result.report.tasks > 0);
    // The death and run-limit checks had something to judge.
    assert.ok(result.report.judged.deaths > 0, 'no worker death to judge');
    assert.ok(result.report.judged.limitedRuns > 0, 'no run with a limit to judge');
    const t = result.report.trees;
    assert.ok(
      t.grownGroups > 0 && t.addsRepeated > 0,
      `no add made again to judge: ${JSON.stringify(t)}`,
    );
    assert.ok(
      t.childGroups > 0 && t.spawnsRepeated > 0,
      `no spawn made again to judge: ${JSON.stringify(t)}`,
    );
    assert.ok(t.waitedParents > 0, 'no parent that waited on its children to judge');
  },
);
