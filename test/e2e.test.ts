/**
 * End to end with real processes: drain, cancel, timeouts, failFast,
 * reattaching by id, open groups and the CLI's submit.
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client/index.js';
import { trackProcess } from '../src/testing/cleanup.js';
import type { EventView, WorkerView } from '../src/protocol/http.js';
import {
  CLI,
  killAll,
  liveProcesses,
  startServer,
  startWorker,
  tempDir,
  until,
} from '../src/testing/procs.js';

const HANDLERS = fileURLToPath(new URL('../../test/fixtures/fault-handlers.js', import.meta.url));

const clients: Client[] = [];
const dirs: (() => void)[] = [];
function client(url: string): Client {
  const c = new Client({ url });
  clients.push(c);
  return c;
}
async function setup(): Promise<{ url: string; dir: string; runLog: string }> {
  const t = tempDir();
  dirs.push(t.cleanup);
  const runLog = join(t.dir, 'runs.jsonl');
  process.env['REGROUP_RUN_LOG'] = runLog;
  const { url } = await startServer(join(t.dir, 'r.db'));
  return { url, dir: t.dir, runLog };
}
function runs(file: string): { taskId: number; attempt: number; pid: number; aborted?: string }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}
async function get<T>(url: string): Promise<T> {
  return (await (await fetch(url)).json()) as T;
}
async function events(url: string, type: string): Promise<EventView[]> {
  const r = await get<{ events: EventView[] }>(`${url}/v1/events?limit=1000`);
  return r.events.filter((e) => e.type === type);
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await killAll();
  delete process.env['REGROUP_RUN_LOG'];
  for (const d of dirs.splice(0)) d();
});
after(() => assert.equal(liveProcesses(), 0, 'a test left a process running'));

describe('end to end', () => {
  it('SIGTERM drains a worker: unfinished tasks are handed back at once and run elsewhere, not counted as failures', async () => {
    const { url } = await setup();
    const w1 = await startWorker(url, HANDLERS, 'draining', [
      '--concurrency',
      '2',
      '--drain-timeout-ms',
      '300',
    ]);
    const group = await client(url).submit('sleepy', [{ ms: 20_000 }, { ms: 20_000 }]);
    await until('both tasks running on w1', async () =>
      (await get<{ workers: WorkerView[] }>(`${url}/v1/workers`)).workers.some(
        (w) => w.running === 2,
      ),
    );
    await startWorker(url, HANDLERS, 'other', ['--concurrency', '2']);
    w1.signal('SIGTERM');
    assert.equal(await w1.exited, 0, 'the drained worker exits 0');
    await until('both tasks running again on the other worker', async () => {
      const ws = (await get<{ workers: WorkerView[] }>(`${url}/v1/workers`)).workers;
      return ws.length === 1 && ws[0]!.name === 'other' && ws[0]!.running === 2;
    });
    assert.equal((await events(url, 'worker.dead')).length, 0, 'a drained worker is not dead');
    assert.equal((await events(url, 'worker.left')).length, 1);
    const tasks = await get<{ tasks: { attempt: number; state: string }[] }>(
      `${url}/v1/groups/${group.id}/tasks`,
    );
    assert.deepEqual(
      tasks.tasks.map((t) => [t.state, t.attempt]),
      [
        ['running', 2],
        ['running', 2],
      ],
    );
    await group.cancel();
  });

  it('cancel ends the group at once: pending tasks canceled, running handlers see their signal abort', async () => {
    const { url, runLog } = await setup();
    await startWorker(url, HANDLERS, 'w1', ['--concurrency', '2']);
    const group = await client(url).submit(
      'sleepy',
      Array.from({ length: 5 }, () => ({ ms: 30_000 })),
    );
    await until('two running', async () => (await group.status()).running === 2);
    const view = await group.cancel();
    assert.equal(view.state, 'canceled');
    assert.equal(view.done, true);
    assert.equal(view.canceled, 5);
    await until(
      'both running handlers aborted',
      () => runs(runLog).filter((r) => r.aborted).length === 2,
    );
    const outcomes = await group.waitSettled();
    assert.ok(outcomes.every((o) => o.state === 'canceled'));
    await assert.rejects(group.wait(), (e: Error & { code?: string }) => e.code === 'group_failed');
  });

  it('timeoutMs aborts the handler and counts as a retryable failure', async () => {
    const { url } = await setup();
    await startWorker(url, HANDLERS, 'w1');
    const group = await client(url).submit('stubborn', [{ ms: 1000 }], {
      options: { timeoutMs: 100, maxAttempts: 2, backoffMs: 10 },
    });
    const [o] = await group.waitSettled();
    assert.equal(o!.state, 'failed');
    assert.equal(o!.error!.kind, 'timeout');
    assert.equal(o!.attempt, 2);
  });

  it('failFast cancels the rest at the first final failure', async () => {
    const { url } = await setup();
    await startWorker(url, HANDLERS, 'w1', ['--concurrency', '1']);
    const inputs = [0, 2, 4, 5, 6, 8, 10, 12];
    const group = await client(url).submit('failIfOdd', inputs, {
      policy: 'failFast',
      options: { maxAttempts: 1 },
    });
    const outcomes = await group.waitSettled();
    assert.equal(outcomes[3]!.state, 'failed');
    assert.match(outcomes[3]!.error!.message, /odd 5/);
    assert.deepEqual(
      outcomes.slice(0, 3).map((o) => o.value),
      [0, 2, 4],
    );
    assert.ok(
      outcomes.slice(4).every((o) => o.state === 'canceled'),
      'the rest was canceled',
    );
    assert.equal((await group.status()).done, true);
  });

  it('a second client reattaches by id; an open group takes add until sealed', async () => {
    const { url } = await setup();
    await startWorker(url, HANDLERS, 'w1');
    const open = await client(url).open('square');
    await open.add([1, 2]);
    await open.add([3]);
    const other = client(url).group(open.id);
    const waiting = other.wait();
    await open.seal();
    assert.deepEqual(await waiting, [1, 4, 9]);
  });

  it('regroup submit reads JSON Lines and prints results in input order', async () => {
    const { url, dir } = await setup();
    await startWorker(url, HANDLERS, 'w1');
    const file = join(dir, 'in.jsonl');
    writeFileSync(file, '3\n1\n2\n');
    const child = trackProcess(
      spawn(
        process.execPath,
        [CLI, 'submit', '--url', url, '--handler', 'square', '--file', file],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      ),
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    assert.equal(code, 0);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { index: number; state: string; value: number });
    assert.deepEqual(
      lines.map((l) => [l.index, l.state, l.value]),
      [
        [0, 'succeeded', 9],
        [1, 'succeeded', 1],
        [2, 'succeeded', 4],
      ],
    );
  });
});
