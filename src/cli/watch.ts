/**
 * `--watch`: draws a frame, waits, draws the next, until Ctrl-C (or the
 * signal). On a terminal each frame replaces the last (the screen is
 * cleared); otherwise frames follow one another, so a log keeps them all.
 */
import { RegroupError } from '../core/errors.js';
import { EXIT, reportError } from './common.js';

/** Clears the screen and puts the cursor home (ANSI). */
export const CLEAR_SCREEN = '\x1b[H\x1b[2J';

export interface WatchOptions {
  intervalMs: number;
  out: NodeJS.WritableStream;
  /** Clear the screen before each frame (stdout is a terminal and not --json). */
  clear: boolean;
  /** Errors as JSON (--json). */
  json: boolean;
  /** Ends the watch (Ctrl-C). */
  signal: AbortSignal;
}

/**
 * Calls `frame` every `intervalMs` and writes what it returns. An error a
 * retry may cure (the coordinator is away or restarting) is reported and the
 * watch goes on; any other ends it with the error's exit code. Ending by the
 * signal exits 0.
 */
export async function watch(frame: () => Promise<string>, o: WatchOptions): Promise<number> {
  while (!o.signal.aborted) {
    try {
      const text = await frame();
      if (o.signal.aborted) break;
      o.out.write(o.clear ? `${CLEAR_SCREEN}${text}\n` : `${text}\n`);
    } catch (e) {
      if (o.signal.aborted) break;
      const code = reportError(e, o.json);
      if (!(e instanceof RegroupError && e.retryable)) return code;
    }
    await sleep(o.intervalMs, o.signal);
  }
  return EXIT.ok;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}

/** An AbortSignal that Ctrl-C (SIGINT) aborts, and its cleanup. */
export function interruptSignal(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const onSigint = (): void => ac.abort();
  process.once('SIGINT', onSigint);
  return { signal: ac.signal, dispose: () => process.off('SIGINT', onSigint) };
}
