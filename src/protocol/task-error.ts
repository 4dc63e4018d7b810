/**
 * A handler error's stack, as regroup keeps it (`TaskError.stack`): the
 * frames of the error the worker caught, without its leading `Name: message`
 * (that is `name` and `message`), then the frames of each `cause`, bounded.
 * The worker clips what it sends and the coordinator clips what it gets,
 * with the same function, so a hostile worker cannot store more.
 */

/** Most bytes (UTF-8) of a stored stack, the clip marker included. */
export const STACK_MAX_BYTES = 8 * 1024;
/** Most lines of a stored stack, the clip marker included. */
export const STACK_MAX_LINES = 50;
/** Causes followed (`error.cause`, then its cause...). */
const CAUSES_MAX = 3;

function marker(omitted: number, cut: boolean): string {
  const lines = `${omitted} more lines`;
  const what = !cut
    ? lines
    : omitted === 0
      ? 'the rest of a long line'
      : `the rest of a long line and ${lines}`;
  return `    [clipped ${what}: a task error keeps ${STACK_MAX_LINES} lines, ${STACK_MAX_BYTES} bytes of stack]`;
}

/** The longest prefix of `s` within `bytes` UTF-8 bytes, never splitting a surrogate pair. */
function prefixWithin(s: string, bytes: number): string {
  let end = Math.min(s.length, bytes);
  while (end > 0 && Buffer.byteLength(s.slice(0, end)) > bytes) end = Math.floor(end * 0.9);
  const last = s.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return s.slice(0, end);
}

function countLines(s: string, from: number): number {
  let n = 1;
  for (let i = s.indexOf('\n', from); i !== -1; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * `stack` within STACK_MAX_LINES lines and STACK_MAX_BYTES bytes: whole
 * lines from the start, then a marker line saying how many were left out
 * (a first line longer than the bound is cut within it). Idempotent: a
 * clipped stack comes back unchanged.
 */
export function clipStack(stack: string): string {
  const total = countLines(stack, 0);
  if (total <= STACK_MAX_LINES && Buffer.byteLength(stack) <= STACK_MAX_BYTES) return stack;
  // The longest marker bounds every marker's size.
  const budget = STACK_MAX_BYTES - Buffer.byteLength(marker(total, true)) - 1;
  const kept: string[] = [];
  let used = 0;
  let at = 0;
  let cut = false;
  while (kept.length < STACK_MAX_LINES - 1) {
    const nl = stack.indexOf('\n', at);
    const line = stack.slice(at, nl === -1 ? stack.length : nl);
    const size = Buffer.byteLength(line) + (kept.length > 0 ? 1 : 0);
    if (used + size > budget) {
      if (kept.length === 0) {
        kept.push(prefixWithin(line, budget));
        cut = true;
      }
      break;
    }
    kept.push(line);
    used += size;
    if (nl === -1) break;
    at = nl + 1;
  }
  return `${kept.join('\n')}\n${marker(total - kept.length, cut)}`;
}

const FRAME = /^\s+at /m;

/** The stack text of one error minus its `Name: message` header; undefined when it has nothing more. */
function framesOf(e: object): string | undefined {
  const { stack, name, message } = e as { stack?: unknown; name?: unknown; message?: unknown };
  if (typeof stack !== 'string' || stack === '') return undefined;
  const n = typeof name === 'string' ? name : 'Error';
  const m = typeof message === 'string' ? message : '';
  const header = m === '' ? n : `${n}: ${m}`;
  if (stack === header) return undefined;
  if (stack.startsWith(`${header}\n`)) return stack.slice(header.length + 1) || undefined;
  const frame = FRAME.exec(stack);
  return frame === null ? stack : stack.slice(frame.index);
}

function headerOf(e: unknown): string {
  try {
    if (typeof e !== 'object' || e === null) return String(e);
    const { name, message } = e as { name?: unknown; message?: unknown };
    if (typeof message !== 'string') return Object.prototype.toString.call(e);
    const n = typeof name === 'string' ? name : 'Error';
    return message === '' ? n : `${n}: ${message}`;
  } catch {
    return 'a value that cannot be shown';
  }
}

/**
 * What a thrown value's `stack` says beyond its name and message, with a
 * `caused by: Name: message` section per cause, clipped (clipStack);
 * undefined when it says nothing more (a thrown string, a stack of no frames).
 */
export function stackOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  try {
    return causedStack(e);
  } catch {
    return undefined; // a getter that throws (a Proxy, a hostile object): no stack then
  }
}

function causedStack(e: object): string | undefined {
  const parts: string[] = [];
  const own = framesOf(e);
  if (own !== undefined) parts.push(own);
  let cause: unknown = (e as { cause?: unknown }).cause;
  const seen = new Set<unknown>([e]);
  for (let i = 0; i < CAUSES_MAX && cause !== undefined && !seen.has(cause); i++) {
    seen.add(cause);
    parts.push(`caused by: ${headerOf(cause)}`);
    const frames = typeof cause === 'object' && cause !== null ? framesOf(cause) : undefined;
    if (frames !== undefined) parts.push(frames);
    cause =
      typeof cause === 'object' && cause !== null
        ? (cause as { cause?: unknown }).cause
        : undefined;
  }
  return parts.length === 0 ? undefined : clipStack(parts.join('\n'));
}
