/**
 * Validation of a route's query string and body, built from its entry in the
 * route table (src/protocol/openapi-routes.ts) through fastify's validator
 * compiler: query parameters are converted and held to the table's ranges,
 * enums and patterns; bodies are checked by the compiled typebox schema and
 * the first bad field is named.
 */
import type { FastifySchema } from 'fastify';
import type { TSchema } from 'typebox';
import { RegroupError } from '../core/errors.js';
import { GROUP_ID, type Operation } from '../protocol/openapi-routes.js';
import { checker } from '../protocol/validate.js';

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The fastify schema of an operation: its query, its path parameter and its body, from the table. */
export function routeSchema(op: Operation): FastifySchema {
  const schema: FastifySchema = {};
  if (op.query?.length) {
    const properties: Record<string, TSchema> = {};
    const required: string[] = [];
    for (const q of op.query) {
      properties[q.name] = q.schema;
      if (q.required) required.push(q.name);
    }
    schema.querystring = { type: 'object', properties, required };
  }
  if (op.body) schema.body = op.body.schema;
  return schema;
}

interface QuerySpec {
  name: string;
  type?: string;
  minimum?: number;
  maximum?: number;
  default?: number;
  enum?: string[];
  pattern?: string;
  required: boolean;
}

/**
 * Query strings arrive as text: integers are converted and held to their
 * range, enums and patterns checked, defaults applied; unknown parameters are
 * ignored. The first bad parameter is named.
 */
export function queryValidator(
  schema: TSchema,
): (q: unknown) => { value?: unknown; error?: Error } {
  const s = schema as unknown as { properties: Record<string, QuerySpec>; required?: string[] };
  const specs = Object.entries(s.properties).map(([name, p]) => ({
    ...p,
    name,
    required: s.required?.includes(name) ?? false,
  }));
  return (raw) => {
    const q = (raw ?? {}) as Record<string, string | string[] | undefined>;
    const out: Record<string, unknown> = {};
    try {
      for (const p of specs) {
        const v = first(q[p.name]);
        if (v === undefined || v === '') {
          if (p.required) throw badQuery(p, v);
          if (p.default !== undefined) out[p.name] = p.default;
          continue;
        }
        out[p.name] = queryValue(p, v);
      }
    } catch (e) {
      return { error: e as Error };
    }
    return { value: out };
  };
}

function queryValue(p: QuerySpec, v: string): unknown {
  if (p.type === 'integer') {
    const n = Number(v);
    const min = p.minimum ?? Number.MIN_SAFE_INTEGER;
    const max = p.maximum ?? Number.MAX_SAFE_INTEGER;
    if (!Number.isInteger(n) || n < min || n > max) throw badQuery(p, v);
    return n;
  }
  if (p.enum && !p.enum.includes(v)) throw badQuery(p, v);
  if (p.pattern && !new RegExp(p.pattern).test(v)) throw badQuery(p, v);
  return v;
}

function badQuery(p: QuerySpec, v: string | undefined): RegroupError {
  const got = v === undefined ? 'nothing' : `"${v.slice(0, 50)}"`;
  if (p.type === 'integer') {
    return new RegroupError(
      'validation_failed',
      `query parameter ${p.name} must be an integer from ${p.minimum} to ${p.maximum}, got ${got}`,
    );
  }
  if (p.enum) {
    return new RegroupError(
      'validation_failed',
      `query parameter ${p.name} must be one of ${p.enum.join(', ')}, got ${got}`,
    );
  }
  return new RegroupError(
    'validation_failed',
    `query parameter ${p.name} must be ${p.pattern === (GROUP_ID as { pattern?: string }).pattern ? 'a group id' : `a string matching ${p.pattern}`}, got ${got}`,
  );
}

export function bodyValidator(schema: TSchema, what: string): (b: unknown) => { error?: Error } {
  const c = checker(schema);
  return (body) => {
    // No body at all is for the route to judge (requireBody). fastify gives an
    // empty chunked body as null: JSON null itself is refused by the parser.
    if (body === undefined || body === null) return {};
    try {
      c.parse(body, what);
      return {};
    } catch (e) {
      return { error: e as Error };
    }
  };
}
