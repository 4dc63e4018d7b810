/**
 * The bounded PostgreSQL fault run of `npm test`: three coordinators on one
 * schema of a real PostgreSQL (REGROUP_PG_URL, default the local `test`
 * database), workers and a client following the leader, and every fault kind
 * of PostgreSQL mode at least twice, leader kills, zombie leaders and
 * database cuts among them. The checker must find nothing lost, nothing
 * committed twice, no stale result accepted, every group resolved, no healthy
 * worker declared dead, no run past its limit, no child added twice and no
 * parent done before its children (the run has trees, as in SQLite mode),
 * and every leader fault must have ended with a new leader. Fails, never skips, when
 * PostgreSQL is not reachable.
 *
 * The run is its own process (`npm run chaos`'s main, in its own process
 * group): the fault proxies live in the harness, and should one of their
 * sockets ever fail to close, that process exits all the same, where this
 * one would not. On a failure its directory (histories, harness.log,
 * coordinator logs) is kept and named.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { DEFAULT_PG_URL, type ChaosResult } from '../src/testing/chaos/harness.js';
import { PG_FAULT_KINDS } from '../src/testing/chaos/nemesis.js';
import { chaosSchema } from '../src/testing/chaos/pg-coordinators.js';
import { trackProcess } from '../src/testing/cleanup.js';
import { tempDir } from '../src/testing/procs.js';

const PG_URL = process.env['REGROUP_PG_URL'] ?? DEFAULT_PG_URL;
const seed = Number(process.env['REGROUP_CHAOS_SEED'] ?? 20261127);
const MAIN = fileURLToPath(new URL('../src/testing/chaos/main.js', import.meta.url));
const LEADER_KINDS = ['coordinator-kill', 'coordinator-kill-burst', 'leader-kill', 'leader-stop'];
/** The run's own limit: 3 minutes of faults at most, then healing, settling, checking. */
const LIMIT_MS = 7 * 60_000;

async function sql(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
    await c.query(text);
  } finally {
    await c.end().catch(() => {});
  }
}

/** Runs the harness; resolves with its result (null if it wrote none), exit code and output. */
async function faultRun(
  json: string,
): Promise<{ result: ChaosResult | null; code: number | null; out: string; err: string }> {
  const args = [
    MAIN,
    ...['--store', 'postgres', '--postgres-url', PG_URL, '--seed', String(seed)],
    ...['--minutes', '2', '--min-each-kind', '2', '--max-minutes', '3', '--keep', '--json', json],
  ];
  // Its own process group (the harness, its coordinators, workers and client), killed
  // whole at the end, or at once if this test process is interrupted.
  const child = trackProcess(
    spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] }),
    { group: true },
  );
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  // Over the limit: the whole group goes (the harness, its coordinators, workers and client).
  const killer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), LIMIT_MS);
  try {
    const code = await exited;
    return {
      result: existsSync(json) ? (JSON.parse(readFileSync(json, 'utf8')) as ChaosResult) : null,
      code,
      out,
      err,
    };
  } finally {
    clearTimeout(killer);
    try {
      process.kill(-child.pid!, 'SIGKILL'); // anything of the run still there
    } catch {
      // the group is gone, as it should be
    }
    await sql(`DROP SCHEMA IF EXISTS ${chaosSchema(seed, child.pid)} CASCADE`).catch(() => {});
  }
}

it(
  `PostgreSQL fault run (seed ${seed}): every kind twice, leader kills, checker clean`,
  { timeout: LIMIT_MS + 60_000 },
  async () => {
    try {
      await sql('SELECT 1');
    } catch (e) {
      assert.fail(
        `PostgreSQL is not reachable at ${PG_URL} (${(e as Error).message}): this test needs it; start it or set REGROUP_PG_URL`,
      );
    }
    const tmp = tempDir('regroup-chaos-pg-test-');
    let keep = '';
    try {
      const { result, code, out, err } = await faultRun(join(tmp.dir, 'result.json'));
      process.stdout.write(out);
      assert.ok(
        result,
        `the fault run ended (exit ${code}) without a result:\n${err.slice(-4000)}`,
      );
      keep = result.dir;
      const failed = Object.entries(result.failed).map(([k, n]) => `${k} ${n}`);
      const log = `\nrun directory: ${result.dir}\n${err.slice(-3000)}`;
      for (const kind of PG_FAULT_KINDS)
        assert.ok(
          (result.faults[kind] ?? 0) >= 2,
          `${kind} was injected ${result.faults[kind] ?? 0} times${log}`,
        );
      const leaderKills = LEADER_KINDS.reduce((n, k) => n + (result.faults[k] ?? 0), 0);
      assert.ok(leaderKills >= 6, `only ${leaderKills} faults killed or stopped the leader`);
      const f = result.failover!;
      assert.equal(f.timeouts, 0, `a leader fault left no leader for 30 s${log}`);
      assert.ok(f.samples >= 8, `only ${f.samples} failovers were measured`);
      assert.deepEqual(failed, [], `faults failed midway${log}`);
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
        `lost, committed twice, stale accepted, unresolved${log}`,
      );
      assert.ok(
        result.report.ok,
        result.report.anomalies
          .slice(0, 10)
          .map((a) => `${a.kind}: ${a.detail}`)
          .join('\n') + log,
      );
      assert.ok(result.report.groups > 0 && result.report.tasks > 0);
      // The death and run-limit checks had something to judge.
      assert.ok(result.report.judged.deaths > 0, 'no worker death to judge');
      assert.ok(result.report.judged.limitedRuns > 0, 'no run with a limit to judge');
      const t = result.report.trees;
      assert.ok(
        t.grownGroups > 0 && t.childGroups > 0 && t.waitedParents > 0,
        `no tree to judge: ${JSON.stringify(t)}`,
      );
      assert.equal(code, 0);
      rmSync(result.dir, { recursive: true, force: true });
      keep = '';
    } finally {
      tmp.cleanup();
      if (keep) process.stdout.write(`fault run kept in ${keep}\n`);
    }
  },
);
