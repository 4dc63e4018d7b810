/**
 * What a handler returns (or saves as a checkpoint), as the JSON text the
 * worker sends, or why it cannot be sent. JSON.stringify changes some values
 * without a word (NaN becomes null, a function disappears, a Map becomes
 * `{}`); those are refused here, naming where they are, so a task never
 * "succeeds" with data it did not return. A nested `undefined` is what JSON
 * makes of it: a property is left out, an array item becomes null; a result
 * of `undefined` is null (the run says so), a checkpoint of it is refused
 * (docs/handlers.md).
 */
import { depthExceededAt } from '../protocol/json.js';

/** The coordinator's limits on results and checkpoints (its welcome says them). */
export interface ResultLimits {
  maxResultBytes: number;
  maxDepth: number;
}

/** Whose value it is: `root` names it in paths (`result.items[2]`), `owner` in messages. */
export interface ValueName {
  root: 'result' | 'checkpoint' | 'inputs';
  /** e.g. `the result of task 12 (handler "crunch")` */
  owner: string;
}

export type JsonOutcome =
  | { ok: true; text: string }
  | { ok: false; code: 'validation_failed' | 'input_too_large' | 'too_deep'; message: string };

const PATH_MAX = 200;
const PLAIN = 'use plain objects, arrays, strings, finite numbers, booleans and null';

/** Thrown inside JSON.stringify's replacer at the first value it would change. */
class NotJson extends Error {
  constructor(
    readonly holder: object,
    readonly key: string,
    readonly what: string,
  ) {
    super(what);
  }
}

/** Why `v` cannot travel as JSON unchanged: `is NaN; JSON cannot carry it (...)`; null when it can. */
function changedByJson(v: unknown): string | null {
  switch (typeof v) {
    case 'number':
      if (Number.isFinite(v)) return null;
      return `is ${String(v)}; JSON cannot carry it (it would arrive as null): return null or a string instead`;
    case 'bigint':
      return `is a BigInt (${String(v)}n); JSON cannot carry it: return String(x), or Number(x) when it fits`;
    case 'function':
      return 'is a function; JSON cannot carry it (it would be left out): return data only';
    case 'symbol':
      return 'is a symbol; JSON cannot carry it (it would be left out): return a string instead';
    case 'object':
      if (v instanceof Map) {
        return 'is a Map; JSON cannot carry it (it would arrive as {}): return Object.fromEntries(map) or [...map]';
      }
      if (v instanceof Set) {
        return 'is a Set; JSON cannot carry it (it would arrive as {}): return [...set]';
      }
      return null;
    case 'boolean':
    case 'string':
    case 'undefined':
      return null;
  }
}

/** `result.items[2].name`, `checkpoint["a b"]`: where `key` of `holder` is, from the parents seen. */
function pathOf(
  parents: Map<object, { holder: object; key: string }>,
  holder: object,
  key: string,
  root: string,
): string {
  const keys: string[] = [];
  const arrays: boolean[] = [];
  for (let h: object | undefined = holder, k = key; h !== undefined;) {
    const up = parents.get(h);
    if (up === undefined) break; // the wrapper JSON.stringify puts around the value: the root
    keys.push(k);
    arrays.push(Array.isArray(h));
    h = up.holder;
    k = up.key;
  }
  let path = root;
  for (let i = keys.length - 1; i >= 0; i--) {
    const k = keys[i] ?? '';
    if (arrays[i]) path += `[${k}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(k)) path += `.${k}`;
    else path += `[${JSON.stringify(k)}]`;
  }
  return path.length <= PATH_MAX ? path : `${path.slice(0, PATH_MAX - 1)}…`;
}

const CYCLE =
  'refers to an object that contains it (a cycle); JSON cannot carry it: return a copy without the cycle';

/** Whether `v` is `holder` or one of the objects `holder` was found in. */
function isAncestor(
  parents: Map<object, { holder: object; key: string }>,
  v: object,
  holder: object,
): boolean {
  for (let h: object | undefined = holder; h !== undefined; h = parents.get(h)?.holder) {
    if (h === v) return true;
  }
  return false;
}

/** Thrown inside JSON.stringify's replacer once the text is sure to pass the byte limit. */
class TooLarge extends Error {}

/**
 * JSON.stringify, throwing at the first value it would change
 * (changedByJson), or as soon as the text is sure to be longer than
 * `maxBytes`: a handler that returns (or spawns) hundreds of megabytes is
 * refused after reading a few, instead of stalling the worker for seconds
 * (and missing its beats) to build text that is refused anyway. What is
 * counted is a lower bound of the UTF-8 bytes: each string's UTF-16 length,
 * each object key's (not an array's, nor an undefined property's), one byte
 * for any other value.
 */
function quickStringify(value: unknown, maxBytes: number): string | undefined {
  let atLeast = 0;
  return JSON.stringify(value, function (this: object, key: string, v: unknown) {
    const bad = changedByJson(v);
    if (bad !== null) throw new NotJson(this, key, bad);
    // Left out (in an object) or null (in an array): its key is not in the text.
    if (v === undefined) return v;
    atLeast += (Array.isArray(this) ? 0 : key.length) + (typeof v === 'string' ? v.length : 1);
    if (atLeast > maxBytes) throw new TooLarge();
    return v;
  });
}

function tooLarge(name: ValueName, maxBytes: number, bytes?: number): JsonOutcome {
  const size =
    bytes === undefined
      ? `more than maxResultBytes (${maxBytes}) bytes of JSON`
      : `${bytes} bytes of JSON, more than maxResultBytes (${maxBytes})`;
  return {
    ok: false,
    code: 'input_too_large',
    message: `${name.owner} is ${size}; send less (keep large data elsewhere and pass a reference) or raise the coordinator's --max-result-bytes`,
  };
}

