/**
 * The election on its own, against a real PostgreSQL (REGROUP_PG_URL, default
 * the local `test` database): fails, never skips, when it is not reachable.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { FaultyProxy } from '../testing/proxy.js';
import type { LeaderState } from './leadership.js';
import { PostgresLeadership, type PostgresLeadershipOptions } from './postgres-leader.js';
import { applicationNameFor } from './postgres-keys.js';

const PG_URL = process.env['REGROUP_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `regroup_leader_t_${process.pid}`;

async function sql(text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
  await c.connect();
  try {
    return await c.query(text, params);
  } finally {
    await c.end();
  }
}

/** A candidate with a log of the states it was told. */
function candidate(
  id: string,
  o: Partial<PostgresLeadershipOptions> = {},
): { l: PostgresLeadership; states: LeaderState[]; last: () => LeaderState | undefined } {
  const states: LeaderState[] = [];
  const l = new PostgresLeadership({
    url: PG_URL,
    schema,
    applicationName: `regroup:${id}`,
    pollMs: 100,
    renewMs: 200,
    leaseMs: 1200,
    marginMs: 300,
    queryTimeoutMs: 500,
    ...o,
  });
  l.start({ id, url: `http://${id}.test:7070` }, async (s) => {
    states.push(s);
  });
  return { l, states, last: () => states[states.length - 1] };
}

async function until<T>(
  what: string,
  fn: () => T | Promise<T>,
  ms = 10_000,
): Promise<NonNullable<T>> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function reset(): Promise<void> {
  await sql(`UPDATE leader SET epoch = 0, holder = NULL, address = NULL, since = NULL`);
  await sql(
    `UPDATE leader_lease SET holder = NULL, pid = NULL, app_name = NULL, expires_at = NULL`,
  );
}

void describe('PostgresLeadership', () => {
  before(async () => {
    try {
      await sql('SELECT 1');
    } catch (e) {
      throw new Error(
        `PostgreSQL is not reachable at ${PG_URL} (${(e as Error).message}): start it or set REGROUP_PG_URL`,
      );
    }
    // The two tables of the store's first migration that the election uses.
    await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await sql(`CREATE SCHEMA ${schema}`);
    await sql(`CREATE TABLE leader (id smallint PRIMARY KEY CHECK (id = 1), epoch bigint NOT NULL,
      holder text, address text, since bigint); INSERT INTO leader (id, epoch) VALUES (1, 0);
      CREATE TABLE leader_lease (id smallint PRIMARY KEY CHECK (id = 1), holder text, pid integer,
      app_name text, expires_at timestamptz); INSERT INTO leader_lease (id) VALUES (1);`);
  });
  after(async () => {
    await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  });

  void it('one of several candidates leads; the others name it; its stop hands over with a new epoch', async () => {
    await reset();
    const cs = ['a', 'b', 'c'].map((id) => candidate(id));
    try {
      const leader = await until('one leader, two standbys naming it', () => {
        const ls = cs.filter((c) => c.last()?.role === 'leader');
        if (ls.length !== 1) return null;
        const url = ls[0]!.last()!.leaderUrl;
        const named = cs.every((c) => c.last()?.leaderUrl === url);
        return named ? ls[0]! : null;
      });
      assert.equal(leader.last()!.epoch, 1);
      assert.equal(cs.flatMap((c) => c.states.filter((s) => s.role === 'leader')).length, 1);
      const row = (await sql('SELECT epoch, holder FROM leader')).rows[0] as {
        epoch: string;
        holder: string;
      };
      assert.equal(Number(row.epoch), 1);
      assert.equal(`http://${row.holder}.test:7070`, leader.last()!.leaderUrl);
      const t0 = Date.now();
      await leader.l.stop();
      const next = await until('a standby leads', () =>
        cs.find((c) => c !== leader && c.last()?.role === 'leader'),
      );
      assert.equal(next.last()!.epoch, 2);
      assert.ok(Date.now() - t0 < 2000, `took over in ${Date.now() - t0} ms`);
    } finally {
      await Promise.all(cs.map((c) => c.l.stop()));
    }
  });

  void it('lost() steps down at once and campaigns again', async () => {
    await reset();
    const a = candidate('a');
    try {
      await until('a leads', () => a.last()?.role === 'leader');
      a.l.lost('the store said not_leader');
      await until('a steps down', () => a.states.some((s) => s.role === 'standby'));
      await until('a leads again with a new epoch', () => a.last()?.epoch === 2);
      assert.equal(a.last()!.role, 'leader');
    } finally {
      await a.l.stop();
    }
  });

  void it('a leader cut off from the database steps down before its lease ends; a standby ends its session and leads', async () => {
    await reset();
    const target = new URL(PG_URL);
    const proxy = new FaultyProxy({
      targetHost: target.hostname,
      targetPort: Number(target.port || 5432),
    });
    const p = await proxy.start();
    const via = new URL(PG_URL);
    via.hostname = p.host;
    via.port = String(p.port);
    const a = candidate('a', { url: via.toString() });
    let b: ReturnType<typeof candidate> | null = null;
    try {
      await until('a leads', () => a.last()?.role === 'leader');
      b = candidate('b');
      await until('b stands by', () => b!.last()?.leaderUrl === 'http://a.test:7070');
      const cut = Date.now();
      proxy.blackhole(true);
      await until('a steps down', () => a.last()?.role === 'standby');
      const down = Date.now() - cut;
      await until('b leads', () => b!.last()?.role === 'leader');
      const up = Date.now() - cut;
      // a stops at lease - margin after its last renewal; b only after the lease ran out.
      assert.ok(down <= 1200, `a stepped down ${down} ms after the cut`);
      assert.ok(up >= down, `b led (${up} ms) after a stepped down (${down} ms)`);
      assert.equal(b.last()!.epoch, 2);
      const lease = (await sql('SELECT holder FROM leader_lease')).rows[0] as { holder: string };
      assert.equal(lease.holder, 'b');
    } finally {
      proxy.heal();
      proxy.cutAll();
      await Promise.all([a.l.stop(), b?.l.stop()]);
      await proxy.stop();
    }
  });

  void it('application names name the schema, and fit PostgreSQL 63 bytes for the longest id', () => {
    const id = 'x'.repeat(48);
    assert.ok(applicationNameFor('regroup', id).length <= 63);
    assert.notEqual(applicationNameFor('a', 'c1'), applicationNameFor('b', 'c1'));
    assert.match(applicationNameFor('regroup', 'c1'), /^regroup:[0-9a-f]{6}:c1$/);
  });

  void it('refuses a lease that leaves no time to renew', () => {
    assert.throws(
      () =>
        new PostgresLeadership({
          url: PG_URL,
          applicationName: 'x',
          renewMs: 1000,
          leaseMs: 1500,
          marginMs: 1000,
        }),
      /must be larger than renewMs/,
    );
  });
});
