// Readings from /proc: a process's CPU time and memory (Linux only).
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let ticks = null;
/** Clock ticks per second (USER_HZ), usually 100. */
export function clockTicks() {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** utime + stime of a process in seconds, or null when it cannot be read. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (Number(fields[11]) + Number(fields[12])) / clockTicks();
  } catch {
    return null;
  }
}

/** { rssMiB, hwmMiB } from /proc/<pid>/status (VmRSS, VmHWM: the peak), or null. */
export function memory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name) => {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
      return m ? Number(m[1]) / 1024 : null;
    };
    return { rssMiB: kb('VmRSS'), hwmMiB: kb('VmHWM') };
  } catch {
    return null;
  }
}

/** [busy, total] jiffies of all CPUs together, from /proc/stat. */
function cpuTotals() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal
  const idle = v[3] + v[4]; // idle + iowait
  return [total - idle, total];
}

/** The share of the whole machine (all cores) that was busy over `ms`, in percent. */
export async function machineBusyPercent(ms) {
  try {
    const [b0, t0] = cpuTotals();
    await new Promise((r) => setTimeout(r, ms));
    const [b1, t1] = cpuTotals();
    return t1 > t0 ? Math.round(((b1 - b0) / (t1 - t0)) * 1000) / 10 : null;
  } catch {
    return null;
  }
}
