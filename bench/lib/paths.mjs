import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT_DIR = join(BENCH_DIR, '..');
export const REGROUP_CLI = join(ROOT_DIR, 'dist', 'src', 'cli', 'main.js');
export const WORKERS_DIR = join(BENCH_DIR, 'workers');
export const RESULTS_DIR = join(BENCH_DIR, 'results');
