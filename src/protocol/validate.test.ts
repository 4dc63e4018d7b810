import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Type from 'typebox';
import { RegroupError } from '../core/errors.js';
import { submitRequest } from './http.js';
import { checker } from './validate.js';
import { workerFrame, workerMessage } from './worker.js';

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RegroupError, `not a RegroupError: ${String(e)}`);
    return `${e.code}: ${e.message}`;
  }
  assert.fail('did not throw');
}

const EIGHT_MILLION = 8_000_000;

void describe('checker().parse names the first bad field without listing every error', () => {
  const capped = checker(
    Type.Object({ list: Type.Array(Type.String(), { maxItems: 100 }), n: Type.Integer() }),
  );
  const uncapped = checker(Type.Object({ list: Type.Array(Type.String()) }));

  // Typebox's Errors() took about 15 s on each of the next two arrays (it walks every item);
  // firstError answers in milliseconds. Timings are comments, never assertions.
  test('an 8-million-item array over maxItems', () => {
    const list = new Array<string>(EIGHT_MILLION).fill('x');
    assert.equal(
      message(() => capped.parse({ list, n: 1 }, 'body')),
      'validation_failed: invalid body: /list: must not have more than 100 items',
    );
  });

  test('an 8-million-item array whose items have the wrong type', () => {
    const list = new Array<number>(EIGHT_MILLION).fill(1);
    assert.equal(
      message(() => capped.parse({ list, n: 1 }, 'body')),
      'validation_failed: invalid body: /list: must not have more than 100 items',
    );
    assert.equal(
      message(() => uncapped.parse({ list }, 'body')),
      'validation_failed: invalid body: /list/0: must be string',
    );
  });

  test('the first bad item of a long array without a cap is named by its index', () => {
    const list = new Array<unknown>(1_000_000).fill('ok');
    list[765_432] = { no: 1 };
    assert.equal(
      message(() => uncapped.parse({ list }, 'body')),
      'validation_failed: invalid body: /list/765432: must be string',
    );
  });

  test('objects: a missing field, a field not allowed, a bad field, the root', () => {
    const c = checker(
      Type.Object(
        { a: Type.Integer({ minimum: 1 }), b: Type.Optional(Type.String()) },
        { additionalProperties: false },
      ),
    );
    assert.equal(
      message(() => c.parse({ b: 'x' }, 'thing')),
      'validation_failed: invalid thing: (root): must have required properties a',
    );
    assert.equal(
      message(() => c.parse({ a: 1, 'x/y': 2 }, 'thing')),
      'validation_failed: invalid thing: /x~1y: is not an allowed property',
    );
    assert.match(
      message(() => c.parse({ a: 0 }, 'thing')),
      /^validation_failed: invalid thing: \/a: must be >= 1$/,
    );
    assert.equal(
      message(() => c.parse({ a: 1, b: 2 }, 'thing')),
      'validation_failed: invalid thing: /b: must be string',
    );
    assert.equal(
      message(() => c.parse([], 'thing')),
      'validation_failed: invalid thing: (root): must be object',
    );
    assert.deepEqual(c.parse({ a: 1 }, 'thing'), { a: 1 });
  });

  test('a real request: options.requires of 8 million items', () => {
    const requires = new Array<string>(EIGHT_MILLION).fill('gpu');
    assert.equal(
      message(() =>
        submitRequest.parse(
          { handler: 'h', inputs: [1], options: { requires } },
          'the request body',
        ),
      ),
      'validation_failed: invalid the request body: /options/requires: must not have more than 100 items',
    );
  });

  test('worker messages: the union follows t; an unknown t names the allowed ones', () => {
    const handlers = new Array<string>(4_000_000).fill('h');
    const hello = { t: 'hello', protocol: 1, name: 'w', handlers, slots: 1, labels: [] };
    assert.equal(
      message(() => workerMessage.parse(hello, 'worker message')),
      'protocol_error: invalid worker message: /handlers: must not have more than 10000 items',
    );
    assert.equal(
      message(() =>
        workerMessage.parse({ t: 'result', taskId: 0, attempt: 1, value: 1 }, 'worker message'),
      ),
      'protocol_error: invalid worker message: /taskId: must be >= 1',
    );
    assert.match(
      message(() => workerMessage.parse({ t: 'nope', handlers }, 'worker message')),
      /^protocol_error: invalid worker message: \/t: must be one of "hello", "beat", "result", /,
    );
  });

  test('a frame of more than MAX_FRAME_MESSAGES (100,000) messages', () => {
    assert.equal(
      message(() => workerFrame.parse(new Array<number>(2_000_000).fill(0), 'frame')),
      'protocol_error: invalid frame: (root): must not have more than 100000 items',
    );
  });
});
