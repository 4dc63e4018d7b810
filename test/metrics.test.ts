/**
 * GET /metrics, /readyz and the coordinator's logs, against real coordinators
 * in this process (SQLite): the counters and histograms move by exactly what
 * happened (tasks run, retried, failed, a worker declared dead and its runs
 * reassigned), readiness follows the role and the store, and a worker's
 * death is one JSON log line with its ids.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { Client } from '../src/client/index.js';
import { Coordinator } from '../src/coordinator/index.js';
import { Emitter } from '../src/coordinator/emitter.js';
import { Metrics } from '../src/coordinator/metrics.js';
import type { CoordinatorEvents } from '../src/coordinator/emitter.js';
import { resolveTaskOptions } from '../src/core/options.js';
import { makeLogger } from '../src/cli/log.js';
import type { Candidate, LeaderState, Leadership } from '../src/store/leadership.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { Worker } from '../src/worker/index.js';
import { tempDir, until } from '../src/testing/procs.js';
import { RawWorker } from './raw-worker.js';
import { seedTree } from './tree-seed.js';

const tmp = tempDir('regroup-metrics-');
after(() => tmp.cleanup());

/** Samples of a Prometheus text exposition: `name{labels}` (as printed) -> value. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

async function scrape(url: string): Promise<Map<string, number>> {
  const r = await fetch(`${url}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parse(await r.text());
}

/** A sample's value; a missing one fails the test with the names that are there. */
function get(m: Map<string, number>, key: string): number {
  const v = m.get(key);
  if (v === undefined) {
    const near = [...m.keys()].filter((k) => k.startsWith(key.split('{')[0]!)).join(', ');
    assert.fail(`no sample ${key}; samples of that name: ${near || 'none'}`);
  }
  return v;
}

/** Collects what a logger writes, as a non-terminal stream (so: JSON Lines). */
function logSink(): { stream: NodeJS.WriteStream; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  }) as unknown as NodeJS.WriteStream;
  const lines = (): Record<string, unknown>[] =>
    chunks
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { stream, lines };
}

