/**
 * What SqliteStore's failures mean to an operator: a write that could not
 * reach the disk (`storage_full`), and a file that cannot be opened
 * (`store_open_failed`), each with a message naming the file and what to do.
 */
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import { RegroupError } from '../core/errors.js';

/** SQLite result codes that mean the write could not reach the disk. */
export function storageErrorCode(err: unknown): string | null {
  if (!(err instanceof Database.SqliteError)) return null;
  const { code } = err;
  return code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR') ? code : null;
}

/** The SQLite result code (`SQLITE_*`) or the Node error code (`EACCES`) of an error, if any. */
function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** Where the files of a database go, for the advice on a file that cannot be opened. */
function place(path: string): string {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory())
    return `${path} is a directory: give --db a file name`;
  return (
    'check that its directory exists and this user may create and write files there ' +
    `(${path}, ${path}-wal, ${path}-shm and ${path}.lock)`
  );
}

/** What to do about an error opening `path`, by its code. */
function advice(err: unknown, path: string): string {
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_NOTADB')
    return `${path} is not a SQLite database: give --db a regroup database, or a new file name`;
  if (code.startsWith('SQLITE_CORRUPT'))
    return `${path} is corrupt (${message}): restore it from a backup (docs/operations.md, Backup and restore)`;
  if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR'))
    return `could not write ${path} (${code}): free disk space, or check the disk`;
  if (
    code.startsWith('SQLITE_CANTOPEN') ||
    code.startsWith('SQLITE_READONLY') ||
    code === 'SQLITE_PERM' ||
    code === 'SQLITE_AUTH' ||
    code === 'EACCES' ||
    code === 'EPERM' ||
    /directory does not exist/.test(message)
  )
    return `cannot open ${path} (${message}): ${place(path)}`;
  return `cannot open ${path}: ${message}`;
}

/**
 * The `store_open_failed` error for a failure of SqliteStore.open() on
 * `path`. A RegroupError that already says it (`store_locked`,
 * `store_open_failed`) passes through; any other is wrapped, its message
 * kept after the file's name.
 */
export function openFailed(path: string, err: unknown): RegroupError {
  if (err instanceof RegroupError) {
    if (err.code === 'store_locked' || err.code === 'store_open_failed') return err;
    return new RegroupError('store_open_failed', `cannot open ${path}: ${err.message}`, {
      cause: err,
    });
  }
  return new RegroupError('store_open_failed', advice(err, path), { cause: err });
}

/** True for an error that means another connection holds the file's lock. */
export function isBusy(err: unknown): boolean {
  const code = codeOf(err);
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED');
}
