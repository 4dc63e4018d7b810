import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { RegroupError } from '../core/errors.js';
import { DEFAULT_LIMITS } from './limits.js';
import { TooDeepMessage, depthExceededAt, parseFrame, parseJson, shapeExceededAt } from './json.js';

const nested = (n: number, inner = '1'): string => '['.repeat(n) + inner + ']'.repeat(n);

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RegroupError, `not a RegroupError: ${String(e)}`);
    return e.code;
  }
  assert.fail('did not throw');
}

void describe('depthExceededAt', () => {
  test('counts arrays and objects, the value itself being level 1', () => {
    assert.equal(depthExceededAt('5', 0), -1);
    assert.equal(depthExceededAt('[]', 0), 0);
    assert.equal(depthExceededAt('{"a":[1,{"b":2}]}', 3), -1);
    assert.equal(depthExceededAt('{"a":[1,{"b":2}]}', 2), 8);
  });

  test('brackets inside strings, with escaped quotes and backslashes, do not count', () => {
    assert.equal(depthExceededAt('["[[[[", "{{\\"[[[", "\\\\", "]]]"]', 1), -1);
    // The string ends at the quote after an escaped backslash: the [ after it counts.
    assert.equal(depthExceededAt('["\\\\", [1]]', 1), 7);
    assert.equal(depthExceededAt('["a\\"]", [1]]', 1), 9);
    assert.equal(depthExceededAt('{"k[": "v{", "x": {"y": []}}', 2), 24);
  });

  test('an unterminated string ends the scan without error', () => {
    assert.equal(depthExceededAt('["abc [[[', 1), -1);
  });
});

void describe('parseJson', () => {
  test('exactly at the limit parses; one level more is too_deep, naming the limit and the fix', () => {
    assert.deepEqual(parseJson(nested(64), 'input'), JSON.parse(nested(64)));
    assert.throws(
      () => parseJson(nested(65), 'the input'),
      (e: unknown) =>
        e instanceof RegroupError &&
        e.code === 'too_deep' &&
        e.status === 400 &&
        /^the input nests arrays and objects deeper than 64 levels \(maxDepth; level 65 opens at character 64\)/.test(
          e.message,
        ) &&
        /flatten the data, or start the coordinator with a larger --max-json-depth/.test(e.message),
    );
    assert.equal(DEFAULT_LIMITS.maxDepth, 64);
  });

  test('takes the limit as an option', () => {
    assert.equal(
      code(() => parseJson('{"a":{"b":{}}}', 'x', { maxDepth: 2 })),
      'too_deep',
    );
    assert.deepEqual(parseJson('{"a":{"b":{}}}', 'x', { maxDepth: 3 }), { a: { b: {} } });
    assert.deepEqual(parseJson(nested(200), 'x', { maxDepth: 200 }), JSON.parse(nested(200)));
  });

  test('100,000 levels are refused with too_deep, never a RangeError', () => {
    assert.equal(
      code(() => parseJson(nested(100_000), 'x')),
      'too_deep',
    );
    assert.equal(
      code(() => parseJson('{"a":'.repeat(100_000), 'x')),
      'too_deep',
    );
  });

  test('text that is not JSON is invalid_json, as before', () => {
    assert.equal(
      code(() => parseJson('{', 'the body')),
      'invalid_json',
    );
    assert.throws(() => parseJson('', 'the body'), /the body is not valid JSON/);
  });

  test('__proto__ keys are dropped at every level and pollute nothing', () => {
    const text =
      '{"__proto__":{"polluted":true},"a":[{"__proto__":{"polluted":true},"b":1}],"s":"\\"__proto__\\""}';
    const v = parseJson(text, 'x') as Record<string, unknown>;
    assert.deepEqual(Object.keys(v), ['a', 's']);
    assert.equal(Object.hasOwn(v, '__proto__'), false);
    const inner = (v.a as Record<string, unknown>[])[0]!;
    assert.equal(Object.hasOwn(inner, '__proto__'), false);
    assert.equal(inner.b, 1);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.deepEqual({ ...v }.a, [{ b: 1 }]);
  });

  test('a __proto__ key spelled with \\u escapes is dropped too', () => {
    const v = parseJson('{"\\u005f_proto__":{"polluted":true},"b":"\\u0041"}', 'x') as object;
    assert.deepEqual(Object.keys(v), ['b']);
    assert.equal(Object.hasOwn(v, '__proto__'), false);
  });

  test('a key that merely contains __proto__ stays', () => {
    assert.deepEqual(parseJson('{"x__proto__":1}', 'x'), { x__proto__: 1 });
  });
});

