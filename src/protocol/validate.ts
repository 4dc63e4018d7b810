import { Compile } from 'typebox/compile';
import type { Static, TSchema } from 'typebox';
import { RegroupError, type ErrorCode } from '../core/errors.js';

export interface Checker<T> {
  schema: TSchema;
  /** Returns the value typed, or throws RegroupError(code) naming the first bad field. */
  parse(value: unknown, what: string): T;
  check(value: unknown): value is T;
}

/**
 * Compiles a schema once, on first use (compiling costs start-up time that
 * workers and clients, which never validate, should not pay); `parse` gives a
 * clear, stable error for bad input.
 */
export function checker<S extends TSchema>(
  schema: S,
  code: ErrorCode = 'validation_failed',
): Checker<Static<S>> {
  let compiled: ReturnType<typeof Compile<S>> | null = null;
  const v = {
    Check: (x: unknown) => (compiled ??= Compile(schema)).Check(x),
    Errors: (x: unknown) => (compiled ??= Compile(schema)).Errors(x),
  };
  return {
    schema,
    check: (value: unknown): value is Static<S> => v.Check(value),
    parse(value: unknown, what: string): Static<S> {
      if (v.Check(value)) return value;
      const errors = v.Errors(value);
      const first = errors[0];
      const where = first?.instancePath ? first.instancePath : '(root)';
      const detail = first ? `${where}: ${first.message}` : 'does not match the schema';
      throw new RegroupError(code, `invalid ${what}: ${detail}`);
    },
  };
}

export { parseJson } from './json.js';
