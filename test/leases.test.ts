/**
 * Every lease ends (issue 12, item 2), with real processes: the coordinator
 * ends a run a beating worker never answers (timeoutMs + grace), a run whose
 * handler stops showing progress (heartbeatTimeoutMs) but never a long one
 * that heartbeats, caps the slots a worker announces, and requeues a run
 * its worker says it never received.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Client } from '../src/client/index.js';
import type { EventView, TaskView } from '../src/protocol/http.js';
import { trackProcess } from '../src/testing/cleanup.js';
import { startServer, startWorker, until } from '../src/testing/procs.js';
import { fixture, realProcesses } from './real-processes.js';

const FAULT_HANDLERS = fixture('fault-handlers.js');
const clients: Client[] = [];
const hostiles: ChildProcess[] = [];
const tmp = realProcesses('regroup-leases-', async () => {
  for (const c of clients) c.close();
  for (const h of hostiles) if (h.exitCode === null) h.kill('SIGKILL');
  await Promise.all(
    hostiles.map(
      (h) =>
        new Promise<void>((resolve) => {
          if (h.exitCode !== null || h.signalCode !== null) resolve();
          else h.once('exit', () => resolve());
        }),
    ),
  );
});

/** A worker of test/fixtures/hostile-worker.js; its printed lines are collected. */
function hostile(
  url: string,
  mode: 'silent' | 'forget',
  slots: number,
  handler: string,
  drain = true,
): { lines: string[]; proc: ChildProcess } {
  const wsUrl = url.replace(/^http/, 'ws') + '/v1/worker';
  const proc = trackProcess(
    spawn(process.execPath, [fixture('hostile-worker.js'), wsUrl, mode, String(slots), handler], {
      env: { ...process.env, DRAIN: drain ? '1' : '0' },
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  hostiles.push(proc);
  const lines: string[] = [];
  let rest = '';
  proc.stdout.on('data', (b: Buffer) => {
    const parts = (rest + b.toString('utf8')).split('\n');
    rest = parts.pop() ?? '';
    lines.push(...parts);
  });
  return { lines, proc };
}

async function events(url: string): Promise<EventView[]> {
  const r = await fetch(`${url}/v1/events?after=0&limit=1000`);
  return ((await r.json()) as { events: EventView[] }).events;
}

async function tasks(url: string, groupId: string): Promise<TaskView[]> {
  const r = await fetch(`${url}/v1/groups/${groupId}/tasks?limit=100`);
  return ((await r.json()) as { tasks: TaskView[] }).tasks;
}

function client(url: string): Client {
  const c = new Client({ url });
  clients.push(c);
  return c;
}

describe('every lease ends (real processes)', () => {
  it('a beating worker that never answers loses its run after timeoutMs + grace; the group finishes on another worker, attempt 2', async () => {
    const server = await startServer(join(tmp.dir, 'timeout.db'), {
      extra: ['--timeout-grace-ms', '500'],
    });
    const h = hostile(server.url, 'silent', 1, 'slowSquare');
    await until('the hostile worker is welcomed', () =>
      h.lines.some((l) => l.startsWith('welcome')),
    );
    const c = client(server.url);
    const group = await c.submit('slowSquare', [{ n: 3, ms: 10 }], {
      options: { timeoutMs: 1000, backoffMs: 0 },
    });
    await until('the hostile worker got the run', () => h.lines.some((l) => l.startsWith('run ')));
    await startWorker(server.url, FAULT_HANDLERS, 'honest');
    const [result] = (await group.wait()) as { square: number; attempt: number }[];
    assert.equal(result?.square, 9);
    assert.equal(result?.attempt, 2, 'the second attempt ran on the honest worker');
    // The hostile worker (an older protocol client) was told to stop: reason stale.
    assert.ok(
      h.lines.some((l) => /^revoke \d+ 1 stale$/.test(l)),
      `the hostile worker got a revoke: ${h.lines.join(' | ')}`,
    );
    const [task] = await tasks(server.url, group.id);
    assert.equal(task?.error, undefined, 'the success leaves no error behind');
    const retried = (await events(server.url)).filter((e) => e.type === 'task.retried');
    assert.equal(retried.length, 1, 'decided like a timeout: one retry, counted');
    const why = retried[0]!.data as { kind: string; error: string };
    assert.equal(why.kind, 'timeout');
    assert.match(why.error, /timeoutMs \(1000\)/);
  });

  it('a handler that stops calling ctx.heartbeat is ended and retried; a long task that heartbeats is never cut', async () => {
    const server = await startServer(join(tmp.dir, 'heartbeat.db'), {
      extra: ['--timeout-grace-ms', '200'],
    });
    await startWorker(server.url, FAULT_HANDLERS, 'w1', ['--concurrency', '4']);
    const c = client(server.url);
    const options = { heartbeatTimeoutMs: 600, backoffMs: 0 };
    const stops = await c.submit('stopsBeating', [{ ms: 60_000 }], { options });
    // 4 s of work, heartbeating every 150 ms: five times the limit and its grace.
    const beats = await c.submit('beating', [{ ms: 4000, every: 150 }], { options });
    const [stopped] = (await stops.wait()) as { attempt: number }[];
    assert.equal(stopped?.attempt, 2, 'the silent first attempt was ended');
    const [task] = await tasks(server.url, stops.id);
    assert.equal(task?.error, undefined, 'the success leaves no error behind');
    const retried = (await events(server.url)).filter(
      (e) => e.type === 'task.retried' && e.taskId === task?.taskId,
    );
    const why = retried[0]?.data as { kind: string; error: string } | undefined;
    assert.equal(why?.kind, 'timeout');
    assert.match(why?.error ?? '', /heartbeatTimeoutMs \(600\)/);
    const [long] = (await beats.wait()) as { attempt: number }[];
    assert.equal(long?.attempt, 1, 'the long task that heartbeats ran once, uncut');
  });

  it('a worker announcing 100000 slots gets the cap and cannot hoard: another worker gets tasks too', async () => {
    const server = await startServer(join(tmp.dir, 'slots.db'), {
      extra: ['--max-worker-slots', '4', '--timeout-grace-ms', '100'],
    });
    const h = hostile(server.url, 'silent', 100_000, 'slowSquare', false);
    await until('the hostile worker is welcomed', () =>
      h.lines.some((l) => l.startsWith('welcome')),
    );
    assert.ok(h.lines.includes('welcome 4'), `granted the cap: ${h.lines.join(' | ')}`);
    await server.proc.waitFor(/granted the cap/);
    const c = client(server.url);
    const inputs = Array.from({ length: 20 }, (_, i) => ({ n: i, ms: 10 }));
    const group = await c.submit('slowSquare', inputs, { options: { timeoutMs: 60_000 } });
    await until(
      'the hostile worker got its 4 runs',
      () => h.lines.filter((l) => l.startsWith('run ')).length >= 4,
    );
    await startWorker(server.url, FAULT_HANDLERS, 'honest', ['--concurrency', '4']);
    await until(
      'the other worker ran the rest',
      async () => (await group.status()).succeeded >= 16,
    );
    assert.equal(
      h.lines.filter((l) => l.startsWith('run ')).length,
      4,
      'never more than the cap held by the hoarder',
    );
    assert.equal(server.proc.out.filter((l) => /granted the cap/.test(l)).length, 1, 'logged once');
  });

  it('a run its worker never received (the worker reports the frames it got and holds nothing) is requeued, not failed', async () => {
    const server = await startServer(join(tmp.dir, 'lost.db'));
    const h = hostile(server.url, 'forget', 1, 'slowSquare');
    await until('the hostile worker is welcomed', () =>
      h.lines.some((l) => l.startsWith('welcome')),
    );
    const c = client(server.url);
    // No timeoutMs: only the frame count can free this run.
    const group = await c.submit('slowSquare', [{ n: 5, ms: 10 }]);
    await until('the hostile worker got the run', () => h.lines.some((l) => l.startsWith('run ')));
    await startWorker(server.url, FAULT_HANDLERS, 'honest');
    const [result] = (await group.wait()) as { square: number; attempt: number }[];
    assert.equal(result?.square, 25);
    assert.equal(result?.attempt, 2);
    const all = await events(server.url);
    assert.equal(all.filter((e) => e.type === 'task.lost').length, 1, 'one lost run');
    assert.deepEqual(
      all.filter((e) => e.type === 'task.retried' || e.type === 'worker.dead'),
      [],
      'not a failure, not a death',
    );
    const [task] = await tasks(server.url, group.id);
    assert.equal(task?.error ?? null, null, 'no error counted');
  });
});
