import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { RegroupError } from '../core/errors.js';
import { makeLogger, parseLevel } from './log.js';

/** A stream that keeps what is written; `tty` makes it look like a terminal. */
function sink(tty: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  Object.assign(w, { isTTY: tty });
  return { stream: w as unknown as NodeJS.WriteStream, text: () => chunks.join('') };
}

void describe('cli logger', () => {
  void it('writes one JSON object per line when the output is not a terminal', () => {
    const out = sink(false);
    const log = makeLogger('info', 'coordinator', out.stream);
    log('warn', 'worker dead', { workerId: 'w_1', taskId: 7, groupId: 'g_1', requeued: 2 });
    log('error', 'tick commit failed', { err: new Error('disk full') });
    const lines = out.text().trimEnd().split('\n');
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.match(String(first['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(
      { ...first, time: 'x' },
      {
        time: 'x',
        level: 'warn',
        component: 'coordinator',
        msg: 'worker dead',
        workerId: 'w_1',
        taskId: 7,
        groupId: 'g_1',
        requeued: 2,
      },
    );
    assert.equal((JSON.parse(lines[1]!) as Record<string, unknown>)['err'], 'disk full');
  });

  void it('writes short readable lines on a terminal, fields as key=value', () => {
    const out = sink(true);
    const log = makeLogger('debug', 'worker', out.stream);
    log('info', 'welcomed', { workerId: 'w_1', reason: 'two words', n: 3, err: new Error('x y') });
    log('debug', 'bare');
    assert.match(
      out.text(),
      /^\d\d:\d\d:\d\d\.\d{3} info  worker: welcomed workerId=w_1 reason="two words" n=3 err="x y"\n\d\d:\d\d:\d\d\.\d{3} debug worker: bare\n$/,
    );
  });

  void it('never writes a control byte from a field to the terminal', () => {
    const out = sink(true);
    const log = makeLogger('info', 'coordinator', out.stream);
    log('warn', 'task failed for good', { error: '\u001b[2J\u001b]0;owned\u0007', code: 'a\tb' });
    const text = out.text();
    assert.doesNotMatch(text.slice(0, -1), /[\u0000-\u001f\u007f]/);
    assert.match(text, /error="\\u001b\[2J\\u001b\]0;owned\\u0007" code="a\\tb"\n$/);
  });

  void it('drops lines below the level', () => {
    const out = sink(false);
    const log = makeLogger('warn', 'coordinator', out.stream);
    log('debug', 'a');
    log('info', 'b');
    log('warn', 'c');
    log('error', 'd');
    assert.deepEqual(
      out
        .text()
        .trimEnd()
        .split('\n')
        .map((l) => (JSON.parse(l) as { msg: string }).msg),
      ['c', 'd'],
    );
  });

  void it('parses --log-level, and names the flag when it is wrong', () => {
    assert.equal(parseLevel(undefined), 'info');
    assert.equal(parseLevel('WARN'), 'warn');
    assert.throws(
      () => parseLevel('loud'),
      (e: unknown) =>
        e instanceof RegroupError && e.code === 'bad_request' && /--log-level/.test(e.message),
    );
  });
});
