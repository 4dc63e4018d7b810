/**
 * Leader and standby, in this process, with a Leadership the test drives and
 * a SQLite store: what a standby answers, what taking and leaving office do,
 * and that a store's `not_leader` makes the coordinator step down.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import WebSocket from 'ws';
import { Coordinator } from '../src/coordinator/index.js';
import { RegroupError } from '../src/core/errors.js';
import type { Candidate, LeaderState, Leadership } from '../src/store/leadership.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { Tick, TickOutcome } from '../src/store/store.js';
import { Worker } from '../src/worker/index.js';
import { tempDir, until } from '../src/testing/procs.js';

/** A Leadership whose states the test sets. */
class DrivenLeadership implements Leadership {
  me: Candidate | null = null;
  lostReasons: string[] = [];
  private onChange: ((s: LeaderState) => Promise<void>) | null = null;

  start(me: Candidate, onChange: (s: LeaderState) => Promise<void>): void {
    this.me = me;
    this.onChange = onChange;
  }
  lost(reason: string): void {
    this.lostReasons.push(reason);
    void this.set({ role: 'standby', epoch: null, leaderUrl: null, leaderId: null });
  }
  async stop(): Promise<void> {}
  set(s: LeaderState): Promise<void> {
    return this.onChange!(s);
  }
}

/** A SQLite store that can be told to refuse ticks as a deposed leader's store would. */
class FencedSqlite extends SqliteStore {
  refuse = false;
  epochs: number[] = [];
  async beginTerm(epoch: number): Promise<void> {
    this.epochs.push(epoch);
    this.refuse = false;
  }
  override async commitTick(tick: Tick): Promise<TickOutcome> {
    if (this.refuse) throw new RegroupError('not_leader', 'a newer epoch exists');
    return super.commitTick(tick);
  }
}

const tmp = tempDir('regroup-roles-');
const LEADER = 'http://leader.example:7070';
let leadership: DrivenLeadership;
let store: FencedSqlite;
let coordinator: Coordinator;
let url: string;
const roles: LeaderState[] = [];

before(async () => {
  leadership = new DrivenLeadership();
  store = new FencedSqlite({ path: join(tmp.dir, 'roles.db') });
  coordinator = new Coordinator({
    store,
    port: 0,
    leadership,
    coordinatorId: 'me',
    advertiseUrl: 'http://me.example:7070',
  });
  coordinator.events.on('role', (r) => roles.push(r));
  url = await coordinator.start();
});
after(async () => {
  await coordinator.stop();
  tmp.cleanup();
});

/** The status and headers of a WebSocket upgrade on the worker path. */
function upgrade(): Promise<{ status: number; leader: string | undefined; opened: boolean }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url.replace('http', 'ws') + '/v1/worker');
    ws.on('unexpected-response', (_req, res) => {
      const leader = res.headers['regroup-leader'];
      resolve({ status: res.statusCode ?? 0, leader: leader as string | undefined, opened: false });
      ws.terminate();
    });
    ws.on('open', () => {
      resolve({ status: 101, leader: undefined, opened: true });
      ws.close();
    });
    ws.on('error', () => {});
  });
}

void describe('coordinator roles', () => {
  void it('starts as a standby that names its advertised URL to the election', () => {
    assert.deepEqual(leadership.me, { id: 'me', url: 'http://me.example:7070' });
    assert.equal(coordinator.role.role, 'standby');
  });

  void it('a standby answers 503 not_leader naming the leader, on HTTP and on worker upgrades', async () => {
    await leadership.set({ role: 'standby', epoch: 3, leaderUrl: LEADER, leaderId: 'other' });
    const r = await fetch(`${url}/v1/groups`);
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('regroup-leader'), LEADER);
    const body = (await r.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'not_leader');
    assert.match(body.error.message, /leader\.example/);
    const h = (await (await fetch(`${url}/healthz`)).json()) as Record<string, unknown>;
    assert.deepEqual(h, { ok: true, role: 'standby', epoch: 3, leader: LEADER });
    const u = await upgrade();
    assert.equal(u.status, 503);
    assert.equal(u.leader, LEADER);
    // Unknown leader: still not_leader, no header.
    await leadership.set({ role: 'standby', epoch: 3, leaderUrl: null, leaderId: null });
    const r2 = await fetch(`${url}/v1/groups`);
    assert.equal(r2.status, 503);
    assert.equal(r2.headers.get('regroup-leader'), null);
  });

  void it('taking office begins a term in the store and serves the API and workers', async () => {
    await leadership.set({
      role: 'leader',
      epoch: 4,
      leaderUrl: 'http://me.example:7070',
      leaderId: 'me',
    });
    assert.deepEqual(store.epochs, [4]);
    assert.equal(coordinator.role.role, 'leader');
    assert.equal(roles.at(-1)?.role, 'leader');
    const r = await fetch(`${url}/v1/groups`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handler: 'double', inputs: [1, 2] }),
    });
    assert.equal(r.status, 201);
    assert.equal((await upgrade()).status, 101);
  });

  void it('a store refusing a tick (newer epoch) makes it step down and send its workers away', async () => {
    const worker = new Worker({
      url,
      handlers: { double: async (x: number) => x * 2 },
      concurrency: 1,
      logger: () => {},
    });
    await worker.start();
    try {
      await until('the worker joined', () => coordinator.sessions.size === 1);
      store.refuse = true;
      // Any write now fails with not_leader: a new group forces a tick.
      const r = await fetch(`${url}/v1/groups`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ handler: 'double', inputs: [3] }),
      });
      assert.equal(r.status, 503);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'not_leader');
      await until('stepped down', () => coordinator.role.role === 'standby');
      assert.equal(leadership.lostReasons.length, 1);
      assert.throws(() => coordinator.sessions, /standby/);
      const h = await fetch(`${url}/v1/groups`);
      assert.equal(h.status, 503);
      // Back in office with a new epoch: the worker comes back and the groups run.
      await leadership.set({ role: 'leader', epoch: 6, leaderUrl: null, leaderId: 'me' });
      assert.deepEqual(store.epochs, [4, 6]);
      await until('the worker is back', () => coordinator.sessions.size === 1, 10_000);
      await until(
        'the first group is done',
        async () => {
          const list = (await (await fetch(`${url}/v1/groups`)).json()) as {
            groups: { succeeded: number; total: number }[];
          };
          return list.groups.some((g) => g.total === 2 && g.succeeded === 2);
        },
        10_000,
      );
    } finally {
      await worker.close();
    }
  });
});
