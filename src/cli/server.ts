import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadOrCreateTokens } from './tokens.js';
import { RegroupError } from '../core/errors.js';
import { Command, Option } from 'commander';
import { DEFAULT_PORT } from '../coordinator/options.js';
import { DEFAULT_LIVENESS } from '../core/liveness.js';
import { DEFAULT_LIMITS } from '../protocol/limits.js';
import { intOption, makeLogger, parseLevel } from './log.js';

interface ServerFlags {
  clientToken?: string;
  workerToken?: string;
  tokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  port: number;
  host: string;
  db: string;
  synchronous: 'FULL' | 'NORMAL';
  heartbeatMs: number;
  deadAfterMs: number;
  closeGraceMs: number;
  maxBodyBytes: number;
  maxTasksPerRequest: number;
  maxInputBytes: number;
  maxResultBytes: number;
  maxMessageBytes: number;
  insecure?: boolean;
  logLevel: string;
}

interface Security {
  clientToken: string | null;
  workerToken: string | null;
  tls: { cert: Buffer; key: Buffer } | null;
  notes: string[];
}

/**
 * Security defaults: loopback needs nothing; any other bind needs tokens
 * (given, or generated into a 0600 file) unless --insecure says otherwise.
 */
export function resolveSecurity(f: ServerFlags): Security {
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined))
    throw new RegroupError('bad_request', '--tls-cert and --tls-key go together: give both');
  const tls =
    f.tlsCert && f.tlsKey ? { cert: readFileSync(f.tlsCert), key: readFileSync(f.tlsKey) } : null;
  const notes: string[] = [];
  let clientToken = f.clientToken ?? null;
  let workerToken = f.workerToken ?? null;
  if (!isLoopback(f.host) && clientToken === null && workerToken === null) {
    if (f.insecure) {
      notes.push(
        `WARNING: listening on ${f.host} with no authentication (--insecure): anyone who can reach it can submit tasks and join as a worker.`,
      );
    } else {
      const file = resolve(f.tokenFile ?? `${f.db}.tokens`);
      let loaded;
      try {
        loaded = loadOrCreateTokens(file);
      } catch (e) {
        throw new RegroupError(
          'unauthorized',
          `refusing to bind ${f.host} without tokens: ${(e as Error).message} (or give --client-token and --worker-token, or --insecure on a trusted network)`,
        );
      }
      clientToken = loaded.tokens.clientToken;
      workerToken = loaded.tokens.workerToken;
      notes.push(
        `tokens ${loaded.created ? 'generated into' : 'read from'} ${file} (mode 0600): clients need clientToken, workers need workerToken`,
      );
    }
  } else if (!isLoopback(f.host) && (clientToken === null || workerToken === null) && !f.insecure) {
    throw new RegroupError(
      'unauthorized',
      `refusing to bind ${f.host} with only one token: give both --client-token and --worker-token (or --insecure)`,
    );
  }
  if (!isLoopback(f.host) && tls === null)
    notes.push(
      `note: no TLS: tokens and data cross the network in clear text; use --tls-cert and --tls-key`,
    );
  return { clientToken, workerToken, tls, notes };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '[::1]';
}

