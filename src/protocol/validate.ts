import { Compile } from 'typebox/compile';
import type { Static, TSchema } from 'typebox';
import { RegroupError, type ErrorCode } from '../core/errors.js';

export interface Checker<T> {
  schema: TSchema;
  /** Returns the value typed, or throws RegroupError(code) naming the first bad field. */
  parse(value: unknown, what: string): T;
  check(value: unknown): value is T;
}

type Validator = ReturnType<typeof Compile<TSchema>>;

/** Schemas compiled on first use, the whole ones and the parts firstError looks into. */
const compiled = new WeakMap<TSchema, Validator>();

function validator(schema: TSchema): Validator {
  let v = compiled.get(schema);
  if (v === undefined) {
    v = Compile(schema);
    compiled.set(schema, v);
  }
  return v;
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
  return {
    schema,
    check: (value: unknown): value is Static<S> => validator(schema).Check(value),
    parse(value: unknown, what: string): Static<S> {
      // Lengths first: an array over its maxItems is refused before any of its items is looked at.
      const tooLong = lengthError(schema, value, '');
      if (tooLong === null && validator(schema).Check(value)) return value as Static<S>;
      const { path, message } = tooLong ?? firstError(schema, value, '');
      throw new RegroupError(code, `invalid ${what}: ${path === '' ? '(root)' : path}: ${message}`);
    },
  };
}

/** The parts of a JSON schema that firstError reads. */
interface Shape {
  type?: unknown;
  anyOf?: TSchema[];
  const?: unknown;
  items?: unknown;
  maxItems?: number;
  minItems?: number;
  properties?: Record<string, TSchema & { const?: unknown }>;
  required?: string[];
  additionalProperties?: unknown;
}

interface Problem {
  /** JSON pointer to the bad value; '' is the root. */
  path: string;
  message: string;
}

const isSchema = (x: unknown): x is TSchema =>
  typeof x === 'object' && x !== null && !Array.isArray(x);
const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);
const pointer = (path: string, key: string | number): string =>
  `${path}/${String(key).replaceAll('~', '~0').replaceAll('/', '~1')}`;

/** A property every branch of a union pins with `const` (a discriminator such as `t`), if any. */
function discriminator(branches: TSchema[]): string | null {
  const first = branches.length > 0 ? ((branches[0] as Shape).properties ?? {}) : {};
  for (const key of Object.keys(first)) {
    if (branches.every((b) => (b as Shape).properties?.[key]?.const !== undefined)) return key;
  }
  return null;
}

/** The first problem of a union: in the branch the value's discriminator picks, when it picks one. */
function unionError(anyOf: TSchema[], value: unknown, path: string): Problem | null {
  const key = discriminator(anyOf);
  if (key === null || !isRecord(value)) return null;
  const picked = anyOf.filter((b) => (b as Shape).properties?.[key]?.const === value[key]);
  if (picked.length === 1) return firstError(picked[0]!, value, path);
  if (picked.length > 0) return null;
  const allowed = anyOf.map((b) => JSON.stringify((b as Shape).properties?.[key]?.const));
  return { path: pointer(path, key), message: `must be one of ${allowed.join(', ')}` };
}

/** What lengthError needs to know of a schema, worked out once per schema. */
interface LengthPlan {
  /** Properties whose schema bounds an array length somewhere (not under `items`). */
  bounded: [string, TSchema][];
  /** For a union with a discriminator: its key and the branch of each value. */
  union: { key: string; branches: Map<unknown, TSchema> } | null;
}

const plans = new WeakMap<TSchema, LengthPlan>();

function hasLengthBound(schema: TSchema): boolean {
  const s = schema as Shape;
  if (s.maxItems !== undefined) return true;
  if (Array.isArray(s.anyOf)) return s.anyOf.some(hasLengthBound);
  return Object.values(s.properties ?? {}).some(hasLengthBound);
}