void describe('GET /metrics', () => {
  let coordinator: Coordinator;
  let url: string;
  let client: Client;
  const log = logSink();

  before(async () => {
    coordinator = new Coordinator({
      store: new SqliteStore({ path: join(tmp.dir, 'm.db') }),
      port: 0,
      heartbeatMs: 100,
      deadAfterMs: 400,
      closeGraceMs: 100,
      logger: makeLogger('info', 'coordinator', log.stream),
    });
    url = await coordinator.start();
    client = new Client({ url });
  });
  after(async () => {
    client.close();
    await coordinator.stop();
  });

  void it('starts at zero, with the process metrics beside', async () => {
    const m = await scrape(url);
    assert.equal(get(m, 'regroup_leader'), 1);
    for (const s of ['pending', 'running', 'succeeded', 'failed', 'canceled'])
      assert.equal(get(m, `regroup_tasks{state="${s}"}`), 0, s);
    for (const s of ['alive', 'suspect', 'draining', 'dead'])
      assert.equal(get(m, `regroup_workers{state="${s}"}`), 0, s);
    assert.equal(get(m, 'regroup_tasks_dispatched_total'), 0);
    assert.equal(get(m, 'regroup_worker_deaths_total{reason="silent"}'), 0);
    assert.ok(get(m, 'regroup_process_resident_memory_bytes') > 0);
    assert.ok(get(m, 'regroup_nodejs_eventloop_lag_seconds') >= 0);
  });

  void it('counts runs, retries, failures, a death and its reassigned runs, exactly', async () => {
    // A worker that takes two runs and dies with them.
    const doomed = new RawWorker(url);
    const doomedId = await doomed.hello('doomed', ['sq'], 2);
    const sq = await client.submit('sq', [1, 2, 3, 4, 5]);
    const runs = [await doomed.take('run'), await doomed.take('run')];
    let m = await scrape(url);
    assert.equal(get(m, 'regroup_workers{state="alive"}'), 1);
    assert.equal(get(m, 'regroup_tasks{state="running"}'), 2);
    assert.equal(get(m, 'regroup_tasks{state="pending"}'), 3);
    assert.equal(get(m, 'regroup_tasks_dispatched_total'), 2);
    doomed.ws.terminate();
    m = await until('the death and its requeues counted', async () => {
      const s = await scrape(url);
      return s.get('regroup_tasks_reassigned_total') === 2 ? s : null;
    });
    assert.equal(get(m, 'regroup_worker_deaths_total{reason="disconnected"}'), 1);
    assert.equal(get(m, 'regroup_failure_detection_seconds_count{reason="disconnected"}'), 1);
    assert.ok(
      get(m, 'regroup_failure_detection_seconds_sum{reason="disconnected"}') >= 0.1,
      'declared dead no sooner than closeGraceMs after its last message',
    );
    assert.equal(get(m, 'regroup_workers{state="alive"}'), 0);
    assert.equal(get(m, 'regroup_tasks{state="pending"}'), 5);

    // A real worker finishes them; `boom` fails every time (2 attempts: one retry, then failed).
    const worker = new Worker({
      url,
      name: 'good',
      concurrency: 2,
      logger: () => {},
      handlers: {
        sq: async (x: number) => x * x,
        boom: async () => {
          throw new Error('boom');
        },
      },
    });
    await worker.start();
    try {
      assert.deepEqual(await sq.wait(), [1, 4, 9, 16, 25]);
      const boom = await client.submit('boom', [1, 2], {
        options: { maxAttempts: 2, backoffMs: 1, backoffMaxMs: 1 },
      });
      const settled = await boom.waitSettled();
      assert.deepEqual(
        settled.map((o) => [o.state, o.attempt]),
        [
          ['failed', 2],
          ['failed', 2],
        ],
      );

      // A result for a run that is long over: refused by the fence.
      const late = new RawWorker(url);
      await late.hello('late', ['sq'], 1);
      late.send({ t: 'result', taskId: runs[0]!.taskId, attempt: runs[0]!.attempt, value: 0 });
      assert.equal((await late.take('ack')).status, 'already_final');
      late.ws.close();

      m = await scrape(url);
      assert.equal(get(m, 'regroup_tasks_committed_total'), 5);
      assert.equal(get(m, 'regroup_tasks_retried_total'), 2);
      assert.equal(get(m, 'regroup_tasks_failed_total{kind="error"}'), 2);
      assert.equal(get(m, 'regroup_tasks_reassigned_total'), 2);
      assert.equal(get(m, 'regroup_reports_rejected_total{outcome="already_final"}'), 1);
      // 2 to the dead worker, 5 squares, 2 x 2 attempts of boom.
      assert.equal(get(m, 'regroup_tasks_dispatched_total'), 11);
      assert.equal(get(m, 'regroup_dispatch_latency_seconds_count'), 11);
      assert.equal(get(m, 'regroup_run_latency_seconds_count'), 5);
      assert.equal(get(m, 'regroup_task_latency_seconds_count'), 5, 'one per committed result');
      assert.ok(
        get(m, 'regroup_task_latency_seconds_sum') >= get(m, 'regroup_run_latency_seconds_sum'),
        'a task waits at least as long as its last run',
      );
      assert.equal(get(m, 'regroup_group_latency_seconds_count'), 2);
      assert.equal(get(m, 'regroup_groups_finished_total{state="done"}'), 2);
      assert.deepEqual(
        ['pending', 'running', 'succeeded', 'failed', 'canceled'].map((s) =>
          get(m, `regroup_tasks{state="${s}"}`),
        ),
        [0, 0, 5, 2, 0],
      );
      // Every tick is one commit: as many commit times as batch sizes, each batch at least one op.
      const ticks = get(m, 'regroup_tick_ops_count');
      assert.ok(ticks > 0);
      assert.equal(get(m, 'regroup_store_commit_seconds_count'), ticks);
      assert.ok(get(m, 'regroup_tick_ops_sum') >= ticks);
      assert.equal(get(m, 'regroup_tick_ops_bucket{le="+Inf"}'), ticks);
    } finally {
      await worker.close();
    }

    // The death is one warn line with the worker's id and how many runs went back.
    const dead = log.lines().find((l) => l['msg'] === 'worker dead');
    assert.ok(dead, 'a "worker dead" line');
    assert.equal(dead['level'], 'warn');
    assert.equal(dead['component'], 'coordinator');
    assert.equal(dead['workerId'], doomedId);
    assert.equal(dead['name'], 'doomed');
    assert.equal(dead['reason'], 'disconnected');
    assert.equal(dead['requeued'], 2);
    const joined = log.lines().find((l) => l['msg'] === 'worker joined' && l['name'] === 'good');
    assert.match(String(joined?.['workerId']), /^w_/);
    const failed = log.lines().filter((l) => l['msg'] === 'task failed for good');
    assert.equal(failed.length, 2);
    for (const f of failed) {
      assert.equal(f['groupId'], (await client.listGroups())[0]?.id);
      assert.equal(typeof f['taskId'], 'number');
      assert.equal(f['workerId'], joined?.['workerId']);
      assert.equal(f['kind'], 'error');
    }
  });
});

