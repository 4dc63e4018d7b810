import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegroupError } from '../core/errors.js';
import { TooDeepMessage } from '../protocol/json.js';
import { DEFAULT_LIMITS } from '../protocol/limits.js';
import { MAX_FRAME_MESSAGES } from '../protocol/worker.js';
import { decodeWorkerFrame } from './worker-frames.js';

const limits = { ...DEFAULT_LIMITS, maxDepth: 4 };
const decode = (text: string) => decodeWorkerFrame(Buffer.from(text), false, limits);

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RegroupError);
    return `${e.code}: ${e.message}`;
  }
  assert.fail('did not throw');
}

void test('a frame of 1,000,000 tiny messages is refused by count before it is parsed', () => {
  // About 20 ms: one pass over the text; the old path parsed it and checked a million messages.
  const text = `[${new Array<string>(1_000_000).fill('0').join(',')}]`;
  assert.equal(
    refusal(() => decode(text)),
    `protocol_error: frame holds 1000000 messages; at most ${MAX_FRAME_MESSAGES}: send fewer per frame`,
  );
  assert.equal(
    decode(`[${new Array<string>(MAX_FRAME_MESSAGES).fill('0').join(',')}]`).length,
    MAX_FRAME_MESSAGES,
  );
});

void test('a result up to maxDepth passes; one level more comes back as TooDeepMessage in its place', () => {
  const value = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const ok = decode(`[{"t":"result","taskId":1,"attempt":1,"value":${value(4)}}]`);
  assert.deepEqual(ok, [{ t: 'result', taskId: 1, attempt: 1, value: [[[[]]]] }]);
  const out = decode(
    `[{"t":"beat"},{"t":"result","taskId":2,"attempt":3,"value":${value(5)}},{"t":"beat"}]`,
  );
  assert.deepEqual(out[0], { t: 'beat' });
  assert.deepEqual(out[2], { t: 'beat' });
  const m = out[1];
  assert.ok(m instanceof TooDeepMessage);
  assert.deepEqual({ ...m.fields }, { t: 'result', taskId: 2, attempt: 3 });
  assert.match(m.error.message, /deeper than 4 levels \(maxDepth/);
});

void test('a frame deep as a whole, or not an array, or binary, is refused', () => {
  assert.match(
    refusal(() => decode('{"a":'.repeat(3000))),
    /^too_deep: /,
  );
  assert.equal(
    refusal(() => decode('{"t":"beat"}')),
    'protocol_error: invalid frame (a JSON array of messages): (root): must be array',
  );
  assert.match(
    refusal(() => decodeWorkerFrame(Buffer.from('[]'), true, limits)),
    /^protocol_error: frames are JSON text/,
  );
});
