import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { loadOrCreateTokens } from './tokens.js';
import { RegroupError } from '../core/errors.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_PORT,
  DEFAULT_TIMEOUTS,
  resolveCoordinatorOptions,
  type CoordinatorOptions,
} from '../coordinator/options.js';
import { reportError } from './common.js';
import { DEFAULT_LIVENESS } from '../core/liveness.js';
import {
  DEFAULT_MAX_SUSPENDED_PER_WORKER,
  DEFAULT_MAX_WORKER_SLOTS,
  DEFAULT_TIMEOUT_GRACE_MS,
} from '../core/deadline.js';
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
  timeoutGraceMs: number;
  maxWorkerSlots: number;
  maxSuspendedPerWorker: number;
  concurrencyLimit: Record<string, number>;
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
  allowOrigin?: string[];
  allowHost?: string[];
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
  helloTimeoutMs: number;
  maxConnectionsPerAddress: number;
  maxJsonDepth: number;
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
  const tls = f.tlsCert && f.tlsKey ? readTls(f.tlsCert, f.tlsKey) : null;
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
  if (isLoopback(f.host) && (clientToken === null) !== (workerToken === null)) {
    notes.push(
      clientToken === null
        ? 'WARNING: only --worker-token is set: the client API is open to every program on this machine; give --client-token too'
        : 'WARNING: only --client-token is set: the worker socket is open to every program on this machine (a worker sees task inputs and returns results); give --worker-token too',
    );
  }
  if (!isLoopback(f.host) && tls === null)
    notes.push(
      `note: no TLS: tokens and data cross the network in clear text; use --tls-cert and --tls-key`,
    );
  return { clientToken, workerToken, tls, notes };
}

/** Reads --tls-cert and --tls-key and checks they make a TLS identity, so a bad pair is refused before anything starts. */
function readTls(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (e) {
      const why = (e as Error).message;
      throw new RegroupError('bad_request', `cannot read ${flag} ${file}: ${why}`, { cause: e });
    }
  };
  const cert = read('--tls-cert', certFile);
  const key = read('--tls-key', keyFile);
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new RegroupError(
      'bad_request',
      `--tls-cert ${certFile} and --tls-key ${keyFile} are not a PEM certificate and its private key (${(e as Error).message})`,
      { cause: e },
    );
  }
  return { cert, key };
}

/** `--concurrency-limit key=n`, repeatable: each adds its key to what the earlier ones gave. */
function keyLimit(raw: string, earlier: Record<string, number>): Record<string, number> {
  const m = /^([^=]+)=(\d+)$/.exec(raw);
  if (!m)
    throw new InvalidArgumentError(
      `--concurrency-limit takes key=n, e.g. openai=5 (got "${raw.slice(0, 100)}")`,
    );
  return { ...earlier, [m[1]!]: Number(m[2]) };
}

/** The flags of resolveCoordinatorOptions' option names, so its messages speak the command line's words. */
const FLAG_OF: Record<string, string> = {
  heartbeatMs: '--heartbeat-ms',
  deadAfterMs: '--dead-after-ms',
  closeGraceMs: '--close-grace-ms',
  timeoutGraceMs: '--timeout-grace-ms',
  maxWorkerSlots: '--max-worker-slots',
  maxSuspendedPerWorker: '--max-suspended-per-worker',
  concurrencyLimits: '--concurrency-limit',
  clientToken: '--client-token',
  workerToken: '--worker-token',
  coordinatorId: '--coordinator-id',
  advertiseUrl: '--advertise-url',
  dashboard: '--dashboard',
  allowOrigins: '--allow-origin',
  allowHosts: '--allow-host',
  'timeouts.headersMs': '--headers-timeout-ms',
  'timeouts.requestMs': '--request-timeout-ms',
  'timeouts.idleMs': '--idle-timeout-ms',
  'timeouts.helloMs': '--hello-timeout-ms',
  maxConnectionsPerAddress: '--max-connections-per-address',
};

/**
 * Checks the coordinator's options as the Coordinator will, before anything
 * opens: a plain Error of resolveCoordinatorOptions becomes `bad_request`
 * naming the flag.
 */
