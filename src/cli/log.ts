import { InvalidArgumentError } from 'commander';
import { RegroupError } from '../core/errors.js';
/**
 * Log lines for the CLI: JSON Lines when the output is not a terminal (for
 * log search), short readable lines when it is. Only the CLI decides this.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function parseLevel(raw: string | undefined): Level {
  const l = (raw ?? 'info').toLowerCase();
  if (l === 'debug' || l === 'info' || l === 'warn' || l === 'error') return l;
  throw new RegroupError(
    'bad_request',
    `--log-level must be debug, info, warn or error (got "${raw}")`,
  );
}

/**
 * A logger writing to `stream` (stderr by default). Not a terminal: one JSON
 * object per line, `{time, level, component, msg, ...fields}`, so ids like
 * groupId, taskId and workerId are fields to search on. A terminal: a short
 * line, `12:00:01.234 warn  coordinator: worker dead workerId=w_1 requeued=3`.
 * Error values become their message.
 */
export function makeLogger(
  level: Level,
  component: string,
  stream: NodeJS.WriteStream = process.stderr,
): (level: Level, msg: string, fields?: object) => void {
  const pretty = stream.isTTY === true;
  return (l, msg, fields) => {
    if (RANK[l] < RANK[level]) return;
    const now = new Date().toISOString();
    if (pretty) {
      stream.write(`${now.slice(11, 23)} ${l.padEnd(5)} ${component}: ${msg}${pairs(fields)}\n`);
    } else {
      const line = { time: now, level: l, component, msg, ...fields };
      stream.write(JSON.stringify(line, errorsAsMessages) + '\n');
    }
  };
}

/**
 * ` key=value` for each field; strings of printable ASCII without spaces,
 * quotes or `=` bare, everything else as JSON (which escapes control bytes:
 * a worker's error message cannot drive the terminal).
 */
function pairs(fields: object | undefined): string {
  if (!fields) return '';
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    const text =
      typeof v === 'string' && /^[\x21\x23-\x3c\x3e-\x7e]+$/.test(v)
        ? v
        : JSON.stringify(v instanceof Error ? v.message : v, errorsAsMessages);
    out += ` ${k}=${text}`;
  }
  return out;
}

function errorsAsMessages(_key: string, v: unknown): unknown {
  return v instanceof Error ? v.message : v;
}

/** Parses a positive integer option, with a message that names the flag. */
export function intOption(flag: string, min = 0): (raw: string) => number {
  return (raw: string) => {
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${flag} must be an integer >= ${min} (got "${raw}")`);
    return n;
  };
}