export function serverCommand(): Command {
  return new Command('server')
    .description('run a coordinator (SQLite store by default)')
    .addOption(
      new Option('--port <n>', 'port to listen on (0 = any free port)')
        .argParser(intOption('--port'))
        .default(DEFAULT_PORT),
    )
    .option(
      '--host <address>',
      'address to bind; anything but loopback needs --insecure until tokens exist',
      '127.0.0.1',
    )
    .option('--db <file>', 'SQLite database file', 'regroup.db')
    .addOption(
      new Option('--synchronous <mode>', 'SQLite synchronous mode')
        .choices(['FULL', 'NORMAL'])
        .default('FULL'),
    )
    .addOption(
      new Option('--heartbeat-ms <n>', 'worker heartbeat interval')
        .argParser(intOption('--heartbeat-ms', 1))
        .default(DEFAULT_LIVENESS.heartbeatMs),
    )
    .addOption(
      new Option('--dead-after-ms <n>', 'silence after which a worker is dead')
        .argParser(intOption('--dead-after-ms', 1))
        .default(DEFAULT_LIVENESS.deadAfterMs),
    )
    .addOption(
      new Option('--close-grace-ms <n>', 'grace for a closed worker connection to resume')
        .argParser(intOption('--close-grace-ms', 1))
        .default(DEFAULT_LIVENESS.closeGraceMs),
    )
    .addOption(
      new Option('--max-body-bytes <n>', 'largest HTTP request body')
        .argParser(intOption('--max-body-bytes', 1))
        .default(DEFAULT_LIMITS.maxBodyBytes),
    )
    .addOption(
      new Option('--max-tasks-per-request <n>', 'most tasks in one submit or add')
        .argParser(intOption('--max-tasks-per-request', 1))
        .default(DEFAULT_LIMITS.maxTasksPerRequest),
    )
    .addOption(
      new Option('--max-input-bytes <n>', 'largest task input (JSON)')
        .argParser(intOption('--max-input-bytes', 1))
        .default(DEFAULT_LIMITS.maxInputBytes),
    )
    .addOption(
      new Option('--max-result-bytes <n>', 'largest task result or checkpoint (JSON)')
        .argParser(intOption('--max-result-bytes', 1))
        .default(DEFAULT_LIMITS.maxResultBytes),
    )
    .addOption(
      new Option('--max-message-bytes <n>', 'largest WebSocket message from a worker')
        .argParser(intOption('--max-message-bytes', 1))
        .default(DEFAULT_LIMITS.maxMessageBytes),
    )
    .addOption(
      new Option('--client-token <token>', 'token clients must send (at least 16 characters)').env(
        'REGROUP_CLIENT_TOKEN',
      ),
    )
    .addOption(
      new Option('--worker-token <token>', 'token workers must send (at least 16 characters)').env(
        'REGROUP_WORKER_TOKEN',
      ),
    )
    .option(
      '--token-file <file>',
      'where tokens are generated when the bind is not loopback and none are given (default <db>.tokens)',
    )
    .option('--tls-cert <file>', 'serve HTTPS/WSS with this certificate (PEM)')
    .option('--tls-key <file>', 'the private key of --tls-cert (PEM)')
    .option('--insecure', 'allow a non-loopback bind with no authentication at all')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (f: ServerFlags) => {
      const logger = makeLogger(parseLevel(f.logLevel), 'coordinator');
      const security = resolveSecurity(f);
      for (const line of security.notes) process.stdout.write(line + '\n');
      // Loaded here, not at the top, so that other commands start fast.
      const { Coordinator } = await import('../coordinator/index.js');
      const { SqliteStore } = await import('../store/sqlite.js');
      const store = new SqliteStore({ path: resolve(f.db), synchronous: f.synchronous });
      const coordinator = new Coordinator({
        store,
        host: f.host,
        port: f.port,
        heartbeatMs: f.heartbeatMs,
        deadAfterMs: f.deadAfterMs,
        closeGraceMs: f.closeGraceMs,
        limits: {
          maxBodyBytes: f.maxBodyBytes,
          maxTasksPerRequest: f.maxTasksPerRequest,
          maxInputBytes: f.maxInputBytes,
          maxResultBytes: f.maxResultBytes,
          maxMessageBytes: f.maxMessageBytes,
        },
        logger,
        clientToken: security.clientToken,
        workerToken: security.workerToken,
        tls: security.tls,
      });
      const url = await coordinator.start();
      process.stdout.write(`regroup coordinator listening on ${url} (db ${resolve(f.db)})\n`);
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) process.exit(1);
        stopping = true;
        logger('info', `${signal}: stopping`);
        coordinator.stop().then(
          () => process.exit(0),
          (e: unknown) => {
            logger('error', 'stop failed', { err: (e as Error).message });
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
