/**
 * What a failed PostgreSQL call means to the coordinator. A lost or slow
 * connection, a server shutting down or refusing connections, a timeout, a
 * serialization failure: `unavailable` (retryable, 503). A full disk (SQLSTATE
 * 53100): `storage_full`, like SQLite. Anything else (a bug, a damaged schema)
 * goes up as it is.
 */
import pg from 'pg';
import { RegroupError } from '../core/errors.js';

/** SQLSTATEs that say "try again later", outside class 08 (connection exception). */
const TRANSIENT = new Set([
  '57P01', // admin_shutdown (also what pg_terminate_backend gives)
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '57014', // query_canceled (statement_timeout)
  '53300', // too_many_connections
  '25P03', // idle_in_transaction_session_timeout
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
]);

const DISK_FULL = '53100';

/** Errors of node-postgres and pg-pool that mean the connection is gone or never came. */
const CONNECTION_MESSAGE =
  /Connection terminated|Query read timeout|timeout expired|timeout exceeded when trying to connect|not queryable|Cannot use a pool after calling end/;

function sqlState(err: unknown): string | null {
  return err instanceof pg.DatabaseError && typeof err.code === 'string' ? err.code : null;
}

/** The connection broke or never came: the client must be thrown away, no ROLLBACK tried. */
export function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof pg.DatabaseError) return false;
  if (err instanceof RegroupError) return err.code === 'unavailable';
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && /^E[A-Z_]+$/.test(code)) return true; // ECONNREFUSED, EPIPE, ...
  return CONNECTION_MESSAGE.test(err.message);
}

/** `host:port/db schema s`, without user or password, for messages. */
export function describeTarget(url: string, schema: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '5432'}${u.pathname} schema ${schema}`;
  } catch {
    return `schema ${schema}`;
  }
}

/**
 * The error to throw for `err`, raised while `doing` (e.g. 'the tick was not
 * committed') against `where` (describeTarget).
 */
export function toStoreError(err: unknown, doing: string, where: string): unknown {
  if (err instanceof RegroupError) return err;
  const state = sqlState(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (state === DISK_FULL) {
    return new RegroupError(
      'storage_full',
      `${doing}: PostgreSQL at ${where} could not write (${state} disk_full: ${detail}); free disk space on the database server`,
      { cause: err },
    );
  }
  if (
    (state !== null && (state.startsWith('08') || TRANSIENT.has(state))) ||
    isConnectionError(err)
  ) {
    const why = state === null ? detail : `${state}: ${detail}`;
    return new RegroupError(
      'unavailable',
      `${doing}: PostgreSQL at ${where} is unavailable (${why}); check that the server is up, accepts connections and is reachable from this coordinator`,
      { cause: err },
    );
  }
  return err;
}
