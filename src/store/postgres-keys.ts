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
