/**
 * Parsing JSON that arrives from outside: bounded nesting, no `__proto__`
 * keys, and frames (JSON arrays of messages) where one bad message does not
 * sink the others. Nothing here recurses on the data, so no input, however
 * deep, can overflow the stack.
 */
import { RegroupError } from '../core/errors.js';
import { DEFAULT_LIMITS } from './limits.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;

const isOpen = (c: number): boolean => c === OPEN_ARRAY || c === OPEN_OBJECT;
const isClose = (c: number): boolean => c === CLOSE_ARRAY || c === CLOSE_OBJECT;
const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Index just past the string whose opening quote is at `i` (text.length when it never closes). */
function skipString(text: string, i: number): number {
  let q = i;
  for (;;) {
    q = text.indexOf('"', q + 1);
    if (q === -1) return text.length;
    let b = q - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    if ((q - 1 - b) % 2 === 0) return q + 1; // an even run of backslashes escapes only itself
  }
}

/**
 * Where the text opens a level deeper than `maxDepth` (index of that `[` or
 * `{`), or -1. Levels are arrays and objects; the outermost is level 1.
 * Brackets inside strings do not count. O(n), one pass, no allocation; it
 * does not check syntax (JSON.parse does, afterwards).
 */
export function depthExceededAt(
  text: string,
  maxDepth: number,
  from = 0,
  to = text.length,
): number {
  let depth = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = skipString(text, i) - 1;
    else if (isOpen(c)) {
      if (++depth > maxDepth) return i;
    } else if (isClose(c)) depth--;
  }
  return -1;
}

/** What a text must not hold, checked on the text before it is parsed. */
export interface ShapeLimits {
  /** Most items in any one array. */
  maxArrayItems: number;
  /** Longest string (in UTF-16 code units, never more than its UTF-8 bytes). */
  maxStringLength: number;
}

/**
 * What in the text no valid one can hold, found in one pass: a level deeper
 * than `maxDepth` first (anywhere in the text: the pass stops there), else
 * the first array with more than `maxArrayItems` items or string longer than
 * `maxStringLength`; where it starts and which, or null. A counter per open
 * level, at most maxDepth of them. JSON.parse of a huge array costs far more
 * than this scan, so a body that cannot be valid is refused before it is
 * parsed.
 */
export function shapeExceededAt(
  text: string,
  limits: ShapeLimits,
  maxDepth: number,
): { at: number; what: 'depth' | 'array' | 'string' } | null {
  const items = new Int32Array(maxDepth + 1);
  const isArray = new Uint8Array(maxDepth + 1);
  const start = new Int32Array(maxDepth + 1);
  let found: { at: number; what: 'array' | 'string' } | null = null;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = skipString(text, i);
      if (found === null && end - i - 2 > limits.maxStringLength) found = { at: i, what: 'string' };
      if (isArray[depth] === 1 && items[depth] === 0) items[depth] = 1;
      i = end - 1;
    } else if (isOpen(c)) {
      if (depth + 1 > maxDepth) return { at: i, what: 'depth' };
      if (isArray[depth] === 1 && items[depth] === 0) items[depth] = 1;
      depth++;
      isArray[depth] = c === OPEN_ARRAY ? 1 : 0;
      items[depth] = 0;
      start[depth] = i;
    } else if (isClose(c)) {
      if (depth > 0) depth--;
    } else if (c === COMMA) {
      if (isArray[depth] === 1) {
        const n = (items[depth] ?? 0) + 1;
        items[depth] = n;
        if (found === null && n > limits.maxArrayItems)
          found = { at: start[depth] ?? 0, what: 'array' };
      }
    } else if (isArray[depth] === 1 && items[depth] === 0 && !isSpace(c)) {
      items[depth] = 1; // the first item of an array: a number, true, false or null
    }
  }
  return found;
}

function tooDeep(what: string, maxDepth: number, at: number): RegroupError {
  return new RegroupError(
    'too_deep',
    `${what} nests arrays and objects deeper than ${maxDepth} levels (maxDepth; level ${
      maxDepth + 1
    } opens at character ${at}): flatten the data, or start the coordinator with a larger --max-json-depth`,
  );
}

