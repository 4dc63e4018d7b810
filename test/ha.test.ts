/**
 * Several coordinators on one PostgreSQL database: one leads, the others stand
 * by. Real processes, a real PostgreSQL (REGROUP_PG_URL, default the local
 * server's `test` database). These tests fail, never skip, when PostgreSQL is
 * not reachable.
 */
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Client } from '../src/client/index.js';
import { FaultyProxy } from '../src/testing/proxy.js';
import { Proc, killAll, startWorker, tempDir, until } from '../src/testing/procs.js';

const PG_URL = process.env['REGROUP_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const HANDLERS = fileURLToPath(new URL('../../test/fixtures/fault-handlers.js', import.meta.url));

let schemaSeq = 0;
const schemas: string[] = [];
function freshSchema(): string {
  const s = `regroup_ha_${process.pid}_${schemaSeq++}`;
  schemas.push(s);
  return s;
}

async function sql(text: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL });
  await c.connect();
  try {
    await c.query(text);
  } finally {
    await c.end();
  }
}

interface Health {
  ok: boolean;
  role: 'leader' | 'standby';
  epoch: number | null;
  leader: string | null;
}

async function health(url: string): Promise<Health | null> {
  try {
    const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return (await r.json()) as Health;
  } catch {
    return null;
  }
}

/** Starts `regroup server --postgres`; resolves once it listens. */
async function startCoordinator(
  name: string,
  schema: string,
  o: { url?: string; extra?: string[] } = {},
): Promise<{ proc: Proc; url: string }> {
  const proc = new Proc(name, [
    'server',
    '--port',
    '0',
    '--postgres',
    o.url ?? PG_URL,
    '--pg-schema',
    schema,
    '--coordinator-id',
    name,
    '--log-level',
    'warn',
    ...(o.extra ?? []),
  ]);
  const m = await proc.waitFor(/listening on (http:\/\/\S+)/);
  return { proc, url: m[1]! };
}

function readRuns(file: string): { taskId: number; attempt: number; pid: number }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { taskId: number; attempt: number; pid: number });
}

/** Every index present exactly once, with the right value, and every task ran exactly once. */
function assertExactlyOnce(
  results: { index: number; value?: unknown }[],
  n: number,
  runs: { taskId: number }[],
): void {
  const seen = new Map<number, unknown>();
  for (const r of results) {
    assert.ok(!seen.has(r.index), `index ${r.index} reported twice`);
    seen.set(r.index, r.value);
  }
  assert.equal(seen.size, n, 'every task has a result');
  for (let i = 0; i < n; i++) {
    assert.equal((seen.get(i) as { square: number }).square, i * i, `result of ${i}`);
  }
  const perTask = new Map<number, number>();
  for (const r of runs) perTask.set(r.taskId, (perTask.get(r.taskId) ?? 0) + 1);
  const twice = [...perTask].filter(([, c]) => c > 1);
  assert.deepEqual(twice, [], 'no task ran twice: workers resumed their runs with the new leader');
  assert.equal(perTask.size, n, 'every task ran');
}

