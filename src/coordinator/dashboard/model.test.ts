import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupInfo } from '../../core/types.js';
import type { GroupWaiting } from '../../core/waiting.js';
import { DashboardModel, type WorkerRow } from './model.js';

function group(over: Partial<GroupInfo>): GroupInfo {
  return {
    id: 'g1',
    handler: 'work',
    state: 'sealed',
    policy: 'collectAll',
    idempotencyKey: null,
    createdAt: 1000,
    sealedAt: 1000,
    finishedAt: null,
    options: { maxAttempts: 3, timeoutMs: 0, maxNodeFailures: 3, priority: 0, requires: [] },
    total: 10,
    pending: 10,
    running: 0,
    succeeded: 0,
    failed: 0,
    canceled: 0,
    ...over,
  } as GroupInfo;
}
const worker = (id: string, name: string, running = 0): WorkerRow => ({
  workerId: id,
  name,
  health: 'alive',
  connected: true,
  slots: 4,
  running,
  waiting: 0,
  tasksDone: 0,
  heartbeatAgoMs: 10,
  deadAt: null,
});

describe('DashboardModel', () => {
  it('tells a group created, retried and done, and its rate and time left', () => {
    const m = new DashboardModel(0);
    m.groupChanged(group({}), 1000);
    m.sample(1000, [], new Set());
    m.groupChanged(group({ pending: 6, running: 0, succeeded: 2, failed: 2 }), 1500);
    m.sample(2000, [], new Set());
    const row = m.snapshot(2000).groups[0]!;
    assert.equal(row.ratePerSec, 4, '4 tasks finished in the second');
    assert.equal(row.etaMs, 1500, '6 left at 4/s');
    m.groupChanged(group({ pending: 8, succeeded: 2, failed: 0 }), 2100);
    m.groupChanged(group({ pending: 0, succeeded: 10, state: 'done', finishedAt: 6000 }), 6000);
    const texts = m.snapshot(6000).timeline.map((e) => [e.kind, e.text]);
    assert.deepEqual(texts, [
      ['group.created', 'group g1 created: 10 tasks (work)'],
      ['group.retried', 'group g1: 2 failed tasks retried'],
      ['group.done', 'group g1 done in 5.0 s: 10 succeeded'],
    ]);
    assert.equal(m.snapshot(6000).groups[0]!.etaMs, null, 'a done group has no time left');
  });

  it('counts completions into the chart per second, with the running runs', () => {
    const m = new DashboardModel(0);
    m.sample(0, [], new Set());
    m.groupChanged(group({ pending: 7, succeeded: 3 }), 100);
    m.groupChanged(group({ pending: 5, succeeded: 4, failed: 1 }), 200);
    m.sample(1000, [worker('w_1', 'a', 2), worker('w_2', 'b', 3)], new Set());
    assert.deepEqual(m.snapshot(1000).series, [{ t: 1000, completed: 5, running: 5 }]);
  });

  it('tells joins, drains, leaves and deaths; a death grows into its re-dispatch sentence', () => {
    const m = new DashboardModel(0);
    m.sample(0, [worker('w_1', 'w1')], new Set());
    m.sample(1000, [worker('w_1', 'w1'), worker('w_2', 'w2', 2)], new Set());
    m.sample(2000, [worker('w_1', 'w1'), worker('w_2', 'w2', 2)], new Set(['w_1']));
    m.workerDead({
      workerId: 'w_2',
      name: 'w2',
      reason: 'silent',
      requeued: [5, 6],
      poisoned: [],
      at: 2500,
    });
    assert.equal(m.following, true);
    m.dispatched(5, 'w1', 2600);
    m.dispatched(6, 'w3', 2900);
    m.sample(3000, [], new Set());
    const tl = m.snapshot(3000).timeline.map((e) => e.text);
    assert.deepEqual(tl, [
      'w2 joined',
      'w1 draining: takes no new tasks',
      'w2 dead (silent): 2 tasks back to pending, re-dispatched to w1 and w3 in 0.4 s',
      'w1 left',
    ]);
    const ws = m.snapshot(3000).workers;
    assert.deepEqual(
      ws.map((w) => [w.name, w.health]),
      [['w2', 'dead']],
    );
    assert.equal(m.nameOf('w_2'), 'w2');
  });

  it('an update carries only what changed since the last one', () => {
    const m = new DashboardModel(0);
    m.groupChanged(group({}), 1000);
    const first = m.update(1000)!;
    assert.equal(first.timeline?.length, 1);
    assert.equal(first.groups?.length, 1);
    assert.equal(m.update(1100), null, 'nothing new');
    m.workerDead({
      workerId: 'w_9',
      name: 'w9',
      reason: 'silent',
      requeued: [],
      poisoned: [],
      at: 1200,
    });
    const second = m.update(1200)!;
    assert.deepEqual(
      second.timeline?.map((e) => e.text),
      ['w9 dead (silent): it held no tasks'],
    );
    assert.equal(second.groups, undefined);
  });

  it('shows why a group waits, as the engine says, on every sample while it lasts; a final group never waits', () => {
    const verdicts = new Map<string, GroupWaiting>();
    const m = new DashboardModel(0, (id) => verdicts.get(id));
    m.groupChanged(group({ id: 'g1', handler: 'sqaure' }), 1000);
    m.groupChanged(group({ id: 'g2', state: 'done', pending: 0, succeeded: 10 }), 1000);
    const w: GroupWaiting = {
      code: 'no_handler',
      message: 'no worker offers handler "sqaure"; connected workers offer: square',
      since: 1000,
    };
    verdicts.set('g1', w).set('g2', w);
    m.update(1000);
    m.sample(2000, [], new Set());
    const rows = m.update(2000)!.groups!;
    assert.deepEqual(rows.find((r) => r.id === 'g1')!.waiting, w, 'sent with the next sample');
    assert.equal(rows.find((r) => r.id === 'g2')!.waiting, null, 'done: not asked');
    verdicts.delete('g1');
    m.sample(3000, [], new Set());
    assert.equal(m.update(3000)!.groups!.find((r) => r.id === 'g1')!.waiting, null);
    assert.equal(new DashboardModel(0).snapshot(0).groups.length, 0);
    const bare = new DashboardModel(0);
    bare.groupChanged(group({}), 1000);
    assert.equal(bare.snapshot(1000).groups[0]!.waiting, null, 'no verdicts given: none shown');
  });

  it("running counts runs sent to workers; the tasks in their reserves are 'reserved', not running", () => {
    const reserved = new Map([
      ['g1', 16],
      ['g2', 5],
    ]);
    const m = new DashboardModel(0, undefined, () => reserved);
    // Two workers of 4 slots: 2 + 16 leases on g1 (the store counts them all as running).
    m.groupChanged(group({ id: 'g1', pending: 0, running: 18, succeeded: 82, total: 100 }), 1000);
    m.groupChanged(group({ id: 'g2', pending: 0, running: 3, succeeded: 7 }), 1000);
    m.groupChanged(
      group({ id: 'g3', state: 'canceled', pending: 0, running: 0, canceled: 10 }),
      1000,
    );
    const rows = new Map(m.snapshot(1000).groups.map((r) => [r.id, r]));
    assert.deepEqual([rows.get('g1')!.running, rows.get('g1')!.reserved], [2, 16]);
    assert.deepEqual([rows.get('g2')!.running, rows.get('g2')!.reserved], [0, 3], 'never below 0');
    assert.deepEqual([rows.get('g3')!.running, rows.get('g3')!.reserved], [0, 0]);
  });

  it('an unchanged group list is not sent again', () => {
    const m = new DashboardModel(0);
    m.groupChanged(group({ pending: 4, succeeded: 6 }), 1000);
    m.sample(1000, [], new Set());
    m.sample(2000, [], new Set());
    assert.ok(m.update(2000)!.groups, 'the first update carries the list');
    m.sample(3000, [], new Set());
    assert.equal(m.update(3000)?.groups, undefined, 'nothing changed: not sent');
    m.groupChanged(group({ pending: 3, succeeded: 7 }), 3500);
    assert.equal(m.update(3500)!.groups![0]!.succeeded, 7);
  });
});
