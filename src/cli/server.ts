import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_PORT } from '../coordinator/options.js';
import { DEFAULT_LIVENESS } from '../core/liveness.js';
import { DEFAULT_LIMITS } from '../protocol/limits.js';
import { intOption, makeLogger, parseLevel } from './log.js';

interface ServerFlags {
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
    .option('--insecure', 'allow binding a non-loopback address without authentication')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (f: ServerFlags) => {
      const logger = makeLogger(parseLevel(f.logLevel), 'coordinator');
      if (!isLoopback(f.host) && !f.insecure) {
        process.stderr.write(
          `error [unauthorized]: refusing to bind ${f.host}: the API has no authentication yet, so only loopback addresses are allowed. Bind 127.0.0.1, or pass --insecure if the network is private and trusted.\n`,
        );
        process.exit(2);
      }
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
