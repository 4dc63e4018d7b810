import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { STACK_MAX_BYTES, STACK_MAX_LINES, clipStack, stackOf } from './task-error.js';

const bytes = (s: string): number => Buffer.byteLength(s);

void test('a clipped stack is within its bounds, keeps whole lines from the start, and clips once', () => {
  const line = fc.string({ unit: 'binary', maxLength: 400 }).map((s) => s.replace(/\n/g, ' '));
  fc.assert(
    fc.property(fc.array(line, { maxLength: 200 }), (lines) => {
      const stack = lines.join('\n');
      const clipped = clipStack(stack);
      const out = clipped.split('\n');
      assert.ok(bytes(clipped) <= STACK_MAX_BYTES, `${bytes(clipped)} bytes`);
      assert.ok(out.length <= STACK_MAX_LINES, `${out.length} lines`);
      assert.equal(clipStack(clipped), clipped, 'idempotent');
      if (clipped === stack) return;
      const kept = out.slice(0, -1);
      assert.match(out.at(-1)!, /^ {4}\[clipped /);
      // Whole lines, except a first line longer than the bound, cut within.
      kept.forEach((l, i) => {
        if (l !== lines[i]) assert.ok(i === 0 && lines[0]!.startsWith(l) && kept.length === 1);
      });
    }),
    { numRuns: 300 },
  );
});

void test('clips at a line boundary and says how many lines went', () => {
  const stack = Array.from({ length: 120 }, (_, i) => `    at f${i} (file:///a.js:${i}:1)`).join(
    '\n',
  );
  const out = clipStack(stack).split('\n');
  assert.equal(out.length, STACK_MAX_LINES);
  assert.equal(out[0], '    at f0 (file:///a.js:0:1)');
  assert.equal(out[48], '    at f48 (file:///a.js:48:1)');
  assert.equal(
    out[49],
    '    [clipped 71 more lines: a task error keeps 50 lines, 8192 bytes of stack]',
  );
  const wide = clipStack('y'.repeat(10_000_000));
  assert.ok(bytes(wide) <= STACK_MAX_BYTES);
  assert.match(wide, /^y+\n {4}\[clipped the rest of a long line: /);
  assert.equal(clipStack('    at a\n    at b'), '    at a\n    at b');
});

function thrower(): never {
  throw new TypeError('bad\nthing');
}

void test('stackOf keeps the frames without the Name: message header, and the causes', () => {
  let e: unknown;
  try {
    thrower();
  } catch (x) {
    e = x;
  }
  const stack = stackOf(e)!;
  assert.match(stack.split('\n')[0]!, /^ {4}at thrower \(file:.*task-error\.test\.js:\d+:\d+\)$/);
  assert.ok(!stack.includes('bad'), 'the message is not repeated');

  const giant = new Error('m'.repeat(1_000_000));
  const frames = stackOf(giant)!;
  assert.ok(
    !frames.includes('mmm') && /^ {4}at /.test(frames),
    'a giant message leaves the frames',
  );

  const wrapped = new Error('fetch failed', { cause: new RangeError('connect ECONNREFUSED') });
  const chained = stackOf(wrapped)!;
  assert.match(chained, /\ncaused by: RangeError: connect ECONNREFUSED\n {4}at /);

  const cyclic = new Error('a');
  (cyclic as { cause?: unknown }).cause = cyclic;
  assert.ok(!stackOf(cyclic)!.includes('caused by'));

  assert.equal(stackOf('a string'), undefined);
  assert.equal(stackOf({ stack: 42 }), undefined);
  assert.equal(stackOf(Object.assign(new Error('x'), { stack: 'Error: x' })), undefined);
  assert.equal(stackOf({ stack: 'custom trace\nline 2' }), 'custom trace\nline 2');
  const hostile = new Proxy(
    {},
    {
      get: () => {
        throw new Error('no');
      },
    },
  );
  assert.equal(stackOf(hostile), undefined);
});