function tooBig(
  what: string,
  s: { at: number; what: 'array' | 'string' },
  l: ShapeLimits,
): RegroupError {
  const detail =
    s.what === 'array'
      ? `an array of more than ${l.maxArrayItems} items`
      : `a string longer than ${l.maxStringLength} characters`;
  // A string that long can only be part of an input, and makes it too large.
  return new RegroupError(
    s.what === 'string' ? 'input_too_large' : 'validation_failed',
    `${what} holds ${detail} (at character ${s.at}), more than any valid one can: send fewer tasks per request, or smaller inputs (maxTasksPerRequest, maxInputBytes)`,
  );
}

/** Deletes every own `__proto__` key, walking with an explicit stack (no recursion). */
function dropProtoKeys(root: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      for (const x of v) if (typeof x === 'object' && x !== null) stack.push(x);
      continue;
    }
    const o = v as Record<string, unknown>;
    if (Object.hasOwn(o, '__proto__')) delete o['__proto__'];
    for (const k in o) {
      const x = o[k];
      if (typeof x === 'object' && x !== null) stack.push(x);
    }
  }
}

export interface ParseJsonOptions {
  /**
   * Deepest nesting allowed, the value itself being level 1; default
   * DEFAULT_LIMITS.maxDepth. Callers that wrap a user's value in their own
   * levels (a request body, a frame) add those levels. `Infinity` skips the
   * check: only for text whose depth was checked already.
   */
  maxDepth?: number;
  /** Arrays and strings no valid text can hold, refused before parsing (`validation_failed`). */
  shape?: ShapeLimits;
}

/**
 * Parses JSON text from outside. Throws RegroupError `too_deep` when it
 * nests deeper than `maxDepth` (checked on the text before parsing) and
 * `invalid_json` when it is not JSON. `__proto__` keys are dropped:
 * JSON.parse makes them own properties, and no later spread or
 * Object.assign must turn them into prototype writes.
 */
export function parseJson(text: string, what: string, options: ParseJsonOptions = {}): unknown {
  const maxDepth = options.maxDepth ?? DEFAULT_LIMITS.maxDepth;
  if (maxDepth !== Infinity) {
    if (options.shape) {
      // One pass for both: the depth wins wherever it is, then the first shape found.
      const bad = shapeExceededAt(text, options.shape, maxDepth);
      if (bad?.what === 'depth') throw tooDeep(what, maxDepth, bad.at);
      if (bad) throw tooBig(what, { at: bad.at, what: bad.what }, options.shape);
    } else {
      const at = depthExceededAt(text, maxDepth);
      if (at !== -1) throw tooDeep(what, maxDepth, at);
    }
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new RegroupError('invalid_json', `${what} is not valid JSON: ${(e as Error).message}`);
  }
  // A key can also spell __proto__ with \u escapes; only then (rare) or when it is written out is the walk paid.
  if (text.includes('"__proto__"') || text.includes('\\u')) dropProtoKeys(value);
  return value;
}

/** A message of a frame left unparsed because it nests too deep; what could be read of it cheaply. */
export class TooDeepMessage {
  constructor(
    /** Its position in the frame. */
    readonly index: number,
    /** Its top-level fields whose values are not arrays or objects (`t`, `taskId`, `attempt`, ...). */
    readonly fields: Readonly<Record<string, unknown>>,
    readonly error: RegroupError,
  ) {}
}

export interface ParseFrameOptions {
  /**
   * Deepest nesting of the values messages carry (a result, a checkpoint, an
   * input), the value being level 1: the configured `maxDepth`. A message
   * wraps its value in one level (`{ ..., value }`) and the frame wraps the
   * message in one more (`[ ... ]`), so a message may be maxDepth + 1 levels
   * deep and the frame maxDepth + 2. (A message nested deep in a field that
   * is not its value is refused the same way.)
   */
  maxDepth: number;
  /** Most messages in one frame; checked on the text before anything is parsed. */
  maxMessages: number;
}

