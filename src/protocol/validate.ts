import { Compile } from 'typebox/compile';
import type { Static, TSchema } from 'typebox';
import { RegroupError, type ErrorCode } from '../core/errors.js';

export interface Checker<T> {
  schema: TSchema;
  /** Returns the value typed, or throws RegroupError(code) naming the first bad field. */
  parse(value: unknown, what: string): T;
  check(value: unknown): value is T;
}

/** Compiles a schema once; `parse` gives a clear, stable error for bad input. */
export function checker<S extends TSchema>(
  schema: S,
  code: ErrorCode = 'validation_failed',
): Checker<Static<S>> {
  const v = Compile(schema);
  return {
    schema,
    check: (value: unknown): value is Static<S> => v.Check(value),
    parse(value: unknown, what: string): Static<S> {
      if (v.Check(value)) return value as Static<S>;
      const errors = v.Errors(value);
      const first = errors[0];
      const where = first?.instancePath ? first.instancePath : '(root)';
      const detail = first ? `${where}: ${first.message}` : 'does not match the schema';
      throw new RegroupError(code, `invalid ${what}: ${detail}`);
    },
  };
}

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