void describe('PostgreSQL: leader and standbys', { timeout: 180_000 }, () => {
  const tmp = tempDir('regroup-ha-');

  before(async () => {
    try {
      await sql('SELECT 1');
    } catch (e) {
      throw new Error(
        `PostgreSQL is not reachable at ${PG_URL} (${(e as Error).message}): these tests need it; start it (see .ci/run) or set REGROUP_PG_URL`,
      );
    }
  });
  afterEach(() => killAll());
  after(async () => {
    await killAll();
    for (const s of schemas) await sql(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => {});
    tmp.cleanup();
  });

  void it('coordinators started at the same moment end with exactly one leader', async () => {
    const schema = freshSchema();
    const cs = await Promise.all(
      ['c1', 'c2', 'c3'].map((n) =>
        startCoordinator(n, schema, { extra: ['--log-level', 'warn'] }),
      ),
    );
    // Every one prints its role as soon as it knows it.
    for (const c of cs) await c.proc.waitFor(/^role: (leader|standby)/);
    const roles = await until(
      'one leader, two standbys that name it',
      async () => {
        const hs = await Promise.all(cs.map((c) => health(c.url)));
        if (hs.some((h) => h === null)) return null;
        const leaders = cs.filter((_, i) => hs[i]!.role === 'leader');
        if (leaders.length !== 1) return null;
        const standbys = hs.filter((h) => h!.role === 'standby');
        return standbys.every((h) => h!.leader === leaders[0]!.url) ? hs : null;
      },
      15_000,
    );
    assert.equal(roles.filter((h) => h!.role === 'leader').length, 1);
    const leaderLines = cs.flatMap((c) => c.proc.out.filter((l) => l.startsWith('role: leader')));
    assert.equal(leaderLines.length, 1, `one coordinator ever led: ${leaderLines.join(' | ')}`);
    // A standby sends clients to the leader.
    const standby = cs.find((_, i) => roles[i]!.role === 'standby')!;
    const r = await fetch(`${standby.url}/v1/groups`);
    assert.equal(r.status, 503);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'not_leader');
    const leader = cs.find((_, i) => roles[i]!.role === 'leader')!;
    assert.equal(r.headers.get('regroup-leader'), leader.url);
    // A client that only knows the standby follows it to the leader.
    const client = new Client({ url: standby.url });
    try {
      const g = await client.submit('square', [1, 2, 3]);
      const w = await startWorker(standby.url, HANDLERS, 'w-follow');
      assert.deepEqual(await g.wait(), [1, 4, 9]);
      await w.kill();
    } finally {
      client.close();
    }
  });

  void it('SIGKILL the leader mid-group: a standby leads within 5 s, every result exactly once', async () => {
    const schema = freshSchema();
    const a = await startCoordinator('a', schema);
    await a.proc.waitFor(/^role: leader/);
    const b = await startCoordinator('b', schema);
    await b.proc.waitFor(/^role: standby/);
    const runLog = join(tmp.dir, `runs-${schema}.jsonl`);
    const urls = `${a.url},${b.url}`;
    const env = { REGROUP_RUN_LOG: runLog };
    await startWorker(urls, HANDLERS, 'w1', ['--concurrency', '4'], env);
    await startWorker(urls, HANDLERS, 'w2', ['--concurrency', '4'], env);
    const client = new Client({ url: [a.url, b.url] });
    try {
      const n = 160;
      const inputs = Array.from({ length: n }, (_, i) => ({ n: i, ms: 60 }));
      const g = await client.submit('slowSquare', inputs);
      await until('a third of the group done', async () => {
        const s = await g.status();
        return s.succeeded >= n / 3;
      });
      const killedAt = Date.now();
      await a.proc.kill();
      await b.proc.waitFor(/^role: leader/, 10_000);
      const tookMs = Date.now() - killedAt;
      assert.ok(tookMs < 5000, `the standby led ${tookMs} ms after the kill (limit 5000)`);
      const settled = await g.waitSettled();
      const bad = settled.filter((o) => o.state !== 'succeeded');
      assert.equal(bad.length, 0, JSON.stringify(bad.slice(0, 3)));
      assertExactlyOnce(settled, n, readRuns(runLog));
    } finally {
      client.close();
    }
  });

  void it('a leader cut off from the database stops writing and steps down; a standby takes over', async () => {
    const schema = freshSchema();
    const pgUrl = new URL(PG_URL);
    const proxy = new FaultyProxy({
      targetHost: pgUrl.hostname,
      targetPort: Number(pgUrl.port || 5432),
    });
    const p = await proxy.start();
    try {
      const viaProxy = new URL(PG_URL);
      viaProxy.hostname = p.host;
      viaProxy.port = String(p.port);
      const a = await startCoordinator('a', schema, { url: viaProxy.toString() });
      await a.proc.waitFor(/^role: leader/);
      const b = await startCoordinator('b', schema);
      await b.proc.waitFor(/^role: standby/);
      const runLog = join(tmp.dir, `runs-${schema}.jsonl`);
      const urls = `${a.url},${b.url}`;
      await startWorker(urls, HANDLERS, 'w1', ['--concurrency', '8'], { REGROUP_RUN_LOG: runLog });
      const client = new Client({ url: [a.url, b.url] });
      try {
        const n = 120;
        const g = await client.submit(
          'slowSquare',
          Array.from({ length: n }, (_, i) => ({ n: i, ms: 50 })),
        );
        await until(
          'a quarter of the group done',
          async () => (await g.status()).succeeded >= n / 4,
        );
        const cutAt = Date.now();
        proxy.blackhole(true);
        await a.proc.waitFor(/^role: standby/, 10_000);
        const downMs = Date.now() - cutAt;
        await b.proc.waitFor(/^role: leader/, 15_000);
        const upMs = Date.now() - cutAt;
        assert.ok(downMs < 5000, `the cut-off leader stepped down after ${downMs} ms`);
        assert.ok(upMs < 10_000, `the standby led ${upMs} ms after the cut`);
        const hb = await health(b.url);
        const settled = await g.waitSettled();
        assert.equal(settled.filter((o) => o.state !== 'succeeded').length, 0);
        assert.equal(settled.length, n);
        assert.equal(new Set(settled.map((r) => r.index)).size, n, 'every result exactly once');
        for (const r of settled) assert.equal((r.value as { square: number }).square, r.index ** 2);
        // The old leader, healed, stays a standby and names the new leader.
        proxy.heal();
        proxy.cutAll();
        const ha = await until('the old leader names the new one', async () => {
          const h = await health(a.url);
          return h?.role === 'standby' && h.leader === b.url ? h : null;
        });
        assert.ok(ha.epoch !== null && hb!.epoch !== null && ha.epoch >= hb!.epoch);
      } finally {
        client.close();
      }
    } finally {
      await proxy.stop();
    }
  });
});
