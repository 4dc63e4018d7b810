/**
 * One writer per SQLite file. An open SqliteStore holds an exclusive lock on
 * a companion file, `<db>.lock`; a second store on the same database (another
 * coordinator, in this process or any other) is refused with `store_locked`
 * instead of running beside the first and declaring its workers dead.
 *
 * The lock is SQLite's own file lock (POSIX advisory locks; LockFileEx on
 * Windows) on `<db>.lock`, taken by `BEGIN EXCLUSIVE` on a connection in
 * `locking_mode = EXCLUSIVE`, which never lets go of it until the connection
 * closes. The operating system drops it when the process ends, SIGKILL and
 * crashes included: a restart after a crash just works, and there is never a
 * stale lock to remove. The file stays between runs and means nothing while
 * nobody holds it; deleting it while a coordinator runs lets a second one in.
 *
 * Why a companion file and not `locking_mode = EXCLUSIVE` on the database
 * itself: that shuts out every other connection, readers included, so the
 * documented online backup (`sqlite3 regroup.db ".backup ..."`) and reading
 * a live database with the sqlite3 shell would stop working.
 * docs/design.md (SQLite store: one writer per file) has the comparison.
 */
import { realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { RegroupError } from '../core/errors.js';
import { isBusy, openFailed } from './sqlite-errors.js';

/** A held lock; release() lets the next store in. */
export interface WriterLock {
  /** The lock file, `<db>.lock` beside the real (symbolic links resolved) database file. */
  readonly file: string;
  release(): void;
}

/** The paths better-sqlite3 gives a database of its own, with no file to share: no lock. */
function isPrivate(path: string): boolean {
  return path === ':memory:' || path === '';
}

/**
 * The lock file of the database at `path`: beside the file a symbolic link
 * points to, so two names of one database share one lock.
 */
export function lockFileOf(path: string): string {
  const abs = resolve(path);
  try {
    return `${realpathSync(abs)}.lock`;
  } catch {
    // Not created yet: resolve its directory instead (when that exists).
  }
  try {
    return join(realpathSync(dirname(abs)), `${basename(abs)}.lock`);
  } catch {
    return `${abs}.lock`;
  }
}

/**
 * Takes the writer lock of the database at `path`, waiting up to `waitMs`
 * for a holder that is letting go. Throws `store_locked` when another store
 * holds it, `store_open_failed` when the lock file cannot be opened. Returns
 * null for a private database (`:memory:`).
 */
export function acquireWriterLock(path: string, waitMs: number): WriterLock | null {
  if (isPrivate(path)) return null;
  const file = lockFileOf(path);
  let conn: Database.Database;
  try {
    conn = new Database(file);
  } catch (err) {
    throw openFailed(path, err);
  }
  try {
    conn.pragma(`busy_timeout = ${waitMs}`);
    conn.pragma('locking_mode = EXCLUSIVE');
    // The journal in memory: the file holds no data, and a <db>.lock-journal would linger
    // beside it while the lock is held. (OFF is refused: better-sqlite3 runs in defensive mode.)
    conn.pragma('journal_mode = MEMORY');
    conn.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (err) {
    conn.close();
    if (isBusy(err)) {
      throw new RegroupError(
        'store_locked',
        `${resolve(path)} is in use by another regroup coordinator (it holds ${file}). ` +
          'One coordinator per SQLite file: stop the other coordinator first, or give this one another --db ' +
          '(several coordinators on one database need --postgres)',
        { cause: err },
      );
    }
    throw openFailed(path, err);
  }
  return { file, release: () => conn.close() };
}
