import { Command, InvalidArgumentError, Option } from 'commander';
import { Client, type RetryInfo } from '../client/index.js';
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
    onRetry: retryNotice(o.json === true),
  });
}

/**
 * Says on stderr, at the first failed try, that the coordinator does not
 * answer and that the command keeps trying (how long, and that Ctrl-C stops
 * it); once more if the reason changes. Silence for the whole reconnect
 * window read as a hang.
 */
export function retryNotice(
  json: boolean,
  write: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): (info: RetryInfo) => void {
  let said = '';
  return ({ error, forMs }) => {
    const key = `${error.code}\n${error.message}`;
    if (key === said) return;
    said = key;
    const window = Number.isFinite(forMs)
      ? `for up to ${Math.round(forMs / 1000)} s`
      : 'until it answers';
    write(
      json
        ? JSON.stringify({
            retrying: {
              code: error.code,
              message: error.message,
              forMs: Number.isFinite(forMs) ? forMs : null,
            },
          })
        : `regroup: ${error.code}: ${oneLine(error.message)}; retrying ${window} (Ctrl-C to stop)`,
    );
  };
}

/** Commander parser for an integer option of at least `min`. */
export function integer(min: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
      throw new InvalidArgumentError(`expected an integer >= ${min}`);
    }
    return n;
  };
}

/**
 * One line on stderr naming the error code, `regroup: <code>: <message>`
 * (with --json, the wire shape `{"error":{"code","message"}}`); returns the
 * exit code for errors (2).
 */
export function reportError(e: unknown, json = false): number {
  const err =
    e instanceof RegroupError
      ? e
      : new RegroupError('internal', e instanceof Error ? e.message : String(e));
  process.stderr.write(
    json ? `${JSON.stringify(err.toWire())}\n` : `regroup: ${err.code}: ${oneLine(err.message)}\n`,
  );
  return EXIT.usage;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}

/** Queries and control commands should not hang on a wrong URL for the SDK's default minute. */
export const COMMAND_RECONNECT_FOR_MS = 5_000;

/**
 * Runs one request-and-print command: makes the client, prints what `body`
 * returns on stdout, reports an error as one line on stderr. Returns the exit code.
 */
export async function runCommand(
  flags: ConnectionOptions,
  body: (client: Client) => Promise<string>,
): Promise<number> {
  let client: Client | undefined;
  try {
    client = makeClient(flags, COMMAND_RECONNECT_FOR_MS);
    const out = await body(client);
    process.stdout.write(`${out}\n`);
    return EXIT.ok;
  } catch (e) {
    return reportError(e, flags.json);
  } finally {
    client?.close();
  }
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
