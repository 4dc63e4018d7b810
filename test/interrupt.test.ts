/**
 * An interrupted test run leaves nothing behind (issue 13, item 5). Each case
 * starts `node scripts/test.mjs stall.test` in its own process group, with a
 * marker of its own in the environment every descendant inherits and a
 * TMPDIR of its own; once the coordinator of the stall test is paused
 * (SIGSTOP, the hardest process to end) and its worker runs, the run is
 * interrupted. Then no marked process may remain, nor any folder.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { onCleanup, trackDir, trackProcess } from '../src/testing/cleanup.js';
import { until } from '../src/testing/procs.js';
import {
  killProcessesWith,
  processesWith,
  removeTree,
  type ProcInfo,
} from '../src/testing/sweep.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MARK = 'REGROUP_INTERRUPT_MARK';

interface Run {
  child: ChildProcess;
  mark: string;
  tmp: string;
  out: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  procs: () => ProcInfo[];
}

const runs: Run[] = [];
/** Whatever happens to the assertions, every run goes, group, marked processes and folder. */
function dispose(r: Run): void {
  try {
    process.kill(-r.child.pid!, 'SIGKILL');
  } catch {
    // the group is gone, as it should be
  }
  killProcessesWith(MARK, r.mark);
  removeTree(r.tmp);
}
after(() => runs.forEach(dispose));

function startRun(): Run {
  const mark = randomUUID();
  const tmp = mkdtempSync(join(tmpdir(), 'regroup-interrupt-'));
  trackDir(tmp);
  const child = trackProcess(
    spawn(process.execPath, ['scripts/test.mjs', 'stall.test'], {
      cwd: REPO,
      detached: true,
      // NODE_TEST_CONTEXT would make the inner node --test skip its files, taking itself for nested.
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, [MARK]: mark, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    { group: true },
  );
  const out: string[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d.toString()));
  child.stderr.on('data', (d: Buffer) => out.push(d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  const run: Run = { child, mark, tmp, out, exited, procs: () => processesWith(MARK, mark) };
  onCleanup(() => killProcessesWith(MARK, mark));
  runs.push(run);
  return run;
}

/** Until the stall test's coordinator is stopped while its worker runs; returns the test file's process. */
async function pausedCoordinator(r: Run): Promise<ProcInfo> {
  const found = await until(
    'a stopped coordinator and a running worker',
    () => {
      const ps = r.procs();
      const stopped = ps.some((p) => p.state === 'T' && / server /.test(p.cmd));
      const worker = ps.some((p) => / worker /.test(p.cmd));
      const file = ps.find(
        (p) => p.cmd.endsWith('stall.test.js') && !p.cmd.split(' ').includes('--test'),
      );
      return stopped && worker ? file : undefined;
    },
    30_000,
    20,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; the run said:\n${r.out.join('').slice(-3000)}`);
  });
  return found;
}

const describeList = (ps: ProcInfo[]): string =>
  ps.map((p) => `${p.pid} [${p.state}] ${p.cmd.slice(0, 160)}`).join('\n');

/** Nothing of the run within a few seconds: no marked process. */
async function nothingLeft(r: Run): Promise<void> {
  await until('no process of the run left', () => r.procs().length === 0, 10_000).catch(() => {
    assert.fail(`processes of the run left:\n${describeList(r.procs())}`);
  });
}

describe('an interrupted test run (real processes)', { timeout: 55_000 }, () => {
  for (const [sig, whom, what] of [
    ['SIGINT', 'group', 'SIGINT to the process group, as Ctrl-C sends it'],
    ['SIGTERM', 'group', 'SIGTERM to the process group'],
    ['SIGTERM', 'runner', 'SIGTERM to scripts/test.mjs alone, as a CI timeout may send it'],
  ] as const) {
    it(`${what}: no process, no folder left`, async () => {
      const r = startRun();
      await pausedCoordinator(r);
      process.kill(whom === 'group' ? -r.child.pid! : r.child.pid!, sig);
      await nothingLeft(r);
      assert.deepEqual(readdirSync(r.tmp), [], `folders of the run left in ${r.tmp}`);
      const { code } = await r.exited;
      assert.equal(code, sig === 'SIGINT' ? 130 : 143, 'the runner exits as interrupted');
    });
  }

  it('a test process killed outright (SIGKILL): its children go, the stopped one when the run ends; its folder is kept and named', async () => {
    const r = startRun();
    const file = await pausedCoordinator(r);
    process.kill(file.pid, 'SIGKILL');
    const { code } = await r.exited;
    assert.notEqual(code, 0, 'the run fails');
    await nothingLeft(r);
    // The killed test could not remove its folder: a failed run keeps and names it.
    assert.match(r.out.join(''), /temporary files of this run are kept in/);
  });
});
