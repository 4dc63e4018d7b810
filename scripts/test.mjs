#!/usr/bin/env node
// Runs every compiled test file with node's test runner. Node 20's --test does
// not expand globs, so the list is built here. Unit tests run first, then the
// integration and fault tests under test/, one file at a time.
//
// A run cleans up after itself however it ends (docs/testing.md):
// - everything it starts inherits REGROUP_TEST_RUN_ID=<a fresh id>, and
//   every temporary folder lands in one folder of its own (TMPDIR, which
//   os.tmpdir() reads);
// - on SIGINT, SIGTERM or SIGHUP the signal goes on to node --test; the test
//   processes sweep their own children and folders (src/testing/cleanup.ts)
//   when signalled or when their parent goes;
// - then, and at the end of any run, what still carries the id is killed
//   and the folder removed (kept, and named, when a test failed: a failed
//   fault run keeps its histories there).
import { cpSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';

function find(dir) {
  let out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Tests find their fixtures beside them, in source and compiled form alike.
cpSync('test/fixtures', 'dist/test/fixtures', { recursive: true });

const filter = process.argv.slice(2);
let files = [...find('dist/src'), ...find('dist/test')];
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}
const { RUN_ID_VAR, processesWith, killProcessesWith, removeTree } = await import(
  new URL('../dist/src/testing/sweep.js', import.meta.url).href
);

const runId = randomUUID();
const root = mkdtempSync(join(tmpdir(), 'regroup-run-'));
const child = spawn(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, [RUN_ID_VAR]: runId, TMPDIR: root } },
);
const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));

/** Kills what is left of the run; says so if `loud` (a normal end should leave nothing). */
function sweep(loud) {
  const left = killProcessesWith(RUN_ID_VAR, runId);
  if (loud && left.length > 0) {
    console.error(`scripts/test.mjs: killed ${left.length} process(es) the tests left running:`);
    for (const p of left) console.error(`  ${p.pid} [${p.state}] ${p.cmd.slice(0, 200)}`);
  }
}

let interrupted = null;
async function interrupt(sig) {
  if (interrupted) {
    // A second signal: no more waiting.
    sweep(false);
    removeTree(root);
    process.exit(128 + constants.signals[sig]);
  }
  interrupted = sig;
  try {
    child.kill(sig);
  } catch {
    // gone already
  }
  // node --test reports and exits; each test process sweeps its own on the
  // signal or once its parent is gone. Then nothing of the run may remain.
  const deadline = Date.now() + 5000;
  await Promise.race([exited, sleep(5000)]);
  while (Date.now() < deadline && processesWith(RUN_ID_VAR, runId).length > 0) await sleep(50);
  sweep(false);
  removeTree(root);
  process.exit(128 + constants.signals[sig]);
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => void interrupt(sig));

const { code, signal } = await exited;
if (interrupted) await new Promise(() => {}); // interrupt() ends the process
sweep(true);
const status = code ?? (signal ? 128 + constants.signals[signal] : 1);
// A failed run keeps the tests' own folders (regroup-*: a failed fault run's
// histories); nothing else (a tool's cache) is worth keeping.
let kept = [];
try {
  kept = readdirSync(root).filter((name) => name.startsWith('regroup-'));
} catch {
  // gone
}
if (status !== 0 && kept.length > 0) {
  console.error(`scripts/test.mjs: the temporary files of this run are kept in ${root}`);
} else {
  removeTree(root);
}
process.exit(status);
