import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encode, packFrames, parseCoordinatorFrame } from './wire.js';

void test('a frame keeps its well-formed messages and names the malformed ones', () => {
  const frame = JSON.stringify([
    { t: 'beat' },
    { t: 'ack', taskId: 1, attempt: 1, status: 'committed' },
    { t: 'ack', taskId: 1, attempt: 0, status: 'committed' },
    { t: 'run', taskId: 2, attempt: 1, groupId: 'g', index: 0, handler: 'h', timeoutMs: 0 },
    { t: 'mystery' },
    'text',
  ]);
  const parsed = parseCoordinatorFrame(frame);
  assert.deepEqual(
    parsed.messages.map((m) => m.t),
    ['beat', 'ack'],
  );
  assert.equal(parsed.problems.length, 4);
  assert.match(parsed.problems[2] ?? '', /^message 4: unknown message type "mystery"/);
  assert.match(parseCoordinatorFrame('{').problems[0] ?? '', /not valid JSON/);
  assert.match(parseCoordinatorFrame('{}').problems[0] ?? '', /not a JSON array/);
});

void test('__proto__ keys in a frame are dropped', () => {
  const parsed = parseCoordinatorFrame(
    '[{"t":"run","taskId":1,"attempt":1,"groupId":"g","index":0,"handler":"h","timeoutMs":0,"input":{"__proto__":{"x":1}}}]',
  );
  const input = (parsed.messages[0] as { input: object }).input;
  assert.equal(Object.getPrototypeOf(input), Object.prototype);
  assert.deepEqual(Object.keys(input), []);
});

void test('packFrames keeps order and cuts frames near the limit; a big message goes alone', () => {
  const small = encode({ t: 'beat' });
  const big = encode({ t: 'result', taskId: 1, attempt: 1, value: 'x'.repeat(100) });
  const frames = packFrames([small, small, big, small], 40);
  assert.deepEqual(
    frames.map((f) => (JSON.parse(f) as { t: string }[]).map((m) => m.t)),
    [['beat', 'beat'], ['result'], ['beat']],
  );
  assert.deepEqual(packFrames([small, small, small], 1 << 20), [
    '[{"t":"beat"},{"t":"beat"},{"t":"beat"}]',
  ]);
  assert.deepEqual(packFrames([], 10), []);
});

void test('a message too deep does not sink its frame; a run too deep becomes an unreadable run', () => {
  // A run's input is held to maxDepth (8); other messages are read up to
  // GROUP_REPLY_DEPTH (4) levels deeper, for a group reply's results.
  const deep = `${'['.repeat(10)}${']'.repeat(10)}`;
  const deeper = `${'['.repeat(13)}${']'.repeat(13)}`;
  const frame = `[{"t":"beat"},{"t":"run","taskId":3,"attempt":2,"input":${deep}},{"t":"ack","taskId":1,"attempt":1,"status":"stale","x":${deeper}}]`;
  const parsed = parseCoordinatorFrame(frame, 8);
  assert.equal(parsed.messages.length, 2);
  assert.deepEqual(parsed.messages[0], { t: 'beat' });
  const m = parsed.messages[1];
  assert.equal(m?.t, 'unreadable');
  assert.match(
    JSON.stringify(m),
    /"taskId":3,"attempt":2,"message":"the run of task 3 attempt 2 carries an input or checkpoint nested deeper than 8 levels/,
  );
  assert.equal(parsed.problems.length, 1);
  assert.match(
    parsed.problems[0] ?? '',
    /^message 2: the value in message 2 of frame from the coordinator nests arrays and objects deeper than 12 levels/,
  );
});

void test('a welcome must say maxDepth', () => {
  const welcome = {
    t: 'welcome',
    workerId: 'w1',
    token: 't',
    resumed: false,
    heartbeatMs: 1,
    deadAfterMs: 1,
    closeGraceMs: 0,
    maxResultBytes: 1,
  };
  assert.match(parseCoordinatorFrame(JSON.stringify([welcome])).problems[0] ?? '', /maxDepth/);
  assert.deepEqual(
    parseCoordinatorFrame(JSON.stringify([{ ...welcome, maxDepth: 3 }])).problems,
    [],
  );
});

void test('packFrames never puts more than maxMessages in a frame', () => {
  const beat = encode({ t: 'beat' });
  assert.deepEqual(packFrames([beat, beat, beat], 1 << 20, 2), [
    '[{"t":"beat"},{"t":"beat"}]',
    '[{"t":"beat"}]',
  ]);
});