function planOf(schema: TSchema): LengthPlan {
  let plan = plans.get(schema);
  if (plan !== undefined) return plan;
  const s = schema as Shape;
  const key = Array.isArray(s.anyOf) ? discriminator(s.anyOf) : null;
  plan = {
    bounded: Object.entries(s.properties ?? {}).filter(([, sub]) => hasLengthBound(sub)),
    union:
      key === null || !Array.isArray(s.anyOf)
        ? null
        : {
            key,
            branches: new Map(s.anyOf.map((b) => [(b as Shape).properties?.[key]?.const, b])),
          },
  };
  plans.set(schema, plan);
  return plan;
}

/**
 * The first array longer than its schema's maxItems, found by following the
 * schema's objects and discriminated unions (never an array's items): the
 * cost depends on the schema, not on the size of the value.
 */
function lengthError(schema: TSchema, value: unknown, path: string): Problem | null {
  const s = schema as Shape;
  if (Array.isArray(value)) {
    return s.maxItems !== undefined && value.length > s.maxItems
      ? { path, message: `must not have more than ${s.maxItems} items` }
      : null;
  }
  if (!isRecord(value)) return null;
  const plan = planOf(schema);
  if (plan.union !== null) {
    const branch = plan.union.branches.get(value[plan.union.key]);
    return branch === undefined ? null : lengthError(branch, value, path);
  }
  for (const [k, sub] of plan.bounded) {
    const found = Object.hasOwn(value, k) ? lengthError(sub, value[k], pointer(path, k)) : null;
    if (found !== null) return found;
  }
  return null;
}

function arrayError(s: Shape, value: unknown[], path: string): Problem | null {
  if (s.maxItems !== undefined && value.length > s.maxItems)
    return { path, message: `must not have more than ${s.maxItems} items` };
  if (s.minItems !== undefined && value.length < s.minItems)
    return { path, message: `must not have fewer than ${s.minItems} items` };
  if (!isSchema(s.items)) return null;
  const items = s.items;
  const ok = validator(items);
  for (let i = 0; i < value.length; i++) {
    if (!ok.Check(value[i])) return firstError(items, value[i], pointer(path, i));
  }
  return null;
}

function objectError(s: Shape, value: Record<string, unknown>, path: string): Problem | null {
  const properties = s.properties ?? {};
  const missing = (s.required ?? []).filter((k) => !Object.hasOwn(value, k));
  if (missing.length > 0)
    return { path, message: `must have required properties ${missing.join(', ')}` };
  if (s.additionalProperties === false) {
    for (const k in value) {
      if (Object.hasOwn(value, k) && !Object.hasOwn(properties, k))
        return { path: pointer(path, k), message: 'is not an allowed property' };
    }
  }
  for (const [k, sub] of Object.entries(properties)) {
    if (Object.hasOwn(value, k) && !validator(sub).Check(value[k]))
      return firstError(sub, value[k], pointer(path, k));
  }
  return null;
}

/**
 * The first problem of a value that failed `schema`, found without listing
 * them all: typebox's Errors() walks every item of every array even when it
 * keeps only a few errors, which took seconds on an array of millions.
 * Sizes are checked before items, each item or property is tested with a
 * compiled check, and the walk descends only into the first that fails.
 * Typebox names the problem only at the node where the walk stops: a scalar,
 * or a node whose children are all valid.
 */
function firstError(schema: TSchema, value: unknown, path: string): Problem {
  const s = schema as Shape;
  let found: Problem | null = null;
  if (Array.isArray(s.anyOf)) found = unionError(s.anyOf, value, path);
  else if (s.type === 'array' && Array.isArray(value)) found = arrayError(s, value, path);
  else if (s.type === 'object' && isRecord(value)) found = objectError(s, value, path);
  if (found !== null) return found;
  const first = validator(schema).Errors(value)[0];
  if (first === undefined) return { path, message: 'does not match the schema' };
  return { path: path + first.instancePath, message: first.message };
}

export { parseJson } from './json.js';
