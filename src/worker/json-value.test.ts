import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { jsonOf, type ValueName } from './json-value.js';

const limits = { maxResultBytes: 1_000_000, maxDepth: 64 };
const result: ValueName = { root: 'result', owner: 'the result of task 7 (handler "score")' };
const checkpoint: ValueName = { root: 'checkpoint', owner: 'the checkpoint of task 7' };

function refusal(value: unknown, name = result): string {
  const j = jsonOf(value, name, limits);
  assert.equal(j.ok, false, 'expected a refusal');
  if (j.ok) return '';
  assert.equal(j.code, 'validation_failed');
  return j.message;
}

void test('a value JSON would change is refused, saying what and where', () => {
  const cyclic: Record<string, unknown> = { a: { b: [] } };
  (cyclic['a'] as { b: unknown[] }).b.push(cyclic['a']);
  const cases: [unknown, string][] = [
    [{ score: NaN }, 'result.score is NaN; JSON cannot carry it'],
    [{ items: [1, { 'a b': -Infinity }] }, 'result.items[1]["a b"] is -Infinity;'],
    [Infinity, 'result is Infinity;'],
    [{ id: 12n }, 'result.id is a BigInt (12n);'],
    [{ run() {} }, 'result.run is a function;'],
    [[Symbol('s')], 'result[0] is a symbol;'],
    [{ seen: new Set([1]) }, 'result.seen is a Set;'],
    [{ byId: new Map() }, 'result.byId is a Map;'],
    [cyclic, 'result.a.b[0] refers to an object that contains it (a cycle)'],
    [{ toJSON: () => NaN }, 'result is NaN;'],
  ];
  for (const [value, says] of cases) {
    const message = refusal(value);
    assert.ok(message.startsWith('the result of task 7 (handler "score"): '), message);
    assert.ok(message.includes(says), `${message}\n  should say: ${says}`);
  }
  assert.match(refusal({ n: NaN }, checkpoint), /^the checkpoint of task 7: checkpoint\.n is NaN/);
  assert.match(refusal(undefined, checkpoint), /is undefined, which is not JSON/);
});

void test('what JSON carries as it is passes; a nested undefined is what JSON makes of it', () => {
  const shared = { v: 1 };
  const ok = (value: unknown): string => {
    const j = jsonOf(value, result, limits);
    assert.ok(j.ok, j.ok ? '' : j.message);
    return j.ok ? j.text : '';
  };
  assert.equal(ok({ a: shared, b: shared }), '{"a":{"v":1},"b":{"v":1}}', 'shared, not a cycle');
  assert.equal(ok({ u: undefined, list: [undefined, 1] }), '{"list":[null,1]}');
  assert.equal(ok({ at: new Date(0) }), '{"at":"1970-01-01T00:00:00.000Z"}');
  assert.equal(ok([1.5, -0, 'x', true, null]), '[1.5,0,"x",true,null]');
});

void test('a getter that throws is refused as not JSON-serializable', () => {
  const bad = {
    get x(): number {
      throw new Error('no x');
    },
  };
  assert.match(refusal(bad), /not JSON-serializable: no x/);
});

void test('a value too deep for JSON.stringify itself is refused as too deep, not as a stack overflow', () => {
  let deep: unknown = null;
  for (let i = 0; i < 200_000; i++) deep = [deep];
  const j = jsonOf(deep, result, limits);
  assert.ok(!j.ok);
  if (j.ok) return;
  assert.equal(j.code, 'too_deep');
  assert.match(j.message, /nested deeper than 64 levels/);
  let cyclicDeep: Record<string, unknown> = {};
  const top = cyclicDeep;
  for (let i = 0; i < 200_000; i++) cyclicDeep = { next: cyclicDeep };
  top['back'] = cyclicDeep;
  const c = jsonOf(cyclicDeep, result, limits);
  assert.ok(!c.ok && c.code === 'too_deep', 'deep and cyclic: too deep is enough to say');
});

void test('the byte limit: JSON of exactly maxResultBytes passes, one byte less is refused', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4, stringUnit: 'binary' }), (v) => {
      const bytes = Buffer.byteLength(JSON.stringify(v));
      const at = jsonOf(v, result, { maxResultBytes: bytes, maxDepth: 64 });
      assert.equal(at.ok, true, `${bytes} bytes at a limit of ${bytes}`);
      const under = jsonOf(v, result, { maxResultBytes: bytes - 1, maxDepth: 64 });
      assert.equal(under.ok, false);
      if (!under.ok) assert.equal(under.code, 'input_too_large');
    }),
    { numRuns: 500 },
  );
  // Keys of undefined properties are not in the text: they do not count.
  const holes = { a: undefined, bcdefghij: undefined, list: [undefined] };
  assert.equal(jsonOf(holes, result, { maxResultBytes: 15, maxDepth: 64 }).ok, true);
});

void test('a value far past the byte limit is refused before its text is built', () => {
  // 200 MB of JSON if it were built: refused once a lower bound of its size passes the limit.
  const huge = Array.from({ length: 2_000 }, () => 'x'.repeat(100 * 1024));
  const j = jsonOf(huge, result, { maxResultBytes: 4 * 1024 * 1024, maxDepth: 64 });
  assert.equal(j.ok, false);
  if (j.ok) return;
  assert.equal(j.code, 'input_too_large');
  assert.match(j.message, /is more than maxResultBytes \(4194304\) bytes of JSON; send less/);
});
