/**
 * What a test process must undo however it ends: the processes it started,
 * the folders it made, anything else registered (network namespaces). The
 * registry is swept synchronously on exit, on SIGINT, SIGTERM and SIGHUP
 * (Ctrl-C reaches every process of the terminal's foreground group; node
 * --test does not run `after` hooks then, and a signal's default action
 * skips 'exit' handlers) and when the parent goes (node --test killed, or
 * scripts/test.mjs ending it): the parent's pid is polled, since a process
 * whose parent died is handed to another.
 *
 * Children are killed with SIGKILL, which also ends a stopped (SIGSTOP)
 * process; SIGTERM would wait for a SIGCONT.
 *
 * Children the tests start through this module also run the watchdog
 * (WATCH_PARENT): they exit when the test process goes, even by SIGKILL. A
 * child stopped at that moment cannot notice; scripts/test.mjs ends those by
 * the run's marker (see sweep.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { removeTree } from './sweep.js';

/** Node options that make a child exit when its parent goes (see watchdog.ts). */
export const WATCH_PARENT = [
  '--import',
  pathToFileURL(fileURLToPath(new URL('./watchdog.js', import.meta.url))).href,
];

/** pid -> whether the child leads its own process group (spawned detached). */
const children = new Map<number, boolean>();
const dirs = new Set<string>();
const cleaners = new Set<() => void>();
let installed = false;

/** Kills `child` (its whole process group if `group`: it was spawned detached) when this process ends. */
export function trackProcess<C extends ChildProcess>(child: C, o: { group?: boolean } = {}): C {
  const pid = child.pid;
  if (pid === undefined) return child; // failed to start: nothing to kill
  install();
  children.set(pid, o.group ?? false);
  child.once('exit', () => children.delete(pid));
  return child;
}

/** Removes `dir` (unmounting what is mounted inside) when this process ends, unless forgotten. */
export function trackDir(dir: string): { forget: () => void } {
  install();
  dirs.add(dir);
  return { forget: () => dirs.delete(dir) };
}

/** Runs `fn` (synchronous, best effort) when this process ends; returns its unregistration. */
export function onCleanup(fn: () => void): () => void {
  install();
  cleaners.add(fn);
  return () => cleaners.delete(fn);
}

/** The sweep: kill every tracked child, run the cleaners, remove the folders. Synchronous. */
export function cleanupNow(): void {
  for (const [pid, group] of children) {
    try {
      process.kill(group ? -pid : pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  children.clear();
  for (const fn of [...cleaners]) {
    try {
      fn();
    } catch {
      // best effort: the run's sweep in scripts/test.mjs comes after
    }
  }
  cleaners.clear();
  for (const dir of dirs) {
    try {
      removeTree(dir);
    } catch {
      // as above
    }
  }
  dirs.clear();
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', cleanupNow);
  for (const sig of SIGNALS) {
    process.on(sig, () => {
      cleanupNow();
      process.exit(128 + constants.signals[sig]);
    });
  }
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid === parent) return;
    cleanupNow();
    process.exit(128 + constants.signals.SIGHUP);
  }, 200).unref();
}
