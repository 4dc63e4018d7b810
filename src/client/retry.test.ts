import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Client, RegroupError, type RetryInfo } from './index.js';
import { FakeCoordinator } from './fake-coordinator.test-helper.js';

const fast = { retryMinMs: 5, retryMaxMs: 20 };

/** A port nothing listens on (bound, then closed). */
async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

async function rejection(p: Promise<unknown>): Promise<RegroupError> {
  const e = await p.then(
    () => assert.fail('expected a rejection'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof RegroupError, `expected a RegroupError, got ${String(e)}`);
  return e;
}

void describe('Client retries, failover and close', () => {
  let fake: FakeCoordinator;
  const clients: Client[] = [];
  const client = (opts: Partial<ConstructorParameters<typeof Client>[0]> = {}): Client => {
    const c = new Client({ url: fake.url, ...fast, ...opts });
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    fake = new FakeCoordinator();
    await fake.start();
  });

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await fake.stop();
  });

  void it('retries 503 replies, then succeeds', async () => {
    fake.inject.push({ status: 503, code: 'unavailable' }, { status: 503, code: 'not_leader' });
    const group = await client().submit('square', [1]);
    assert.equal(group.id, 'g1');
    assert.equal(fake.requests.length, 3);
  });

  void it('does not retry a 500', async () => {
    fake.inject.push({ status: 500, code: 'internal' });
    const e = await rejection(client().submit('square', [1]));
    assert.equal(e.code, 'internal');
    assert.equal(fake.requests.length, 1);
  });

  void it('gives up after reconnectForMs with connection_failed', async () => {
    const c = new Client({ url: await deadUrl(), ...fast, reconnectForMs: 100 });
    clients.push(c);
    const e = await rejection(c.group('g1').status());
    assert.equal(e.code, 'connection_failed');
    assert.match(
      e.message,
      /cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused \(ECONNREFUSED\): no coordinator listens there; start one with `regroup server`/,
    );
  });

  void it('tells onRetry of each retry (what failed, the delay, the window); a throwing hook changes nothing', async () => {
    const seen: RetryInfo[] = [];
    const c = new Client({
      url: await deadUrl(),
      ...fast,
      reconnectForMs: 200,
      onRetry: (info) => {
        seen.push(info);
        throw new Error('a careless hook');
      },
    });
    clients.push(c);
    const e = await rejection(c.group('g1').status());
    assert.equal(e.code, 'connection_failed');
    assert.ok(seen.length >= 1, 'told at least once');
    assert.equal(seen[0]!.retry, 1);
    assert.equal(seen[0]!.forMs, 200);
    assert.equal(seen[0]!.error.code, 'connection_failed');
    for (const s of seen) assert.ok(s.elapsedMs + s.delayMs <= 200);
    assert.throws(
      () => new Client({ url: 'http://x', onRetry: 'no' as unknown as () => void }),
      /onRetry must be a function/,
    );
  });

  void it('wait keeps waiting through a coordinator restart on the same port', async () => {
    const c = client();
    const group = await c.submit('square', [2, 3]);
    await fake.stop();
    const waiting = group.wait();
    await new Promise((resolve) => setTimeout(resolve, 150));
    const before = fake.requests.length;
    await fake.start();
    fake.runAll(group.id, (x) => (x as number) ** 2);
    assert.deepEqual(await waiting, [4, 9]);
    assert.ok(fake.requests.length > before);
  });

  void it('goes straight to the leader a standby names, even one it was not given', async () => {
    const standby = new FakeCoordinator();
    await standby.start();
    try {
      standby.inject.push({
        status: 503,
        code: 'not_leader',
        headers: { 'regroup-leader': fake.url + '/' },
      });
      const c = client({ url: [standby.url], retryMinMs: 60_000, retryMaxMs: 60_000 });
      const group = await c.submit('square', [1]);
      assert.equal(standby.requests.length, 1);
      assert.equal(fake.requests.length, 1, 'no backoff: the leader got the retry at once');
      await group.status();
      assert.equal(standby.requests.length, 1, 'it stays with the leader');
    } finally {
      await standby.stop();
    }
  });

  void it('a loop of standbys naming each other ends in backoff, not a spin', async () => {
    const x = new FakeCoordinator();
    const y = new FakeCoordinator();
    await x.start();
    await y.start();
    try {
      for (let i = 0; i < 50; i++) {
        x.inject.push({ status: 503, code: 'not_leader', headers: { 'regroup-leader': y.url } });
        y.inject.push({ status: 503, code: 'not_leader', headers: { 'regroup-leader': x.url } });
      }
      const c = client({ url: [x.url], retryMinMs: 50, retryMaxMs: 50 });
      const started = Date.now();
      const done = c.submit('square', [1]).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 300));
      c.close();
      await done;
      const requests = x.requests.length + y.requests.length;
      assert.ok(requests < 40, `${requests} requests in ${Date.now() - started} ms`);
    } finally {
      await x.stop();
      await y.stop();
    }
  });

  void it('fails over to the next URL and sticks to the one that answers', async () => {
    const other = new FakeCoordinator();
    await other.start();
    try {
      for (let i = 0; i < 10; i++) other.inject.push({ status: 503, code: 'not_leader' });
      const c = client({ url: [await deadUrl(), other.url, fake.url] });
      const group = await c.submit('square', [1]);
      const seenByOther = other.requests.length;
      assert.equal(seenByOther, 1);
      await group.status();
      await group.status();
      assert.equal(other.requests.length, seenByOther);
      assert.equal(fake.requests.length, 3);
    } finally {
      await other.stop();
    }
  });

  void it('close() rejects a pending wait with closed promptly', async () => {
    const c = client();
    const group = await c.submit('square', [1]);
    const waiting = group.wait();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(fake.requests.some((r) => r.path.includes('/wait')));
    const t0 = Date.now();
    c.close();
    const e = await rejection(waiting);
    assert.equal(e.code, 'closed');
    assert.ok(Date.now() - t0 < 1000);
    assert.equal((await rejection(group.status())).code, 'closed');
    assert.equal((await rejection(c.submit('square', [1]))).code, 'closed');
  });

  void it('close() leaves no handle open: a process waiting on a group exits by itself', async () => {
    const script = [
      `import { Client } from ${JSON.stringify(new URL(import.meta.url.endsWith('.ts') ? './index.ts' : './index.js', import.meta.url).href)};`,
      'const client = new Client({ url: process.env.FAKE_URL });',
      "const group = await client.submit('square', [1]);",
      'setTimeout(() => client.close(), 100);',
      'await group.wait().catch((e) => console.log(e.code));',
    ].join('\n');
    const child = spawn(
      process.execPath,
      [
        ...(import.meta.url.endsWith('.ts') ? ['--import', 'tsx'] : []),
        '--input-type=module',
        '-e',
        script,
      ],
      { env: { ...process.env, FAKE_URL: fake.url }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += String(d)));
    const killer = setTimeout(() => child.kill(), 10_000);
    const [code, signal] = (await once(child, 'exit')) as [number | null, string | null];
    clearTimeout(killer);
    assert.equal(signal, null, 'the child did not exit by itself (killed)');
    assert.equal(code, 0);
    assert.equal(out.trim(), 'closed');
    // The fake still holds the long poll the child aborted: the child closed it.
    assert.equal(fake.view('g1').done, false);
  });

  void it('close() also ends a retry sleep and results()', async () => {
    const c = new Client({ url: await deadUrl(), retryMinMs: 60_000, retryMaxMs: 60_000 });
    const group = c.group('g1');
    const settled = group.waitSettled();
    const iter = group.results()[Symbol.asyncIterator]();
    const next = iter.next();
    await new Promise((resolve) => setTimeout(resolve, 50));
    c.close();
    assert.equal((await rejection(settled)).code, 'closed');
    assert.equal((await rejection(next)).code, 'closed');
  });

  void it('an AbortSignal stops a wait with its reason', async () => {
    const group = await client().submit('square', [1]);
    const ctl = new AbortController();
    const waiting = group.wait({ signal: ctl.signal });
    setTimeout(() => ctl.abort(new Error('enough')), 30);
    await assert.rejects(waiting, /enough/);
  });
});
