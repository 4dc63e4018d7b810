/**
 * The options of the PostgreSQL store and the `pg.Pool` they make: every
 * connection in the store's schema, named, with timeouts, and bigint read as
 * JS numbers.
 */
import pg from 'pg';

export interface PostgresStoreOptions {
  /** A node-postgres connection string: `postgres://user@host:5432/db`. */
  url: string;
  /** The schema of the tables, created at open. `[a-z_][a-z0-9_]*`. Default 'regroup'. */
  schema?: string;
  /** Connections in the pool. Default 4. */
  poolSize?: number;
  /** application_name of every connection; a coordinator passes `applicationNameFor(schema, coordinatorId)`. Default 'regroup'. */
  applicationName?: string;
  /** A query without an answer after this long fails (client side), so a cut connection never hangs. Default 10000. */
  queryTimeoutMs?: number;
  /** Connecting (or waiting for a free pool connection) longer than this fails. Default 5000. */
  connectTimeoutMs?: number;
}

export type ResolvedPostgresStoreOptions = Required<PostgresStoreOptions>;

const DEFAULTS = Object.freeze({
  schema: 'regroup',
  poolSize: 4,
  applicationName: 'regroup',
  queryTimeoutMs: 10_000,
  connectTimeoutMs: 5_000,
});

export function resolveOptions(options: PostgresStoreOptions): ResolvedPostgresStoreOptions {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  return { ...DEFAULTS, ...given, url: options.url };
}

/** The server ends a transaction left idle this long (a coordinator that stalled mid-tick). */
const IDLE_IN_TRANSACTION_MS = 30_000;

const INT8_OID = 20;

/**
 * bigint columns (ids, times, seq) as JS numbers. They stay far below 2^53;
 * one that does not is an error, not a silently rounded number.
 */
function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${text} is beyond 2^53`);
  return n;
}

/** The pool's own type parsers: the global ones of `pg` stay as they are for other users. */
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? parseInt8
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * Session settings, sent at connect (no round trip):
 * - search_path: the store's schema, so the SQL names no schema.
 * - plan_cache_mode: custom plans always. A generic plan guesses 10 elements
 *   for every array parameter and joins 500-element batches in quadratic
 *   nested loops.
 * - random_page_cost 1.1, not the default 4 of spinning disks: every hot
 *   statement is built on an index over rows that are in memory (a tick
 *   touches what the last ones touched), and with 4 the planner reads all of
 *   tasks rather than look up a batch of 500 ids.
 */
function sessionOptions(schema: string): string {
  return `-c search_path=${schema} -c plan_cache_mode=force_custom_plan -c random_page_cost=1.1`;
}

export function createPool(o: ResolvedPostgresStoreOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: o.url,
    max: o.poolSize,
    application_name: o.applicationName,
    options: sessionOptions(o.schema),
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    query_timeout: o.queryTimeoutMs,
    connectionTimeoutMillis: o.connectTimeoutMs,
    keepAlive: true,
    types,
  });
  // An idle connection that breaks is dropped by the pool, and the next query
  // opens a new one; a connection in use reports through its query. Neither
  // may crash the process as an unhandled 'error' event.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}