/** Top-level array elements of `text` as [start, end) pairs, or null when it is not one array. */
function arraySpans(text: string): number[] | null {
  let i = 0;
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== OPEN_ARRAY) return null;
  const spans: number[] = [];
  let depth = 1;
  let start = i + 1;
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = skipString(text, i) - 1;
    else if (isOpen(c)) depth++;
    else if (isClose(c) && --depth === 0) break;
    else if (c === COMMA && depth === 1) {
      spans.push(start, i);
      start = i + 1;
    }
  }
  if (depth !== 0 || text.slice(i + 1).trim() !== '') return null;
  if (spans.length > 0 || text.slice(start, i).trim() !== '') spans.push(start, i);
  return spans;
}

/** Messages in a frame: an upper bound (commas at the frame's own level, plus one), in one pass. */
function countMessages(text: string): number {
  let depth = 0;
  let count = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) i = skipString(text, i) - 1;
    else if (isOpen(c)) depth++;
    else if (isClose(c)) depth--;
    else if (c === COMMA && depth === 1) count++;
  }
  return count;
}

/**
 * Parses a frame: a JSON array of messages. Checks, in this order and before
 * any parsing, the number of messages (`protocol_error`) and the depth. A
 * message deeper than `maxDepth` does not sink the frame: it comes back as a
 * TooDeepMessage in its place, and the others are parsed. A frame that is
 * not an array comes back as parsed (the caller refuses it).
 */
export function parseFrame(text: string, what: string, o: ParseFrameOptions): unknown {
  const count = countMessages(text);
  if (count > o.maxMessages) {
    throw new RegroupError(
      'protocol_error',
      `${what} holds ${count} messages; at most ${o.maxMessages}: send fewer per frame`,
    );
  }
  const messageDepth = o.maxDepth + 1;
  if (depthExceededAt(text, messageDepth + 1) === -1)
    return parseJson(text, what, { maxDepth: Infinity });
  const spans = arraySpans(text);
  if (spans === null) return parseJson(text, what, { maxDepth: messageDepth + 1 });
  const out: unknown[] = [];
  for (let k = 0; k < spans.length; k += 2) {
    const start = spans[k]!;
    const end = spans[k + 1]!;
    const message = `message ${k / 2} of ${what}`;
    const at = depthExceededAt(text, messageDepth, start, end);
    if (at === -1) out.push(parseJson(text.slice(start, end), message, { maxDepth: Infinity }));
    else {
      // The message object is level 1 of the message and level 0 of its value.
      const error = tooDeep(`the value in ${message}`, o.maxDepth, at - start);
      out.push(new TooDeepMessage(k / 2, scalarFields(text, start, end), error));
    }
  }
  return out;
}

/** Index just past the value starting at `i` (a nested one is skipped by counting brackets). */
function skipValue(text: string, i: number, end: number): number {
  let depth = 0;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = skipString(text, i) - 1;
      if (depth === 0) return i + 1;
    } else if (isOpen(c)) depth++;
    else if (isClose(c)) {
      if (depth === 0) return i; // the end of the enclosing object
      if (--depth === 0) return i + 1;
    } else if (c === COMMA && depth === 0) return i;
  }
  return end;
}

function skipSpace(text: string, i: number, end: number): number {
  while (i < end && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/**
 * The top-level members of the object text in [start, end) whose values are
 * scalars, read without parsing the nested ones. Stops quietly at anything
 * unexpected: the result is a best effort, for naming what was refused.
 */
function scalarFields(text: string, start: number, end: number): Record<string, unknown> {
  const fields: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let i = skipSpace(text, start, end);
  if (text.charCodeAt(i) !== OPEN_OBJECT) return fields;
  i++;
  for (;;) {
    i = skipSpace(text, i, end);
    if (text.charCodeAt(i) !== QUOTE) return fields;
    const keyEnd = skipString(text, i);
    let key: unknown;
    try {
      key = JSON.parse(text.slice(i, keyEnd));
    } catch {
      return fields;
    }
    i = skipSpace(text, keyEnd, end);
    if (text.charCodeAt(i) !== COLON) return fields;
    i = skipSpace(text, i + 1, end);
    const valueEnd = skipValue(text, i, end);
    if (!isOpen(text.charCodeAt(i)) && typeof key === 'string') {
      try {
        fields[key] = JSON.parse(text.slice(i, valueEnd));
      } catch {
        return fields;
      }
    }
    i = skipSpace(text, valueEnd, end);
    if (text.charCodeAt(i) !== COMMA) return fields;
    i++;
  }
}
