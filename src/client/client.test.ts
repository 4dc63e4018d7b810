import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Client, GroupFailedError, RegroupError, type Outcome } from './index.js';
import { FakeCoordinator } from './fake-coordinator.test-helper.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const square = (x: unknown): number => (x as number) ** 2;

void describe('Client against a fake coordinator', () => {
  let fake: FakeCoordinator;
  let client: Client;

  beforeEach(async () => {
    fake = new FakeCoordinator();
    await fake.start();
    client = new Client({ url: fake.url, retryMinMs: 5, retryMaxMs: 20 });
  });

  afterEach(async () => {
    client.close();
    await fake.stop();
  });

  void it('submits a small group in one sealed request with a random idempotency key', async () => {
    const group = await client.submit('square', [1, 2, 3]);
    assert.equal(fake.requests.length, 1);
    const req = fake.requests[0]!;
    assert.equal(req.path, '/v1/groups');
    assert.deepEqual(req.body.inputs, [1, 2, 3]);
    assert.equal(req.body.open, undefined);
    assert.match(req.body.idempotencyKey ?? '', UUID);
    assert.equal((await group.status()).state, 'sealed');
    await client.submit('square', [1]);
    assert.notEqual(fake.requests[2]!.body.idempotencyKey, req.body.idempotencyKey);
  });

  void it('sends a large group in chunks with offsets, then seals it', async () => {
    const inputs = [0, 1, 2, 3, 4];
    const group = await client.submit('square', inputs, {
      chunkSize: 2,
      policy: 'failFast',
      options: { maxAttempts: 2 },
    });
    const sent = fake.requests.map((r) => [r.path, r.body.inputs, r.body.offset, r.body.open]);
    assert.deepEqual(sent, [
      ['/v1/groups', [0, 1], undefined, true],
      [`/v1/groups/${group.id}/tasks`, [2, 3], 2, undefined],
      [`/v1/groups/${group.id}/tasks`, [4], 4, undefined],
      [`/v1/groups/${group.id}/seal`, undefined, undefined, undefined],
    ]);
    assert.equal(fake.requests[0]!.body.policy, 'failFast');
    assert.deepEqual(fake.requests[0]!.body.options, { maxAttempts: 2 });
    fake.runAll(group.id, square);
    assert.deepEqual(await group.wait(), [0, 1, 4, 9, 16]);
  });

  void it('retries a submit whose reply was lost with the same idempotency key: one group', async () => {
    fake.inject.push('drop');
    const group = await client.submit('square', [1, 2], { idempotencyKey: 'job-7' });
    assert.equal(fake.requests.length, 2);
    assert.deepEqual(
      fake.requests.map((r) => r.body.idempotencyKey),
      ['job-7', 'job-7'],
    );
    assert.equal(fake.groups.size, 1);
    assert.equal(group.id, 'g1');
  });

  void it('keeps the random key across retries of one chunked submit, and add offsets stay correct', async () => {
    fake.inject.push('drop', 'pass', 'drop');
    const group = await client.submit('square', [1, 2, 3], { chunkSize: 1 });
    const creates = fake.requests.filter((r) => r.path === '/v1/groups');
    assert.equal(creates.length, 2);
    assert.equal(creates[0]!.body.idempotencyKey, creates[1]!.body.idempotencyKey);
    const offsets = fake.requests
      .filter((r) => r.path.endsWith('/tasks'))
      .map((r) => r.body.offset);
    assert.deepEqual(offsets, [1, 1, 2]);
    // The first add's reply was lost and it was sent again: applied once.
    assert.equal(fake.view(group.id).total, 3);
    assert.equal(fake.view(group.id).state, 'sealed');
  });

  void it('wait resolves in input order across pages of tasks', async () => {
    const inputs = Array.from({ length: 2500 }, (_, i) => i);
    const group = await client.submit('square', inputs);
    for (let i = inputs.length - 1; i >= 0; i--) fake.finish(group.id, i, { value: i * i });
    assert.deepEqual(
      await group.wait(),
      inputs.map((i) => i * i),
    );
    const pages = fake.requests.filter((r) => r.path.includes('/tasks?')).map((r) => r.path);
    assert.deepEqual(pages, [
      `/v1/groups/${group.id}/tasks?limit=1000`,
      `/v1/groups/${group.id}/tasks?limit=1000&after=999`,
      `/v1/groups/${group.id}/tasks?limit=1000&after=1999`,
    ]);
  });

  void it('wait collects a group whose results outgrow a page: short pages with next set', async () => {
    fake.pageBytes = 250;
    const inputs = Array.from({ length: 7 }, (_, i) => i);
    const group = await client.submit('big', inputs);
    // 98 characters: 100 bytes of JSON each, two to a page.
    const big = (x: unknown): string => String(x).repeat(98);
    fake.runAll(group.id, big);
    assert.deepEqual(await group.wait(), inputs.map(big));
    const paths = fake.requests.map((r) => r.path.replace(`/v1/groups/${group.id}`, ''));
    assert.deepEqual(paths.slice(1), [
      '/wait?timeoutMs=30000&tasks=1000',
      '/tasks?limit=1000',
      '/tasks?limit=1000&after=1',
      '/tasks?limit=1000&after=3',
      '/tasks?limit=1000&after=5',
    ]);
  });

  void it('waitSettled takes a done group from the wait reply when its results fit one page', async () => {
    fake.pageBytes = 1000;
    const group = await client.submit('square', [1, 2, 3]);
    fake.runAll(group.id, square);
    assert.deepEqual(
      (await group.waitSettled()).map((o) => o.value),
      [1, 4, 9],
    );
    assert.equal(fake.requests.filter((r) => r.path.includes('/tasks')).length, 0);
  });

  void it('a page that says more follow without progress is an error, not a loop', async () => {
    fake.pageBytes = 1;
    const group = await client.submit('square', [1, 2]);
    fake.runAll(group.id, square);
    fake.tamper = (path, reply) => (path.endsWith('/tasks') ? { tasks: [], next: -1 } : reply);
    await assert.rejects(group.wait(), (e: unknown) => {
      assert.ok(e instanceof RegroupError);
      assert.equal(e.code, 'internal');
      assert.match(e.message, /out of order/);
      return true;
    });
    assert.equal(fake.requests.filter((r) => r.path.includes('/tasks')).length, 1);
  });

  void it('wait long-polls until the group is done', async () => {
    const group = await client.submit('square', [5, 6]);
    const waiting = group.wait();
    setTimeout(() => fake.runAll(group.id, square), 50);
    assert.deepEqual(await waiting, [25, 36]);
    assert.ok(fake.requests.some((r) => r.path.includes('/wait?timeoutMs=30000')));
  });

  void it('wait rejects with group_failed and every outcome; waitSettled resolves', async () => {
    const group = await client.submit('square', [1, 2, 3, 4]);
    fake.finish(group.id, 0, { value: 1 });
    fake.finish(group.id, 1, { error: { kind: 'permanent', message: 'bad input 2' } });
    fake.finish(group.id, 3, { value: 16 });
    await group.cancel();
    const e = await group.wait().then(
      () => assert.fail('wait should reject'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof GroupFailedError && e instanceof RegroupError);
    assert.equal(e.code, 'group_failed');
    assert.match(e.message, /1 of 4 tasks failed, 1 canceled/);
    assert.match(e.message, /#1 permanent: bad input 2; #2 canceled/);
    assert.deepEqual(
      e.outcomes.map((o) => [o.index, o.state, o.value]),
      [
        [0, 'succeeded', 1],
        [1, 'failed', undefined],
        [2, 'canceled', undefined],
        [3, 'succeeded', 16],
      ],
    );
    const settled = await group.waitSettled();
    assert.deepEqual(settled, e.outcomes);
    assert.deepEqual(settled[1]!.error, { kind: 'permanent', message: 'bad input 2' });
    assert.equal(settled[1]!.attempt, 1);
  });

  void it('results() yields outcomes in finishing order, following the cursor', async () => {
    const group = await client.submit('square', [10, 20, 30]);
    const order = [2, 0, 1];
    const seen: Outcome[] = [];
    const finishNext = (): void => {
      const i = order[seen.length];
      if (i !== undefined) fake.finish(group.id, i, { value: i });
    };
    finishNext();
    for await (const o of group.results()) {
      seen.push(o);
      setTimeout(finishNext, 10);
    }
    assert.deepEqual(
      seen.map((o) => o.index),
      order,
    );
    const afters = fake.requests
      .filter((r) => r.path.includes('/finished'))
      .map((r) => new URL(r.path, 'http://x').searchParams.get('after'));
    assert.deepEqual(afters, [null, '1', '2']);
  });

  void it('results() pages through a done group with a small limit', async () => {
    const group = await client.submit('square', [1, 2, 3, 4, 5]);
    fake.runAll(group.id, square);
    const seen: number[] = [];
    for await (const o of group.results({ limit: 2 })) seen.push(o.value as number);
    assert.deepEqual(seen, [1, 4, 9, 16, 25]);
    assert.equal(fake.requests.filter((r) => r.path.includes('/finished')).length, 3);
  });

  void it('results() goes on past pages cut by bytes until the coordinator says done', async () => {
    fake.pageBytes = 250;
    const group = await client.submit('big', [0, 1, 2, 3, 4]);
    for (const i of [3, 1, 4, 0, 2]) fake.finish(group.id, i, { value: String(i).repeat(98) });
    const seen: number[] = [];
    for await (const o of group.results()) seen.push(o.index);
    assert.deepEqual(seen, [3, 1, 4, 0, 2]);
    const afters = fake.requests
      .filter((r) => r.path.includes('/finished'))
      .map((r) => new URL(r.path, 'http://x').searchParams.get('after'));
    assert.deepEqual(afters, [null, '2', '4']);
  });

  void it('lists groups with limit and before, and workers', async () => {
    await client.submit('square', [1]);
    await client.submit('square', [2]);
    const groups = await client.listGroups({ limit: 5, before: 123 });
    assert.deepEqual(
      groups.map((g) => g.id),
      ['g2', 'g1'],
    );
    assert.equal(fake.requests.at(-1)!.path, '/v1/groups?limit=5&before=123');
    assert.deepEqual(await client.workers(), []);
  });

  void it('rejects at once on a 4xx with its code', async () => {
    const e = await client
      .group('nope')
      .wait()
      .catch((err: unknown) => err);
    assert.ok(e instanceof RegroupError);
    assert.equal(e.code, 'group_not_found');
    assert.equal(fake.requests.length, 1);
  });

  void it('open groups take adds in order with offsets, then seal', async () => {
    const open = await client.open('square', { idempotencyKey: 'open-1' });
    const [a, b] = await Promise.all([open.add([4, 5]), open.add([6])]);
    assert.equal(a.total, 2);
    assert.equal(b.total, 3);
    assert.deepEqual(
      fake.requests.slice(1).map((r) => r.body.offset),
      [0, 2],
    );
    assert.equal((await open.seal()).state, 'sealed');
    // A second seal (as after a lost reply) answers with the group, not an error.
    assert.equal((await open.seal()).state, 'sealed');
    fake.runAll(open.id, square);
    assert.deepEqual(await open.wait(), [16, 25, 36]);
  });

  void it('sends the token as a bearer header', async () => {
    fake.token = 's3cret';
    const authed = new Client({ url: fake.url, token: 's3cret' });
    await authed.submit('square', [1]);
    authed.close();
    assert.equal(fake.requests[0]!.authorization, 'Bearer s3cret');
    const e = await client.submit('square', [1]).catch((err: unknown) => err);
    assert.equal((e as RegroupError).code, 'unauthorized');
  });
});
