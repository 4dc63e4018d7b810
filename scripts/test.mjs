#!/usr/bin/env node
// Runs every compiled test file with node's test runner. Node 20's --test does
// not expand globs, so the list is built here. Unit tests run first, then the
// integration and fault tests under test/, one file at a time.
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

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

// Tests find their fixtures beside them, in source and compiled form alike.
cpSync('test/fixtures', 'dist/test/fixtures', { recursive: true });

const filter = process.argv.slice(2);
let files = [...find('dist/src'), ...find('dist/test')];
if (filter.length > 0) files = files.filter((f) => filter.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files found: run `npm run build` first');
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
