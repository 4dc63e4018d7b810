/**
 * Finding and removing what a test run left behind, synchronously, so it can
 * run in a signal handler: the processes that carry a marker in their
 * environment (every descendant inherits it), the mounts under a folder, the
 * folder. Linux only (/proc); elsewhere nothing is found.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';

/** The variable scripts/test.mjs sets, to a fresh id, for everything one run starts. */
export const RUN_ID_VAR = 'REGROUP_TEST_RUN_ID';

export interface ProcInfo {
  pid: number;
  ppid: number;
  /** R, S, D, T (stopped), t, Z (zombie)... */
  state: string;
  cmd: string;
}

function readProc(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // pid (comm) state ppid ...: comm may hold spaces and parentheses.
    const [state = '?', ppid = '0'] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    return { pid, ppid: Number(ppid), state, cmd };
  } catch {
    return null; // gone meanwhile
  }
}

/**
 * Live processes (not zombies, not this one) whose environment holds
 * `name=value`. A process sees the environment it was started with, so a
 * marker set by a run reaches everything the run started.
 */
export function processesWith(name: string, value: string): ProcInfo[] {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
  const entry = `${name}=${value}`;
  const found: ProcInfo[] = [];
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    let env: string;
    try {
      env = readFileSync(`/proc/${pid}/environ`, 'utf8');
    } catch {
      continue; // gone, or not ours to read
    }
    if (!env.split('\0').includes(entry)) continue;
    const info = readProc(pid);
    if (info && info.state !== 'Z') found.push(info);
  }
  return found;
}

/** SIGKILL (which also ends a stopped process) every live process marked `name=value`; returns them. */
export function killProcessesWith(name: string, value: string): ProcInfo[] {
  const found = processesWith(name, value);
  for (const p of found) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return found;
}

/** Mount points at or under `dir`, deepest first (from /proc/self/mounts). */
export function mountsUnder(dir: string): string[] {
  let table: string;
  try {
    table = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return [];
  }
  const root = dir.replace(/\/+$/, '');
  return table
    .split('\n')
    .map((l) =>
      (l.split(' ')[1] ?? '').replace(/\\(\d{3})/g, (_, o: string) =>
        String.fromCharCode(parseInt(o, 8)),
      ),
    )
    .filter((mp) => mp === root || mp.startsWith(root + '/'))
    .sort((a, b) => b.length - a.length);
}

/**
 * Removes `dir` and everything in it. A mount inside (a fault run's tmpfs)
 * is detached first (`umount -l`), or the removal would stop at it.
 */
export function removeTree(dir: string): void {
  for (const mp of mountsUnder(dir)) {
    try {
      execFileSync('umount', ['-l', mp], { stdio: 'ignore' });
    } catch {
      // not ours to unmount: the removal below says what is left
    }
  }
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}
