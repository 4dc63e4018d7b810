/**
 * What a person sees when a handler fails, against a real coordinator and a
 * real worker: the stack (fixture path and line) in `regroup tasks`, its
 * `--json`, the client's outcomes and the worker's log; bounded stacks, also
 * from a hostile worker; results JSON cannot carry; handler modules that do
 * not load; strings that would drive a terminal.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Client, type Outcome } from '../src/client/index.js';
import type { TaskView } from '../src/protocol/http.js';
import { CLI, Proc, startServer, startWorker, until } from '../src/testing/procs.js';
import { fixture, realProcesses } from './real-processes.js';
import { RawWorker } from './raw-worker.js';

const HANDLERS = fixture('error-handlers.js');
/** The documented bounds of a stored stack (docs/handlers.md). */
const STACK_MAX_BYTES = 8 * 1024;
const STACK_MAX_LINES = 50;
const WORKER_NAME = 'evil\x1b[2Jworker';
let client: Client;
let url: string;
let worker: Proc;
const { dir } = realProcesses('regroup-errors-', () => client.close());

before(async () => {
  const server = await startServer(join(dir, 'errors.db'));
  url = server.url;
  worker = await startWorker(url, HANDLERS, WORKER_NAME);
  client = new Client({ url });
});

/** The line of the fixture holding `marker`, 1-based. */
function lineOf(marker: string): number {
  const i = readFileSync(HANDLERS, 'utf8')
    .split('\n')
    .findIndex((l) => l.includes(marker));
  assert.ok(i >= 0, marker);
  return i + 1;
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args, '--url', url],
      { env: { ...process.env, REGROUP_TOKEN: '' }, maxBuffer: 64 * 1024 * 1024 },
      (e, stdout, stderr) => resolve({ code: e ? (e.code as number) : 0, stdout, stderr }),
    );
  });
}

/** Runs one task of `handler` and returns its outcome and group id. */
async function runOne(
  handler: string,
  input: unknown,
  maxAttempts = 1,
): Promise<{ id: string; outcome: Outcome }> {
  const g = await client.submit(handler, [input], { options: { maxAttempts } });
  const [outcome] = await g.waitSettled();
  assert.ok(outcome);
  return { id: g.id, outcome };
}

async function tasksJson(id: string): Promise<TaskView[]> {
  const r = await cli('tasks', id, '--json');
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { tasks: TaskView[] }).tasks;
}

