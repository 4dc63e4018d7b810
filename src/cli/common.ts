import { Command, InvalidArgumentError, Option } from 'commander';
import { Client } from '../client/index.js';
import { RegroupError } from '../core/errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:7070';

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, taskFailed: 1, usage: 2, interrupted: 130 } as const;

export interface ConnectionOptions {
  url: string;
  token?: string;
  json?: boolean;
}

/** `--url` (REGROUP_URL; several coordinators comma-separated), `--token` (REGROUP_TOKEN), `--json`. */
export function withConnectionOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option('--url <url>', 'coordinator URL; several, comma-separated, are tried in turn')
        .env('REGROUP_URL')
        .default(DEFAULT_URL),
    )
    .addOption(new Option('--token <token>', 'client token').env('REGROUP_TOKEN'))
    .option('--json', 'machine-readable output');
}

export function makeClient(o: ConnectionOptions, reconnectForMs?: number): Client {
  const urls = o.url.split(',').map((u) => u.trim());
  return new Client({
    url: urls,
    ...(o.token === undefined ? {} : { token: o.token }),
    ...(reconnectForMs === undefined ? {} : { reconnectForMs }),
  });
}

/** Commander parser for a non-negative integer option. */
export function integer(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}`);
    }
    return n;
  };
}

/** One line on stderr naming the error code; returns the usage exit code. */
export function reportError(e: unknown, json = false): number {
  const err =
    e instanceof RegroupError
      ? e
      : new RegroupError('internal', e instanceof Error ? e.message : String(e));
  process.stderr.write(
    json ? `${JSON.stringify(err.toWire())}\n` : `regroup: error ${err.code}: ${err.message}\n`,
  );
  return EXIT.usage;
}

/** Writes lines to a stream, waiting when its buffer is full. */
export async function writeLines(
  stream: NodeJS.WritableStream,
  lines: Iterable<string>,
): Promise<void> {
  for (const line of lines) {
    if (!stream.write(`${line}\n`)) {
      await new Promise<void>((resolve) => stream.once('drain', () => resolve()));
    }
  }
}
