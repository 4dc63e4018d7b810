import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT_DIR = join(BENCH_DIR, '..');
export const REGROUP_CLI = join(ROOT_DIR, 'dist', 'src', 'cli', 'main.js');
export const WORKERS_DIR = join(BENCH_DIR, 'workers');
export const RESULTS_DIR = join(BENCH_DIR, 'results');

/** The installed version of one of the bench's own packages (a peer). */
export function peerVersion(pkg) {
  return JSON.parse(readFileSync(join(BENCH_DIR, 'node_modules', pkg, 'package.json'), 'utf8'))
    .version;
}
