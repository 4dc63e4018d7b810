/**
 * Saying why a task waits, at the command line (issue 12, item 4), with real
 * processes: a coordinator (SQLite), a worker offering `square` (and the other
 * handlers of fault-handlers.js), and `regroup submit --handler sqaure`: its
 * stderr says within seconds that no worker offers "sqaure" and what the
 * workers do offer; `regroup status` says it too.
 */
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { GroupView } from '../src/protocol/http.js';
import { CLI, Proc, startServer, startWorker } from '../src/testing/procs.js';
import { fixture, realProcesses } from './real-processes.js';

const HANDLERS = fixture('fault-handlers.js');
/** How soon submit must say why its group waits (the submit reply already knows). */
const PROMPT_MS = 5_000;
const tmp = realProcesses('regroup-waiting-cli-');
let url = '';

before(async () => {
  url = (await startServer(join(tmp.dir, 'w.db'))).url;
  await startWorker(url, HANDLERS, 'squarer');
});

/** Runs a CLI command to its end (bounded), with the coordinator's URL. */
async function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  const run = promisify(execFile);
  return run(process.execPath, [CLI, ...args], {
    env: { ...process.env, REGROUP_URL: url, REGROUP_TOKEN: '' },
    timeout: 20_000,
  });
}

const NO_SQAURE =
  /^waiting: no worker offers handler "sqaure" \(did you mean "square"\?\); connected workers offer: .*$/;

describe('regroup submit and status say why a group waits (real processes)', () => {
  let groupId = '';

  it('submit --handler sqaure: stderr says no worker offers "sqaure" (the worker offers square) within seconds', async () => {
    const file = join(tmp.dir, 'inputs.jsonl');
    writeFileSync(file, '1\n2\n3\n');
    const submit = new Proc('submit', [
      'submit',
      '--url',
      url,
      '--handler',
      'sqaure',
      '--file',
      file,
    ]);
    try {
      const started = Date.now();
      groupId = (await submit.waitFor(/^group (g_\S+): 3 tasks$/, PROMPT_MS))[1]!;
      const line = (await submit.waitFor(NO_SQAURE, PROMPT_MS))[0];
      assert.ok(Date.now() - started < PROMPT_MS, `said after ${Date.now() - started} ms`);
      assert.match(line, /\bsquare\b/);
      await submit.waitFor(
        /^ {2}to fix: start a worker whose handler module exports "sqaure"/,
        1000,
      );
      assert.equal(submit.exitCode, undefined, 'submit goes on waiting');
    } finally {
      await submit.kill();
    }
  });

  it('status <group> says why it waits, for how long and what to do; the overview marks it', async () => {
    assert.ok(groupId, 'the submit test ran first');
    const one = await cli('status', groupId);
    assert.match(
      one.stdout,
      /^waiting\s+no worker offers handler "sqaure" \(did you mean "square"\?\); connected workers offer: /m,
    );
    assert.match(one.stdout, /^waiting for\s+\S+ \(since \S+, no_handler\)$/m);
    assert.match(one.stdout, /^to fix\s+start a worker whose handler module exports "sqaure"/m);
    const view = JSON.parse((await cli('status', groupId, '--json')).stdout) as GroupView;
    assert.equal(view.waiting?.code, 'no_handler');
    assert.equal(view.pending, 3);

    const all = await cli('status');
    const row = all.stdout.split('\n').find((l) => l.startsWith(groupId));
    assert.match(row ?? '', /\ssealed \(waiting\)\s/, all.stdout);
    assert.match(
      all.stdout,
      new RegExp(`^group ${groupId} waits: no worker offers handler "sqaure"`, 'm'),
    );
  });
});
