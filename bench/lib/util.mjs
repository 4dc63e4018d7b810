// Timing and waiting helpers.
import { performance } from 'node:perf_hooks';

/** Milliseconds on a monotonic clock. */
export const now = () => performance.now();

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Races a promise against a timer; the timer's rejection names `what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new TimeoutError(`${what}: not within ${Math.round(ms / 1000)} s`)),
      ms,
    );
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

export class TimeoutError extends Error {
  constructor(message) {
    super(message);
    this.name = 'TimeoutError';
  }
}

/** Polls `check` every `everyMs` until it returns a truthy value or the deadline (ms, monotonic) passes. */
export async function pollUntil(check, everyMs, deadline) {
  for (;;) {
    const v = await check();
    if (v) return v;
    if (now() >= deadline) return null;
    await sleep(everyMs);
  }
}

/** One-line text of an error, for tables and JSON. */
export function errorText(e) {
  const s = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' / ');
  return s.length > 2000 ? s.slice(0, 2000) + '…' : s;
}
