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
  postgres?: string;
  pgSchema: string;
  advertiseUrl?: string;
  coordinatorId?: string;
  leaseMs: number;
  dashboard: 'public' | 'token' | 'off';
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
  if (f.postgres !== undefined && !isLoopback(f.host)) {
    // Several coordinators answer the same clients and workers: they must agree on tokens and addresses.
    if (f.advertiseUrl === undefined) {
      throw new RegroupError(
        'bad_request',
        `with --postgres and --host ${f.host}, give --advertise-url (the URL clients and workers reach this coordinator at): standbys send them there`,
      );
    }
    const given = f.clientToken !== undefined && f.workerToken !== undefined;
    if (!given && f.tokenFile === undefined && !f.insecure) {
      throw new RegroupError(
        'unauthorized',
        'with --postgres on a network address, every coordinator needs the same tokens: give --client-token and --worker-token (or REGROUP_CLIENT_TOKEN/REGROUP_WORKER_TOKEN), or --token-file naming one file copied to every coordinator',
      );
    }
  }
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
      new Option(
        '--postgres <url>',
        'use PostgreSQL instead of SQLite (postgres://user@host:5432/db); several coordinators on one database elect a leader',
      ).env('REGROUP_POSTGRES_URL'),
    )
    .option('--pg-schema <name>', 'PostgreSQL schema of the tables', 'regroup')
    .option(
      '--advertise-url <url>',
      'the URL clients and workers reach this coordinator at (standbys send them to the leader by it); default: the listening URL',
    )
    .option(
      '--coordinator-id <id>',
      'this coordinator among those of one database (default: random)',
    )
    .addOption(
      new Option(
        '--lease-ms <n>',
        'PostgreSQL leader lease: a leader that cannot renew it steps down',
      )
        .argParser(intOption('--lease-ms', 1500))
        .default(4000),
    )
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
    .addOption(
      new Option(
        '--dashboard <mode>',
        'the live dashboard at /: public (read-only without a token), token (needs the client token) or off',
      )
        .choices(['public', 'token', 'off'])
        .default('public'),
    )
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (f: ServerFlags) => {
      const logger = makeLogger(parseLevel(f.logLevel), 'coordinator');
      const security = resolveSecurity(f);
      for (const line of security.notes) process.stdout.write(line + '\n');
      // Loaded here, not at the top, so that other commands start fast.
      const { Coordinator } = await import('../coordinator/index.js');
      const { store, leadership, coordinatorId, where } = await openStore(f, logger);
      const coordinator = new Coordinator({
        store,
        leadership,
        coordinatorId,
        advertiseUrl: f.advertiseUrl ?? null,
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
        dashboard: f.dashboard,
      });
      // The role is printed as soon as it is known and again at every change.
      let printed = '';
      coordinator.events.on('role', (r) => {
        const line =
          r.role === 'leader'
            ? `role: leader (epoch ${r.epoch ?? '-'})`
            : `role: standby (${r.leaderUrl ? `leader at ${r.leaderUrl}` : 'no leader known yet'})`;
        if (line === printed) return;
        printed = line;
        process.stdout.write(line + '\n');
      });
      const url = await coordinator.start();
      process.stdout.write(`regroup coordinator listening on ${url} (${where})\n`);
      if (!leadership) process.stdout.write('role: leader\n');
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

async function openStore(
  f: ServerFlags,
  logger: ReturnType<typeof makeLogger>,
): Promise<{
  store: import('../store/store.js').Store;
  leadership: import('../store/leadership.js').Leadership | null;
  coordinatorId: string | undefined;
  where: string;
}> {
  if (f.postgres === undefined) {
    const { SqliteStore } = await import('../store/sqlite.js');
    const path = resolve(f.db);
    return {
      store: new SqliteStore({ path, synchronous: f.synchronous }),
      leadership: null,
      coordinatorId: f.coordinatorId,
      where: `db ${path}`,
    };
  }
  const { randomBytes } = await import('node:crypto');
  const { PostgresStore } = await import('../store/postgres.js');
  const { PostgresLeadership } = await import('../store/postgres-leader.js');
  const coordinatorId = f.coordinatorId ?? 'c_' + randomBytes(6).toString('hex');
  const { applicationNameFor } = await import('../store/postgres-keys.js');
  const applicationName = applicationNameFor(f.pgSchema, coordinatorId);
  const store = new PostgresStore({ url: f.postgres, schema: f.pgSchema, applicationName });
  const leadership = new PostgresLeadership({
    url: f.postgres,
    schema: f.pgSchema,
    applicationName,
    leaseMs: f.leaseMs,
    marginMs: Math.min(1000, Math.floor(f.leaseMs / 4)),
    renewMs: Math.min(1000, Math.floor(f.leaseMs / 4)),
    logger,
  });
  return {
    store,
    leadership,
    coordinatorId,
    where: `PostgreSQL ${redactUrl(f.postgres)} schema ${f.pgSchema}, coordinator ${coordinatorId}`,
  };
}

/** The connection URL without its password, for logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}
