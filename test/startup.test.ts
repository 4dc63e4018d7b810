/**
 * Start-up refusals of `regroup server`, with real processes: a busy port is
 * found before anything is opened (the database file is not even created),
 * and the error names the port and `--port`; a bad option is one line with a
 * code, never `internal`.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { killAll, liveProcesses, Proc, tempDir } from '../src/testing/procs.js';

const tmp = tempDir('regroup-startup-');
let blocker: Server | null = null;

after(async () => {
  await killAll();
  await new Promise<void>((r) => (blocker ? blocker.close(() => r()) : r()));
  tmp.cleanup();
  assert.equal(liveProcesses(), 0, 'no process left running');
});

function busyPort(): Promise<number> {
  return new Promise((resolve) => {
    blocker = createServer(() => undefined);
    blocker.listen(0, '127.0.0.1', () => resolve((blocker!.address() as AddressInfo).port));
  });
}

describe('regroup server start-up refusals', () => {
  it('a busy port: exit 2, port_in_use naming the port and --port, the database never opened', async () => {
    const port = await busyPort();
    const db = join(tmp.dir, 'busy.db');
    const p = new Proc('server', ['server', '--db', db, '--port', String(port)]);
    const code = await p.exited;
    const out = p.out.join('\n');
    assert.equal(code, 2, out);
    assert.match(out, /regroup: port_in_use: /);
    assert.match(out, new RegExp(`port ${port}`));
    assert.match(out, /--port/);
    assert.doesNotMatch(out, /internal/);
    assert.equal(existsSync(db), false, 'the database was not created: nothing was opened');
  });

  it('a bad option value: one line with its code, exit 2', async () => {
    const db = join(tmp.dir, 'opt.db');
    const p = new Proc('server', [
      'server',
      '--db',
      db,
      '--port',
      '0',
      '--allow-origin',
      'not an origin',
    ]);
    const code = await p.exited;
    const out = p.out.join('\n');
    assert.equal(code, 2, out);
    assert.match(out, /regroup: bad_request: --allow-origin: "not an origin" is not an origin/);
    assert.doesNotMatch(out, /regroup: internal/);
  });
});
