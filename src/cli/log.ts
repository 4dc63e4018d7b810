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

export function makeLogger(
  level: Level,
  component: string,
  stream: NodeJS.WriteStream = process.stderr,
): (level: Level, msg: string, fields?: object) => void {
  const pretty = stream.isTTY === true;
  return (l, msg, fields) => {
    if (RANK[l] < RANK[level]) return;
    if (pretty) {
      const extra = fields && Object.keys(fields).length > 0 ? ' ' + JSON.stringify(fields) : '';
      stream.write(
        `${new Date().toISOString().slice(11, 23)} ${l.padEnd(5)} ${component}: ${msg}${extra}\n`,
      );
    } else {
      stream.write(
        JSON.stringify({ time: new Date().toISOString(), level: l, component, msg, ...fields }) +
          '\n',
      );
    }
  };
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
