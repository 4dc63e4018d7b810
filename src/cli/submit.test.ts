import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FakeCoordinator } from '../client/fake-coordinator.test-helper.js';

// Runs from source under tsx or compiled under dist: spawn the same form.
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const MAIN = new URL(`./main${EXT}`, import.meta.url).pathname;
const LOADER = EXT === '.ts' ? ['--import', 'tsx'] : [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `onStart` may drive the fake coordinator while it runs. */
async function cli(args: string[], stdin: string, onStart?: () => Promise<void>): Promise<Run> {
  const child = spawn(process.execPath, [...LOADER, MAIN, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, REGROUP_URL: '', REGROUP_TOKEN: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += String(d)));
  child.stderr.on('data', (d) => (stderr += String(d)));
  child.stdin.end(stdin);
  const killer = setTimeout(() => child.kill(), 20_000);
  try {
    await onStart?.();
    const [code] = (await once(child, 'exit')) as [number | null];
    return { code, stdout, stderr };
  } finally {
    clearTimeout(killer);
  }
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(cond(), 'timed out waiting');
}

void describe('regroup submit (against a fake coordinator)', () => {
  let fake: FakeCoordinator;
  beforeEach(async () => {
    fake = new FakeCoordinator();
    await fake.start();
  });
  afterEach(() => fake.stop());

  void it('prints results in input order and exits 1 when a task failed', async () => {
    const run = await cli(
      ['submit', '--url', fake.url, '--handler', 'square', '--max-attempts', '2', '--token', 't'],
      '3\n1\n"x"\n2\n',
      async () => {
        await until(() => fake.groups.has('g1'));
        fake.runAll('g1', (x) => {
          if (typeof x !== 'number') throw new Error('not a number');
          return x * x;
        });
      },
    );
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), [
      '{"index":0,"state":"succeeded","value":9}',
      '{"index":1,"state":"succeeded","value":1}',
      '{"index":2,"state":"failed","error":{"kind":"error","message":"not a number"}}',
      '{"index":3,"state":"succeeded","value":4}',
    ]);
    assert.match(run.stderr, /group g1: 4 tasks/);
    assert.match(run.stderr, /progress: 4\/4 finished, 1 failed/);
    const create = fake.requests[0]!;
    assert.deepEqual(create.body.options, { maxAttempts: 2 });
    assert.equal(create.authorization, 'Bearer t');
  });

  void it('exits 0 when all succeeded; --no-wait prints the group id', async () => {
    const noWait = await cli(['submit', '--url', fake.url, '--handler', 'h', '--no-wait'], '1\n');
    assert.equal(noWait.code, 0, noWait.stderr);
    assert.equal(noWait.stdout, 'g1\n');
    const run = await cli(['submit', '--url', fake.url, '--handler', 'h'], '5\n', async () => {
      await until(() => fake.groups.has('g2'));
      fake.runAll('g2', (x) => x);
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, '{"index":0,"state":"succeeded","value":5}\n');
  });

  void it('exits 2 naming the line of a bad input, submitting nothing', async () => {
    const run = await cli(['submit', '--url', fake.url, '--handler', 'h'], '1\n{oops\n');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^regroup: invalid_json: stdin line 2 is not valid JSON/m);
    assert.equal(fake.requests.length, 0);
  });

  void it('exits 2 with the error code of a refused request, and on usage errors', async () => {
    fake.inject.push({ status: 400, code: 'validation_failed' });
    const run = await cli(['submit', '--url', fake.url, '--handler', 'h'], '1\n');
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^regroup: validation_failed: fake validation_failed$/m);
    const usage = await cli(['submit', '--url', fake.url, '--handler', 'h', '--policy', 'x'], '');
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--policy/);
  });
});