void describe('a failed task keeps where its handler threw', () => {
  it('shows the stack (fixture path and line) in tasks --json, the table, the client and the log', async () => {
    const line = lineOf('THROWS HERE');
    const where = `${pathToFileURL(HANDLERS).href}:${line}:`;
    const { id, outcome } = await runOne('crunch', { steps: 2 });
    assert.equal(outcome.state, 'failed');
    const e = outcome.error!;
    assert.equal(e.kind, 'error');
    assert.equal(e.name, 'ReferenceError');
    assert.equal(e.message, 'doStep is not defined');
    assert.match(e.stack!.split('\n')[0]!, /^\s+at crunch \(file:\/\/.*:\d+:\d+\)$/);
    assert.ok(e.stack!.includes(where), e.stack);

    const [task] = await tasksJson(id);
    assert.deepEqual(task!.error, e, '--json has the error as the client does');

    const table = await cli('tasks', id);
    assert.equal(table.code, 0, table.stderr);
    const lines = table.stdout.split('\n');
    assert.match(lines[1]!, /failed.*error: ReferenceError: doStep is not defined$/);
    assert.match(lines[2]!, new RegExp(`^  at crunch \\(${HANDLERS}:${line}:\\d+\\)$`));

    const logged = await until('the worker to log the failure', () =>
      worker.out.find((l) => l.includes('"msg":"run failed"') && l.includes('"crunch"')),
    );
    const entry = JSON.parse(logged) as Record<string, unknown>;
    assert.equal(entry['level'], 'warn');
    assert.equal(entry['handler'], 'crunch');
    assert.equal(entry['taskId'], task!.taskId);
    assert.equal(entry['attempt'], 1);
    assert.equal(entry['error'], 'doStep is not defined');
    assert.ok(String(entry['stack']).includes(where));
  });

  it('clips a deep stack to its bound, at a line, with a marker', async () => {
    const { outcome } = await runOne('deep', { depth: 300 });
    const stack = outcome.error!.stack!;
    const lines = stack.split('\n');
    assert.ok(lines.length <= STACK_MAX_LINES, `${lines.length} lines`);
    assert.ok(Buffer.byteLength(stack) <= STACK_MAX_BYTES);
    assert.match(lines[0]!, /^\s+at down \(/);
    assert.ok(lines.slice(0, -1).every((l) => /^\s+at /.test(l)));
    assert.match(lines.at(-1)!, /^ {4}\[clipped \d+ more lines: a task error keeps 50 lines/);
  });

  it('a giant message does not crowd the frames out of the stack', async () => {
    const { outcome } = await runOne('giant', { size: 200_000 });
    const e = outcome.error!;
    assert.equal(e.name, 'RangeError');
    assert.ok(e.message.length < 64 * 1024);
    assert.match(e.stack!, /at giant \(/);
    assert.ok(!e.stack!.includes('mmmm'), 'the message is not repeated in the stack');
  });

  it('a result JSON cannot carry fails for good, saying what and where', async () => {
    const { outcome } = await runOne('nan', null, 3);
    assert.equal(outcome.state, 'failed');
    assert.equal(outcome.attempt, 1, 'not retried');
    assert.equal(outcome.error!.kind, 'permanent');
    assert.match(outcome.error!.message, /: result\.score is NaN; JSON cannot carry it/);
  });
});

void describe('the coordinator bounds what a worker sends', () => {
  it('a fail with a 10 MB stack is committed with the stack clipped, the rest intact', async () => {
    const w = new RawWorker(url);
    after(() => w.ws.terminate());
    await new Promise((r) => w.ws.once('open', r));
    w.send({
      t: 'hello',
      protocol: 1,
      name: 'hostile',
      handlers: ['hostile'],
      slots: 1,
      labels: [],
    });
    await w.take('welcome');
    const g = await client.submit('hostile', [1]);
    const run = await w.take('run');
    const stack = '    at evil (file:///evil.js:1:1)\n'.repeat(320_000);
    assert.ok(stack.length > 10_000_000);
    const error = { kind: 'permanent', message: 'from a hostile worker', name: 'Evil', stack };
    w.send({ t: 'fail', taskId: run.taskId, attempt: run.attempt, error });
    assert.equal((await w.take('ack')).status, 'committed');
    const [outcome] = await g.waitSettled();
    const e = outcome!.error!;
    assert.deepEqual(
      { kind: e.kind, message: e.message, name: e.name },
      { kind: 'permanent', message: 'from a hostile worker', name: 'Evil' },
    );
    assert.ok(Buffer.byteLength(e.stack!) <= STACK_MAX_BYTES);
    const lines = e.stack!.split('\n');
    assert.equal(lines.length, STACK_MAX_LINES);
    assert.equal(lines[0], '    at evil (file:///evil.js:1:1)');
    assert.match(lines.at(-1)!, /\[clipped \d+ more lines/);
  });
});

void describe('a handler module that does not load', () => {
  for (const [ext, source, line] of [
    ['js', 'export function ok() {}\n\nconst y = ;\n', 3],
    ['ts', 'export function ok(x: number): number {\n  return x;\n}\nconst y: number = ;\n', 4],
  ] as const) {
    it(`names the file and line of a syntax error (.${ext}); the worker exits 2`, async () => {
      const file = join(dir, `syntax-error.${ext}`);
      writeFileSync(file, source);
      const p = new Proc(`bad-${ext}`, ['worker', '--url', url, '--handlers', file]);
      assert.equal(await p.exited, 2);
      const said = p.out.join('\n');
      assert.ok(said.includes(`${file}:${line}:`), said);
      assert.match(said, /^regroup: bad_request: handler module .* failed to load: /m);
    });
  }
});

void describe('the CLI tables never send a control character to the terminal', () => {
  it('escapes a worker name in status and an error message in tasks; --json stays exact', async () => {
    const status = await cli('status');
    assert.equal(status.code, 0, status.stderr);
    assert.ok(!/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(status.stdout), status.stdout);
    assert.ok(status.stdout.includes('evil\\u001b[2Jworker'), status.stdout);
    const json = await cli('status', '--json');
    const { workers } = JSON.parse(json.stdout) as { workers: { name: string }[] };
    assert.ok(workers.some((w) => w.name === WORKER_NAME));

    const { id, outcome } = await runOne('evil', null);
    const tasks = await cli('tasks', id);
    assert.ok(!/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(tasks.stdout), tasks.stdout);
    assert.ok(tasks.stdout.includes('bad \\u001b]0;pwned\\u0007 \\u001b[2J done'), tasks.stdout);
    const [task] = await tasksJson(id);
    assert.equal(task!.error!.message, 'bad \x1b]0;pwned\x07 \x1b[2J done');
    assert.equal(outcome.error!.message, task!.error!.message);
  });
});
