/**
 * The event log tells facts in the order they happened, and a request that
 * changes nothing records nothing (issue 12, item 5), with real processes: a
 * coordinator (SQLite) and a worker over WebSocket, the log read back through
 * GET /v1/events.
 *
 * It used to be wrong both ways: `group.done` was written before the group's
 * last `task.failed` (the failure's event was queued after the tick that
 * ended the group), and canceling a done group answered `done` but wrote a new
 * `group.canceled` every time.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EVENT_TYPES } from '../src/core/events.js';
import type { EventView, GroupView } from '../src/protocol/http.js';
import { startServer, startWorker, until } from '../src/testing/procs.js';
import { fixture, realProcesses } from './real-processes.js';

const HANDLERS = fixture('fault-handlers.js');
const tmp = realProcesses('regroup-events-');

async function call<T>(url: string, method: string, path: string, body?: object): Promise<T> {
  const r = await fetch(url + path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await r.text();
  assert.ok(r.status < 300, `${method} ${path} answered ${r.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function events(url: string): Promise<EventView[]> {
  return (await call<{ events: EventView[] }>(url, 'GET', '/v1/events?after=0&limit=1000')).events;
}

/** The group's events as `type` or `type:taskId`, in log order. */
function story(all: EventView[], groupId: string): string[] {
  return all
    .filter((e) => e.groupId === groupId)
    .map((e) => (e.taskId == null ? e.type : `${e.type}:${e.taskId}`));
}

describe('the event log (real processes)', () => {
  it('tells a group from its creation to its end in fact order; repeated cancels of an ended group record nothing', async () => {
    const server = await startServer(join(tmp.dir, 'order.db'));
    // Submitted before any worker: the group waits, after it was created.
    const g = await call<GroupView>(server.url, 'POST', '/v1/groups', {
      handler: 'failIfOdd',
      inputs: [0, 1, 2, 3, 4, 5, 6, 7],
      options: { maxAttempts: 2, backoffMs: 10, backoffMaxMs: 10 },
    });
    await startWorker(server.url, HANDLERS, 'w1', ['--concurrency', '4']);
    await call<GroupView>(server.url, 'GET', `/v1/groups/${g.id}/wait?timeoutMs=20000`);
    const done = await until('group.done in the log', async () => {
      const all = await events(server.url);
      return all.some((e) => e.type === 'group.done' && e.groupId === g.id) ? all : null;
    });
    const s = story(done, g.id);
    assert.equal(s[0], 'group.created', s.join(' '));
    assert.equal(s[1], 'group.waiting', s.join(' '));
    assert.equal(s.at(-1), 'group.done', `the group ends the story: ${s.join(' ')}`);
    const failed = s.filter((x) => x.startsWith('task.failed:'));
    assert.equal(failed.length, 4, `the four odd inputs failed for good: ${s.join(' ')}`);
    for (const f of failed) {
      const taskId = f.split(':')[1];
      const retried = s.indexOf(`task.retried:${taskId}`);
      assert.ok(retried >= 0 && retried < s.indexOf(f), `retried before failed: ${s.join(' ')}`);
    }
    assert.ok(
      done.every((e) => (EVENT_TYPES as readonly string[]).includes(e.type)),
      'every recorded type is one of EVENT_TYPES',
    );
    const seqs = done.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
      'the log reads in seq order',
    );

    // Cancel an ended group twice: it stays done, and nothing is recorded.
    for (let i = 0; i < 2; i++) {
      const v = await call<GroupView>(server.url, 'POST', `/v1/groups/${g.id}/cancel`);
      assert.equal(v.state, 'done');
    }
    // A live group canceled twice: one group.canceled.
    const live = await call<GroupView>(server.url, 'POST', '/v1/groups', {
      handler: 'nobodyOffersThis',
      inputs: [1, 2, 3],
    });
    for (let i = 0; i < 2; i++) {
      const v = await call<GroupView>(server.url, 'POST', `/v1/groups/${live.id}/cancel`);
      assert.equal(v.state, 'canceled');
    }
    const all = await until('group.canceled in the log', async () => {
      const evs = await events(server.url);
      return evs.some((e) => e.type === 'group.canceled') ? evs : null;
    });
    assert.deepEqual(
      all.filter((e) => e.type === 'group.canceled').map((e) => [e.groupId, e.data]),
      [[live.id, { canceled: 3 }]],
      'one cancel of the live group, none of the done one',
    );
    assert.deepEqual(story(all, live.id), ['group.created', 'group.waiting', 'group.canceled']);
    assert.deepEqual(story(all, g.id), s, 'nothing was added to the done group');
  });
});
