/**
 * docs/api.md from the OpenAPI document: each route with its parameters,
 * body, replies and error codes, then every schema as a table. Written by
 * scripts/openapi-docs.mjs; a test holds the committed file to this output.
 */
import type { JsonObject, JsonValue } from './openapi.js';

const REF = '#/components/schemas/';

/** A JSON value as text: strings as they are, the rest as JSON. */
const str = (x: JsonValue | undefined): string =>
  typeof x === 'string' ? x : x === undefined ? '' : JSON.stringify(x);
const cell = (s: string): string => s.replaceAll('|', '\\|').replaceAll('\n', ' ');
const anchor = (name: string): string => name.toLowerCase();
const isObj = (x: JsonValue | undefined): x is JsonObject =>
  x !== null && typeof x === 'object' && !Array.isArray(x);

/** A schema as a short type: `integer`, `string | null`, `[TaskView](#taskview)[]`, ... */
export function typeOf(s: JsonValue | undefined): string {
  if (!isObj(s)) return 'any JSON';
  if (typeof s['$ref'] === 'string') {
    const name = s['$ref'].slice(REF.length);
    return `[${name}](#${anchor(name)})`;
  }
  if (Array.isArray(s['enum'])) return s['enum'].map((v) => `\`${str(v)}\``).join(' | ');
  if (s['const'] !== undefined) return `\`${JSON.stringify(s['const'])}\``;
  if (Array.isArray(s['anyOf'])) return s['anyOf'].map(typeOf).join(' | ');
  if (s['type'] === 'array') return `${typeOf(s['items'])}[]`;
  if (typeof s['type'] === 'string') return s['type'];
  return 'any JSON';
}

/** The constraints of a schema, in words. */
export function rulesOf(s: JsonValue | undefined): string {
  if (!isObj(s)) return '';
  const r: string[] = [];
  const n = (k: string): string => {
    const v = s[k] as number;
    return v === Number.MAX_SAFE_INTEGER ? '2^53-1' : str(v);
  };
  if (s['minimum'] !== undefined && s['maximum'] !== undefined)
    r.push(`${n('minimum')}-${n('maximum')}`);
  else if (s['minimum'] !== undefined) r.push(`>= ${n('minimum')}`);
  else if (s['maximum'] !== undefined) r.push(`<= ${n('maximum')}`);
  if (s['minLength'] !== undefined || s['maxLength'] !== undefined)
    r.push(`${n('minLength')}-${n('maxLength')} chars`);
  if (s['maxItems'] !== undefined) r.push(`at most ${n('maxItems')} items`);
  if (typeof s['pattern'] === 'string') r.push(`\`${s['pattern']}\``);
  if (s['default'] !== undefined) r.push(`default ${JSON.stringify(s['default'])}`);
  if (s['additionalProperties'] === false) r.push('no other fields');
  return r.join('; ');
}

function table(head: string[], rows: string[][]): string[] {
  return [
    `| ${head.join(' | ')} |`,
    `| ${head.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ];
}

function bodyOf(content: JsonValue | undefined): string {
  if (!isObj(content)) return '-';
  return Object.entries(content)
    .map(([type, c]) =>
      type === 'application/json' && isObj(c) ? typeOf(c['schema']) : `\`${type}\``,
    )
    .join(', ');
}

function tokenOf(op: JsonObject): string {
  const sec = op['security'] as JsonValue[];
  if (sec.length === 0) return 'no token';
  if (sec.some((x) => isObj(x) && Object.keys(x).length === 0))
    return 'client token only with `--dashboard token`';
  return 'client token';
}