export function checkCoordinatorOptions(options: CoordinatorOptions): void {
  try {
    resolveCoordinatorOptions(options);
  } catch (e) {
    if (e instanceof RegroupError) throw e;
    const message = (e as Error).message.replace(
      /\b[a-z][A-Za-z]+(?:\.[a-z][A-Za-z]+)?\b/g,
      (word) => FLAG_OF[word] ?? word,
    );
    throw new RegroupError('bad_request', message, { cause: e });
  }
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
      new Option(
        '--timeout-grace-ms <n>',
        "grace after a run's timeoutMs (or heartbeatTimeoutMs) before the coordinator ends it itself",
      )
        .argParser(intOption('--timeout-grace-ms', 0))
        .default(DEFAULT_TIMEOUT_GRACE_MS),
    )
    .addOption(
      new Option(
        '--max-worker-slots <n>',
        'most slots one worker is granted, whatever it announces',
      )
        .argParser(intOption('--max-worker-slots', 1))
        .default(DEFAULT_MAX_WORKER_SLOTS),
    )
    .addOption(
      new Option(
        '--max-suspended-per-worker <n>',
        'most runs of one worker that wait on their children with their slot given back',
      )
        .argParser(intOption('--max-suspended-per-worker', 0))
        .default(DEFAULT_MAX_SUSPENDED_PER_WORKER),
    )
    .addOption(
      new Option(
        '--concurrency-limit <key=n>',
        'at most n tasks of the groups naming concurrencyKey key running at once (repeat for more keys)',
      )
        .argParser(keyLimit)
        .default({}),
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
    .option(
      '--allow-origin <origin...>',
      "web origins (scheme://host[:port]) whose pages may call the API and open worker sockets; default: only the coordinator's own pages",
    )
    .option(
      '--allow-host <name...>',
      "host names accepted in the Host header besides IP addresses, localhost, the advertised URL's host and this machine's name",
    )
    .addOption(
      new Option('--headers-timeout-ms <n>', "a request's headers must arrive within this")
        .argParser(intOption('--headers-timeout-ms', 100))
        .default(DEFAULT_TIMEOUTS.headersMs),
    )
    .addOption(
      new Option(
        '--request-timeout-ms <n>',
        'a whole request (headers and body) must arrive within this',
      )
        .argParser(intOption('--request-timeout-ms', 100))
        .default(DEFAULT_TIMEOUTS.requestMs),
    )
    .addOption(
      new Option('--idle-timeout-ms <n>', 'a kept-alive HTTP connection idle this long is closed')
        .argParser(intOption('--idle-timeout-ms', 100))
        .default(DEFAULT_TIMEOUTS.idleMs),
    )
    .addOption(
      new Option('--hello-timeout-ms <n>', 'a worker socket must say hello within this')
        .argParser(intOption('--hello-timeout-ms', 100))
        .default(DEFAULT_TIMEOUTS.helloMs),
    )
    .addOption(
      new Option(
        '--max-connections-per-address <n>',
        'most open connections from one address (0 = no cap)',
      )
        .argParser(intOption('--max-connections-per-address', 0))
        .default(DEFAULT_MAX_CONNECTIONS_PER_ADDRESS),
    )
    .addOption(
      new Option(
        '--max-json-depth <n>',
        'deepest nesting of arrays and objects in inputs, results, checkpoints and bodies',
      )
        .argParser(intOption('--max-json-depth', 1))
        .default(DEFAULT_LIMITS.maxDepth),
    )
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (f: ServerFlags) => {
      // A start-up refusal is one line, `regroup: <code>: <message>`, and exit 2.
      // process.exit: a half-started coordinator may hold timers that keep node alive.
      try {
        await serve(f);
      } catch (e) {
        process.exit(reportError(e));
      }
    });
}

/** Starts the coordinator and stays until SIGTERM or SIGINT. Rejects when it cannot start. */
async function serve(f: ServerFlags): Promise<void> {
  const logger = makeLogger(parseLevel(f.logLevel), 'coordinator');
  const security = resolveSecurity(f);
  for (const line of security.notes) process.stdout.write(line + '\n');
  // Loaded here, not at the top, so that other commands start fast.
  const { Coordinator } = await import('../coordinator/index.js');
  const { store, leadership, coordinatorId, where } = await openStore(f, logger);
  const options: CoordinatorOptions = {
    store,
    leadership,
    coordinatorId,
    advertiseUrl: f.advertiseUrl ?? null,
    host: f.host,
    port: f.port,
    heartbeatMs: f.heartbeatMs,
    deadAfterMs: f.deadAfterMs,
    closeGraceMs: f.closeGraceMs,
    timeoutGraceMs: f.timeoutGraceMs,
    maxWorkerSlots: f.maxWorkerSlots,
    maxSuspendedPerWorker: f.maxSuspendedPerWorker,
    concurrencyLimits: f.concurrencyLimit,
    limits: {
      maxBodyBytes: f.maxBodyBytes,
      maxTasksPerRequest: f.maxTasksPerRequest,
      maxInputBytes: f.maxInputBytes,
      maxResultBytes: f.maxResultBytes,
      maxMessageBytes: f.maxMessageBytes,
      maxDepth: f.maxJsonDepth,
    },
    logger,
    clientToken: security.clientToken,
    workerToken: security.workerToken,
    tls: security.tls,
    dashboard: f.dashboard,
    allowOrigins: f.allowOrigin ?? [],
    allowHosts: f.allowHost ?? [],
    timeouts: {
      headersMs: f.headersTimeoutMs,
      requestMs: f.requestTimeoutMs,
      idleMs: f.idleTimeoutMs,
      helloMs: f.helloTimeoutMs,
    },
    maxConnectionsPerAddress: f.maxConnectionsPerAddress,
  };
  checkCoordinatorOptions(options);
  const coordinator = new Coordinator(options);
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
  let url: string;
  try {
    url = await coordinator.start();
  } catch (e) {
    // Let go of what did open (the port, the store and its lock) before the refusal is printed.
    await stopWithin(coordinator, STOP_AFTER_FAILED_START_MS);
    throw e;
  }
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
}

/** How long a coordinator that failed to start gets to let go of its port and store. */
const STOP_AFTER_FAILED_START_MS = 5_000;

/** stop(), but given up on after `ms` (the process exits next, and the OS releases the rest). */
async function stopWithin(coordinator: { stop(): Promise<void> }, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([coordinator.stop().catch(() => undefined), late]);
  clearTimeout(timer);
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