/** A Leadership whose states the test sets. */
class DrivenLeadership implements Leadership {
  private onChange: ((s: LeaderState) => Promise<void>) | null = null;
  start(_me: Candidate, onChange: (s: LeaderState) => Promise<void>): void {
    this.onChange = onChange;
  }
  lost(): void {}
  async stop(): Promise<void> {}
  set(s: LeaderState): Promise<void> {
    return this.onChange!(s);
  }
}

/** A SQLite store whose reads can be made to fail. */
class FlakySqlite extends SqliteStore {
  broken = false;
  override async getGroup(id: string): ReturnType<SqliteStore['getGroup']> {
    if (this.broken) throw new Error('disk I/O error');
    return super.getGroup(id);
  }
}

void describe('GET /readyz and /healthz', () => {
  const TOKEN = 'client-token-0123456789';
  let leadership: DrivenLeadership;
  let store: FlakySqlite;
  let coordinator: Coordinator;
  let url: string;

  before(async () => {
    leadership = new DrivenLeadership();
    store = new FlakySqlite({ path: join(tmp.dir, 'r.db') });
    coordinator = new Coordinator({
      store,
      port: 0,
      leadership,
      clientToken: TOKEN,
      workerToken: 'worker-token-0123456789',
    });
    url = await coordinator.start();
  });
  after(() => coordinator.stop());

  async function probe(path: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const r = await fetch(url + path);
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  }

  void it('a standby is alive but not ready, and says why; no token needed', async () => {
    await leadership.set({
      role: 'standby',
      epoch: null,
      leaderUrl: 'http://leader.example:7070',
      leaderId: 'x',
    });
    assert.deepEqual(await probe('/healthz'), {
      status: 200,
      body: { ok: true, role: 'standby', epoch: null, leader: 'http://leader.example:7070' },
    });
    const r = await probe('/readyz');
    assert.equal(r.status, 503);
    assert.equal(r.body['ready'], false);
    assert.equal(r.body['reason'], 'standby');
    assert.match(String(r.body['message']), /leader\.example/);
    const m = await scrape(url);
    assert.equal(get(m, 'regroup_leader'), 0);
    assert.equal(m.has('regroup_tasks{state="pending"}'), false, 'a standby reports no tasks');
    assert.equal((await fetch(`${url}/v1/groups`)).status, 401, 'the API still needs the token');
  });

  void it('the leader is ready while its store answers', async () => {
    await leadership.set({ role: 'leader', epoch: 3, leaderUrl: url, leaderId: 'me' });
    assert.deepEqual(await probe('/readyz'), {
      status: 200,
      body: { ready: true, role: 'leader', epoch: 3, leader: url },
    });
    assert.equal(get(await scrape(url), 'regroup_leader'), 1);
    store.broken = true;
    try {
      const r = await probe('/readyz');
      assert.equal(r.status, 503);
      assert.equal(r.body['reason'], 'store_unavailable');
      assert.match(String(r.body['message']), /disk I\/O error/);
    } finally {
      store.broken = false;
    }
    assert.equal((await probe('/readyz')).status, 200);
    assert.equal((await fetch(`${url}/v1/groups`)).status, 401, 'the API still needs the token');
  });
});

