/**
 * Deeply nested JSON against real processes (issue 11): an input 3,000
 * levels deep is refused with a clear 400 before it is parsed, and every
 * other task still finishes; a handler whose result is nested deeper than the
 * limit fails its own task as permanent, and the other runs of the same
 * worker (batched in the same frames) still commit.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '../src/client/index.js';
import { killAll, liveProcesses, startServer, startWorker, tempDir } from '../src/testing/procs.js';

const HANDLERS = fileURLToPath(new URL('../../test/fixtures/deep-handlers.js', import.meta.url));
const tmp = tempDir('regroup-deep-');
const clients: Client[] = [];

after(async () => {
  for (const c of clients) c.close();
  await killAll();
  tmp.cleanup();
  assert.equal(liveProcesses(), 0, 'no process left running');
});

function nested(depth: number): string {
  return '['.repeat(depth) + ']'.repeat(depth);
}

describe('deeply nested JSON (real coordinator and worker)', () => {
  it('a 3,000-deep input is a 400 too_deep; every other task finishes', async () => {
    const server = await startServer(join(tmp.dir, 'in.db'));
    await startWorker(server.url, HANDLERS, 'w1', ['--concurrency', '8']);
    const client = new Client({ url: server.url });
    clients.push(client);
    const others = await client.submit(
      'plusOne',
      Array.from({ length: 20 }, (_, i) => ({ x: i, ms: 200 })),
    );
    const r = await fetch(`${server.url}/v1/groups`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"handler":"plusOne","inputs":[${nested(3000)}]}`,
    });
    assert.equal(r.status, 400);
    const body = (await r.json()) as { error: { code: string; message: string } };
    assert.equal(body.error.code, 'too_deep');
    assert.match(body.error.message, /deeper than \d+ levels/);
    assert.match(body.error.message, /--max-json-depth/);
    // A deep value inside an existing open group is refused the same way, and adds nothing.
    const open = await client.open('plusOne');
    const add = await fetch(`${server.url}/v1/groups/${open.id}/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"inputs":[{"x":1,"deep":${nested(3000)}}],"offset":0}`,
    });
    assert.equal(add.status, 400);
    assert.equal((await open.status()).total, 0, 'nothing was added');
    const results = await others.wait();
    assert.deepEqual(
      results,
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    await open.seal();
  });

  it('a result deeper than the limit fails its task as permanent; the runs beside it commit', async () => {
    const server = await startServer(join(tmp.dir, 'out.db'));
    await startWorker(server.url, HANDLERS, 'w2', ['--concurrency', '8']);
    const client = new Client({ url: server.url });
    clients.push(client);
    // All finish at the same moment, so their reports share the worker's frames.
    const inputs = [
      { depth: 3000, ms: 300 },
      ...Array.from({ length: 6 }, () => ({ depth: 3, ms: 300 })),
      { depth: 65, ms: 300 },
    ];
    const group = await client.submit('deepResult', inputs);
    const outcomes = await group.waitSettled();
    assert.equal(outcomes.length, 8);
    for (const i of [0, 7]) {
      const o = outcomes[i]!;
      assert.equal(o.state, 'failed', `task ${i} (depth ${inputs[i]!.depth})`);
      assert.equal(o.error?.kind, 'permanent');
      assert.match(o.error?.message ?? '', /deeper than 64 levels/);
    }
    for (let i = 1; i <= 6; i++) {
      assert.equal(outcomes[i]!.state, 'succeeded', `task ${i}`);
      assert.deepEqual(outcomes[i]!.value, [[[0]]]);
    }
    // The worker is still there and healthy: it runs more.
    const more = await client.submit('deepResult', [{ depth: 64, ms: 0 }]);
    const [v] = await more.wait();
    let d = 0;
    for (let x: unknown = v; Array.isArray(x); x = x[0]) d++;
    assert.equal(d, 64, 'a result exactly at the limit commits');
  });
});
