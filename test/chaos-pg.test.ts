/**
 * The bounded PostgreSQL fault run of `npm test`: three coordinators on one
 * schema of a real PostgreSQL (REGROUP_PG_URL, default the local `test`
 * database), workers and a client following the leader, and every fault kind
 * of PostgreSQL mode at least twice, leader kills, zombie leaders and
 * database cuts among them. The checker must find nothing lost, nothing
 * committed twice, no stale result accepted, every group resolved, and every
 * leader fault must have ended with a new leader. Fails, never skips, when
 * PostgreSQL is not reachable.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { DEFAULT_PG_URL, formatChaos, runChaos } from '../src/testing/chaos/harness.js';
import { PG_FAULT_KINDS } from '../src/testing/chaos/nemesis.js';

const PG_URL = process.env['REGROUP_PG_URL'] ?? DEFAULT_PG_URL;
const seed = Number(process.env['REGROUP_CHAOS_SEED'] ?? 20261127);
const LEADER_KINDS = ['coordinator-kill', 'coordinator-kill-burst', 'leader-kill', 'leader-stop'];

it(
  `PostgreSQL fault run (seed ${seed}): every kind twice, leader kills, checker clean`,
  { timeout: 8 * 60_000 },
  async () => {
    const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
    } catch (e) {
      assert.fail(
        `PostgreSQL is not reachable at ${PG_URL} (${(e as Error).message}): this test needs it; start it or set REGROUP_PG_URL`,
      );
    } finally {
      await c.end().catch(() => {});
    }
    const result = await runChaos({
      seed,
      minutes: 2,
      postgres: { url: PG_URL },
      log: () => {},
    });
    process.stdout.write(formatChaos(result) + '\n');
    for (const kind of PG_FAULT_KINDS)
      assert.ok(
        (result.faults[kind] ?? 0) >= 2,
        `${kind} was injected ${result.faults[kind] ?? 0} times`,
      );
    const leaderKills = LEADER_KINDS.reduce((n, k) => n + (result.faults[k] ?? 0), 0);
    assert.ok(leaderKills >= 6, `only ${leaderKills} faults killed or stopped the leader`);
    const f = result.failover!;
    assert.equal(f.timeouts, 0, 'after every leader fault a new leader answered');
    assert.ok(f.samples >= 8, `only ${f.samples} failovers were measured`);
    // Every worker's traffic passed its own proxies (the routers found who was connecting).
    const l = result.links;
    assert.ok(
      l.workers.every((n) => n > 0),
      `connections per worker: ${l.workers.join(' ')}`,
    );
    assert.ok(l.unrouted * 50 <= l.routed, `${l.unrouted} of ${l.routed} connections not routed`);
    const counts = result.report.counts;
    assert.deepEqual(
      [counts.lost, counts.committed_twice, counts.stale_accepted, counts.wait_unresolved],
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
  },
);
