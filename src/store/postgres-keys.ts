/**
 * Advisory lock keys of the PostgreSQL store: one 64-bit key per schema and
 * purpose, so several regroup installations (schemas) in one database never
 * share a lock.
 */
import { createHash } from 'node:crypto';

/** A signed 64-bit key, as a decimal string for `$1::bigint`, from the first 8 bytes of sha256. */
export function lockKey(schema: string, purpose: 'migrate' | 'leader'): string {
  const digest = createHash('sha256').update(`regroup-${purpose}:${schema}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/**
 * The application_name of a coordinator's connections (store pool and
 * election alike): `regroup:<6 hex of the schema's hash>:<coordinator id>`.
 * A new leader ends the old leader's sessions by this name, in the whole
 * database, so it names the schema too: two regroup installations in one
 * database never end each other's sessions, even with the same ids. At most
 * 63 bytes (PostgreSQL's limit) for ids of up to 48 characters.
 */
export function applicationNameFor(schema: string, coordinatorId: string): string {
  const tag = createHash('sha256').update(schema).digest('hex').slice(0, 6);
  return `regroup:${tag}:${coordinatorId}`;
}