function operation(path: string, method: string, op: JsonObject): string[] {
  const out = [`### ${method.toUpperCase()} ${path}`, '', `${str(op['summary'])}.`, ''];
  if (typeof op['description'] === 'string') out.push(op['description'], '');
  out.push(`Token: ${tokenOf(op)}.`, '');
  const params = (op['parameters'] ?? []) as JsonObject[];
  if (params.length > 0) {
    const rows = params.map((p) => [
      `\`${str(p['name'])}\``,
      str(p['in']),
      typeOf(p['schema']) + (p['required'] ? ', required' : ''),
      rulesOf(p['schema']),
      str(p['description']),
    ]);
    out.push(...table(['parameter', 'in', 'type', 'rule', 'meaning'], rows), '');
  }
  const body = op['requestBody'];
  if (isObj(body)) {
    const req = body['required'] ? 'required' : 'optional';
    out.push(`Body (${req}): ${bodyOf(body['content'])}. ${str(body['description'])}`, '');
  }
  const rows: string[][] = [];
  for (const [status, r] of Object.entries(op['responses'] as JsonObject)) {
    if (!isObj(r)) continue;
    const codes = r['x-error-codes'];
    if (Array.isArray(codes)) {
      rows.push([status, 'error: ' + codes.map((c) => `\`${str(c)}\``).join(', '), '']);
    } else rows.push([status, bodyOf(r['content']), str(r['description'])]);
  }
  out.push(...table(['status', 'reply', 'meaning'], rows), '');
  return out;
}

function schema(name: string, s: JsonObject): string[] {
  const out = [`### ${name}`, ''];
  if (typeof s['description'] === 'string') out.push(s['description'], '');
  const props = s['properties'];
  if (!isObj(props)) {
    const rules = rulesOf(s);
    out.push(`${typeOf(s)}${rules ? ` (${rules})` : ''}`, '');
    return out;
  }
  const required = new Set((s['required'] ?? []) as string[]);
  const rows = Object.entries(props).map(([field, p]) => [
    `\`${field}\``,
    typeOf(p) + (required.has(field) ? '' : ', optional'),
    [rulesOf(p), isObj(p) && typeof p['description'] === 'string' ? p['description'] : '']
      .filter(Boolean)
      .join('. '),
  ]);
  if (rows.length === 0) out.push('`{}`: an empty object.', '');
  else out.push(...table(['field', 'type', 'rule / meaning'], rows), '');
  if (s['additionalProperties'] === false && rows.length > 0) out.push('No other fields.', '');
  return out;
}

/** The Markdown reference of the document. */
export function renderMarkdown(doc: JsonObject): string {
  const info = doc['info'] as JsonObject;
  const paths = doc['paths'] as JsonObject;
  const out = [
    '# HTTP API reference',
    '',
    '<!-- Generated from src/protocol/openapi.ts by `npm run docs:api`; do not edit. -->',
    '',
    'Generated from the schemas (`src/protocol/http.ts`) and the route table',
    '(`src/protocol/openapi-routes.ts`). The same document as OpenAPI 3.1:',
    '[openapi.json](openapi.json), also served by every coordinator at `GET /openapi.json`.',
    'The rules behind it, in prose: [protocol.md](protocol.md); error codes: [errors.md](errors.md).',
    '',
    str(info['description']),
    '',
    '## Routes',
    '',
  ];
  const ops: [string, string, JsonObject][] = [];
  for (const [path, item] of Object.entries(paths)) {
    for (const [method, op] of Object.entries(item as JsonObject)) {
      ops.push([path, method, op as JsonObject]);
    }
  }
  const rows = ops.map(([path, method, op]) => [
    method.toUpperCase(),
    `\`${path}\``,
    tokenOf(op),
    str(op['summary']),
  ]);
  out.push(...table(['method', 'path', 'token', 'what'], rows), '');
  for (const tag of doc['tags'] as JsonObject[]) {
    const mine = ops.filter(([, , op]) => (op['tags'] as string[]).includes(str(tag['name'])));
    if (mine.length === 0) continue;
    out.push(`## ${str(tag['name'])}`, '', str(tag['description']), '');
    for (const [path, method, op] of mine) out.push(...operation(path, method, op));
  }
  out.push('## Schemas', '');
  const schemas = (doc['components'] as JsonObject)['schemas'] as JsonObject;
  for (const [name, s] of Object.entries(schemas)) out.push(...schema(name, s as JsonObject));
  return out.join('\n').trimEnd() + '\n';
}