/**
 * JSON.stringify again, noting where each object was found, to say where
 * the first bad value or the cycle is (twice as slow: only once the quick
 * pass failed).
 */
function whereNotJson(value: unknown, root: string): string {
  // Each object seen, with where it was last found (for a value inside it: where it is now).
  const parents = new Map<object, { holder: object; key: string }>();
  try {
    JSON.stringify(value, function (this: object, key: string, v: unknown) {
      const bad = changedByJson(v);
      if (bad !== null) throw new NotJson(this, key, bad);
      if (typeof v === 'object' && v !== null) {
        if (parents.has(v) && isAncestor(parents, v, this)) throw new NotJson(this, key, CYCLE);
        parents.set(v, { holder: this, key });
      }
      return v;
    });
  } catch (e) {
    if (e instanceof NotJson) return `${pathOf(parents, e.holder, e.key, root)} ${e.what}`;
    return `not JSON-serializable: ${e instanceof Error ? e.message : String(e)}; ${PLAIN}`;
  }
  return `not JSON-serializable (it changed while being read); ${PLAIN}`;
}

/**
 * Whether `value` nests objects and arrays deeper than `max`, walked without
 * recursion: for a value so deep that stringifying it overflowed the stack.
 * An object met again is not walked again (a cycle ends there).
 */
export function deeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  const seen = new Set<object>();
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const [v, depth] = top;
    if (typeof v !== 'object' || v === null || seen.has(v)) continue;
    if (depth > max) return true;
    seen.add(v);
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return false;
}

function tooDeep(name: ValueName, maxDepth: number): JsonOutcome {
  return {
    ok: false,
    code: 'too_deep',
    message: `${name.owner} is nested deeper than ${maxDepth} levels (maxDepth) of arrays and objects; return flatter data, or raise the coordinator's --max-json-depth`,
  };
}

function stringify(value: unknown, name: ValueName, limits: ResultLimits): JsonOutcome {
  const { maxDepth, maxResultBytes } = limits;
  try {
    const text = quickStringify(value, maxResultBytes);
    if (text !== undefined) return { ok: true, text };
    // A toJSON that returns undefined.
    return {
      ok: false,
      code: 'validation_failed',
      message: `${name.owner} is undefined as JSON; ${PLAIN}`,
    };
  } catch (e) {
    if (e instanceof TooLarge) return tooLarge(name, maxResultBytes);
    // Thousands of levels overflow the stack before the depth is checked on the text.
    if (e instanceof RangeError && deeperThan(value, maxDepth)) return tooDeep(name, maxDepth);
    const message = `${name.owner}: ${whereNotJson(value, name.root)}`;
    return { ok: false, code: 'validation_failed', message };
  }
}

/**
 * The JSON text of `value`, or why it cannot be sent: not JSON or changed by
 * JSON (`validation_failed`), larger than maxResultBytes (`input_too_large`;
 * the coordinator's limit, which also bounds checkpoints) or nested deeper
 * than maxDepth (`too_deep`). The depth is checked on the text with the
 * coordinator's own scan, so what passes here passes there; a value too
 * deep for JSON.stringify itself (thousands of levels) is measured without
 * recursion and refused as too deep.
 */
export function jsonOf(value: unknown, name: ValueName, limits: ResultLimits): JsonOutcome {
  if (value === undefined) {
    // A result of undefined is null (the run maps it); a checkpoint of undefined is a mistake.
    const message = `${name.owner} is undefined, which is not JSON; ${PLAIN}`;
    return { ok: false, code: 'validation_failed', message };
  }
  const json = stringify(value, name, limits);
  if (!json.ok) return json;
  const { text } = json;
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.maxResultBytes) return tooLarge(name, limits.maxResultBytes, bytes);
  if (depthExceededAt(text, limits.maxDepth) !== -1) return tooDeep(name, limits.maxDepth);
  return { ok: true, text };
}
