/**
 * A coordinator that cannot hear is not a worker that is silent (issue 12,
 * item 1), with real processes: the coordinator is paused (SIGSTOP) for three
 * times its deadAfterMs while a healthy worker runs a long task; afterwards
 * no worker is declared dead and the task finishes on attempt 1.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '../src/client/index.js';
import type { EventView } from '../src/protocol/http.js';
import { sleep, startServer, startWorker, until } from '../src/testing/procs.js';
import { fixture, realProcesses } from './real-processes.js';

const HANDLERS = fixture('fault-handlers.js');
const clients: Client[] = [];
const tmp = realProcesses('regroup-stall-', () => {
  for (const c of clients) c.close();
});

/**
 * The runs the workers started, from the fixture's run log. A test pauses
 * the coordinator only once its runs are running on the workers, not only
 * claimed: a run still on its way when the coordinator stops never reaches
 * its worker and is rightly run again (attempt 2).
 */
function runLog(name: string): { file: string; started: () => number } {
  const file = join(tmp.dir, name);
  writeFileSync(file, '');
  return { file, started: () => readFileSync(file, 'utf8').split('\n').filter(Boolean).length };
}

describe('a stalled coordinator (real processes)', () => {
  it('paused for 3 × deadAfterMs: no healthy worker is declared dead, the long task stays on attempt 1', async () => {
    // A close grace long enough for the worker to come back through its own
    // reconnect backoff: this test is about silence, not about the grace.
    const server = await startServer(join(tmp.dir, 'stall.db'), {
      extra: ['--heartbeat-ms', '200', '--dead-after-ms', '1000', '--close-grace-ms', '5000'],
    });
    const runs = runLog('stall-runs.jsonl');
    await startWorker(server.url, HANDLERS, 'w1', [], { REGROUP_RUN_LOG: runs.file });
    const client = new Client({ url: server.url });
    clients.push(client);
    const group = await client.submit('slowSquare', [{ n: 7, ms: 5000 }]);
    await until('the worker runs the task', () => runs.started() === 1);
    server.proc.signal('SIGSTOP');
    await sleep(3000);
    server.proc.signal('SIGCONT');
    const [result] = (await group.wait()) as { square: number; attempt: number }[];
    assert.equal(result?.square, 49);
    assert.equal(result?.attempt, 1, 'the run was not taken from its worker');
    const r = await fetch(`${server.url}/v1/events?after=0&limit=1000`);
    const { events } = (await r.json()) as { events: EventView[] };
    assert.deepEqual(
      events.filter((e) => e.type === 'worker.dead'),
      [],
      'no worker was declared dead',
    );
    assert.ok(
      server.proc.out.some((l) => /stalled/.test(l)),
      `the coordinator logged its stall:\n${server.proc.out.join('\n')}`,
    );
  });

  it('paused for 5 × deadAfterMs with the default close grace: workers whose sockets dropped meanwhile come back and keep their runs', async () => {
    // The workers' own silence timers cut their sockets during the pause and
    // their reconnects time out until it ends, so they come back only after
    // a backoff: often longer than the close grace (500 ms) of a closed
    // connection. A stall that long gives every session stallGraceMs.
    const server = await startServer(join(tmp.dir, 'stall-close.db'), {
      extra: ['--heartbeat-ms', '200', '--dead-after-ms', '1000'],
    });
    const runs = runLog('stall-close-runs.jsonl');
    const env = { REGROUP_RUN_LOG: runs.file };
    for (const name of ['c1', 'c2', 'c3']) await startWorker(server.url, HANDLERS, name, [], env);
    const client = new Client({ url: server.url });
    clients.push(client);
    const inputs = [1, 2, 3].map((n) => ({ n, ms: 7000 }));
    const group = await client.submit('slowSquare', inputs);
    await until('the workers run the tasks', () => runs.started() === 3);
    server.proc.signal('SIGSTOP');
    await sleep(5000);
    server.proc.signal('SIGCONT');
    const results = (await group.wait()) as { square: number; attempt: number }[];
    const events = await until('the group.done event', async () => {
      const r = await fetch(`${server.url}/v1/events?after=0&limit=1000`);
      const all = ((await r.json()) as { events: EventView[] }).events;
      return all.some((e) => e.type === 'group.done') ? all : null;
    });
    assert.deepEqual(
      events.filter((e) => e.type === 'worker.dead'),
      [],
      `no worker was declared dead:\n${server.proc.out.join('\n')}`,
    );
    assert.deepEqual(
      results.map((r) => [r.square, r.attempt]),
      [
        [1, 1],
        [4, 1],
        [9, 1],
      ],
      `every run stayed with its worker: ${JSON.stringify(events.map((e) => [e.type, e.workerId, e.taskId]))}`,
    );
    assert.equal(runs.started(), 3, 'no task started twice');
  });
});
