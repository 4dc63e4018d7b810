import { RegroupError } from '../core/errors.js';

/**
 * Parses JSON text without letting `__proto__` keys change any prototype:
 * JSON.parse makes them own properties, and we drop them so that no later
 * spread or Object.assign can turn them into prototype writes.
 */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text, (key, value: unknown) => (key === '__proto__' ? undefined : value));
  } catch (e) {
    throw new RegroupError('invalid_json', `${what} is not valid JSON: ${(e as Error).message}`);
  }
}