void describe('metrics of a tree of groups', () => {
  void it('live groups split root/child, read at scrape time and fresh after a cancel cascades', async () => {
    const path = join(tmp.dir, 'tree.db');
    const seed = new SqliteStore({ path });
    await seed.open();
    // Two live roots; under the first, three live children (one with a live grandchild) and an empty one (done).
    await seedTree(seed, {
      id: 'root',
      inputs: [0, 1],
      children: [
        { id: 'a', inputs: [0, 1], children: [{ id: 'a1' }] },
        { id: 'b' },
        { id: 'c' },
        { id: 'empty', inputs: [] },
      ],
    });
    await seedTree(seed, { id: 'flat', inputs: [1, 2] });
    await seed.close();
    const coordinator = new Coordinator({ store: new SqliteStore({ path }), port: 0 });
    const url = await coordinator.start();
    const client = new Client({ url });
    try {
      let m = await scrape(url);
      assert.equal(get(m, 'regroup_groups_live{kind="root"}'), 2);
      assert.equal(get(m, 'regroup_groups_live{kind="child"}'), 4);
      assert.equal(get(m, 'regroup_groups_spawned_total'), 0, 'spawned before this coordinator');
      const out = await client.group('root').cancel();
      assert.equal(out.descendants, 4);
      m = await scrape(url);
      assert.equal(get(m, 'regroup_groups_live{kind="root"}'), 1);
      assert.equal(get(m, 'regroup_groups_live{kind="child"}'), 0);
    } finally {
      client.close();
      await coordinator.stop();
    }
  });

  void it('counts the child groups its ticks created, not a repeat of a spawn key', async () => {
    const store = new SqliteStore({ path: join(tmp.dir, 'spawned.db') });
    await store.open();
    const events = new Emitter<CoordinatorEvents>();
    const metrics = new Metrics(events, {
      store,
      sessions: () => [],
      role: () => ({ role: 'leader', epoch: null, leaderUrl: null, leaderId: null }),
      now: () => Date.now(),
      liveness: { heartbeatMs: 1000, deadAfterMs: 3000, closeGraceMs: 500 },
      logger: () => {},
    });
    try {
      await seedTree(store, { id: 'p', inputs: [0] });
      const [ready] = await store.readyTasks(['p'], Date.now(), 1);
      const claim = await store.commitTick({
        now: Date.now(),
        claims: [{ taskId: ready!.taskId, workerId: 'w' }],
      });
      const run = { taskId: claim.claimed[0]!.taskId, attempt: 1, workerId: 'w' };
      const child = (id: string) => ({
        id,
        handler: 'k',
        policy: 'collectAll' as const,
        options: resolveTaskOptions({}),
        inputs: [1],
      });
      const tick = {
        now: Date.now(),
        spawns: [
          { ...run, key: '#0', group: child('k0'), keepChildren: false },
          { ...run, key: '#1', group: child('k1'), keepChildren: false },
          { ...run, key: '#0', group: child('k0-again'), keepChildren: false },
        ],
      };
      const outcome = await store.commitTick(tick);
      assert.deepEqual(
        outcome.spawns.map((o) => o.status),
        ['created', 'created', 'existing'],
      );
      events.emit('tick', { tick, outcome, ms: 1, leases: new Map() });
      const m = parse(await metrics.text());
      assert.equal(get(m, 'regroup_groups_spawned_total'), 2);
      assert.equal(get(m, 'regroup_groups_live{kind="root"}'), 1);
      assert.equal(get(m, 'regroup_groups_live{kind="child"}'), 2);
    } finally {
      await store.close();
    }
  });
});