void describe('parseFrame', () => {
  const o = { maxDepth: 3, maxMessages: 10 };

  test('a frame within the limits parses whole', () => {
    // A value of 3 levels sits at level 5 of the frame.
    const frame = '[{"t":"result","value":[[[1]]]},{"t":"beat"}]';
    assert.deepEqual(parseFrame(frame, 'frame', o), JSON.parse(frame));
  });

  test('too many messages are refused before anything is parsed', () => {
    const frame = `[${Array.from({ length: 11 }, () => '{}').join(',')}]`;
    assert.throws(
      () => parseFrame(frame, 'frame', o),
      (e: unknown) =>
        e instanceof RegroupError &&
        e.code === 'protocol_error' &&
        e.message === 'frame holds 11 messages; at most 10: send fewer per frame',
    );
    // Commas inside strings and nested values do not count.
    assert.equal(
      (parseFrame('[{"a":[1,2,3,4,5,6,7,8,9,10,11]},",,,,,,,,,,,,"]', 'f', o) as unknown[]).length,
      2,
    );
  });

  test('a message too deep comes back as TooDeepMessage; the others parse', () => {
    const deep = `{"t":"result","taskId":7,"attempt":2,"value":${nested(4)},"after":"x"}`;
    const frame = `[{"t":"beat"}, ${deep} ,{"t":"result","taskId":8,"attempt":1,"value":${nested(3)}}]`;
    const out = parseFrame(frame, 'frame', o) as unknown[];
    assert.equal(out.length, 3);
    assert.deepEqual(out[0], { t: 'beat' });
    assert.deepEqual(out[2], { t: 'result', taskId: 8, attempt: 1, value: JSON.parse(nested(3)) });
    const m = out[1];
    assert.ok(m instanceof TooDeepMessage);
    assert.equal(m.index, 1);
    assert.deepEqual({ ...m.fields }, { t: 'result', taskId: 7, attempt: 2, after: 'x' });
    assert.equal(m.error.code, 'too_deep');
    assert.match(
      m.error.message,
      /^the value in message 1 of frame nests arrays and objects deeper than 3 levels/,
    );
  });

  test('a frame 100,000 deep is refused without a RangeError', () => {
    assert.equal(
      code(() => parseFrame('{"a":'.repeat(100_000), 'frame', o)),
      'too_deep',
    );
    const out = parseFrame(nested(100_000), 'frame', o) as unknown[];
    assert.equal(out.length, 1);
    assert.ok(out[0] instanceof TooDeepMessage);
  });

  test('a frame that is not an array is returned as parsed', () => {
    assert.deepEqual(parseFrame('{"t":"beat"}', 'frame', o), { t: 'beat' });
    assert.deepEqual(parseFrame('[]', 'frame', o), []);
    assert.equal(
      code(() => parseFrame('[{"a":', 'frame', o)),
      'invalid_json',
    );
  });
});

describe('shapeExceededAt: arrays and strings no valid text can hold', () => {
  const limits = { maxArrayItems: 3, maxStringLength: 5 };
  it('counts the items of each array apart, at every level, and skips strings', () => {
    assert.equal(shapeExceededAt('[1,2,3]', limits, 10), null);
    assert.equal(shapeExceededAt('[[1,2,3],[4,5,6],{"a":[7,8,9]}]', limits, 10), null);
    assert.equal(shapeExceededAt('["a,b,c", "x"]', limits, 10), null, 'commas in strings');
    assert.equal(shapeExceededAt('{"a":1,"b":2,"c":3,"d":4}', limits, 10), null, 'objects');
    assert.deepEqual(shapeExceededAt('[1,2,3,4]', limits, 10), { at: 0, what: 'array' });
    assert.deepEqual(shapeExceededAt('{"x":[[1],[2],[3],[4]]}', limits, 10), {
      at: 5,
      what: 'array',
    });
    assert.deepEqual(shapeExceededAt('[[1,2],[1,2,3,4]]', limits, 10), { at: 7, what: 'array' });
  });
  it('finds a level deeper than maxDepth first, even after an array or string too long', () => {
    assert.deepEqual(shapeExceededAt('[[[1]]]', limits, 2), { at: 2, what: 'depth' });
    assert.deepEqual(shapeExceededAt('[1,2,3,4,"abcdefg",[[[]]]]', limits, 3), {
      at: 21,
      what: 'depth',
    });
    assert.deepEqual(shapeExceededAt('[1,2,3,4,"abcdefg",[[]]]', limits, 3), {
      at: 0,
      what: 'array',
    });
  });
  it('measures strings, escapes included', () => {
    assert.equal(shapeExceededAt('["abcde"]', limits, 10), null);
    assert.deepEqual(shapeExceededAt('["abcdef"]', limits, 10), { at: 1, what: 'string' });
    assert.deepEqual(shapeExceededAt('{"abcdef":1}', limits, 10), { at: 1, what: 'string' });
  });
  it('parseJson refuses such text before parsing, with validation_failed naming the limit', () => {
    assert.throws(
      () => parseJson('[' + '0,'.repeat(10) + '0]', 'the body', { shape: limits }),
      (e: unknown) =>
        e instanceof RegroupError &&
        e.code === 'validation_failed' &&
        /more than 3 items/.test(e.message),
    );
    assert.deepEqual(parseJson('[1,2,3]', 'the body', { shape: limits }), [1, 2, 3]);
  });
});
