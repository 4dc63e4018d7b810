import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createProgress, type WaitingNote } from './progress.js';

function sink(tty: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => (text += String(d)));
  Object.assign(out, { isTTY: tty, columns: 200 });
  return { stream: out as unknown as NodeJS.WriteStream, text: () => text };
}

const NOTE: WaitingNote = {
  lines: [
    'waiting: no worker offers handler "sqaure"; connected workers offer: square',
    '  to fix: x',
  ],
  reason: 'waiting: no worker offers handler "sqaure"; connected workers offer: square',
};

const tick = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

void describe('submit progress', () => {
  void it('not a terminal: the waiting lines at once (not throttled), nothing when the wait ends', () => {
    const { stream, text } = sink(false);
    const p = createProgress(3, stream, 60_000);
    p.update(0, 0);
    p.waiting(NOTE);
    p.update(1, 0); // throttled: not shown
    p.waiting(null);
    p.stop();
    assert.equal(
      text(),
      'progress: 0/3 finished, 0 failed\n' +
        'waiting: no worker offers handler "sqaure"; connected workers offer: square\n' +
        '  to fix: x\n' +
        'progress: 1/3 finished, 0 failed\n',
    );
  });

  void it('a terminal: the lines above the bar, the reason in the bar while it lasts', async () => {
    const { stream, text } = sink(true);
    const p = createProgress(3, stream);
    p.waiting(NOTE);
    await tick(250); // the bar redraws every 100 ms
    const during = text();
    assert.ok(during.includes('\r\x1b[2Kwaiting: no worker offers handler "sqaure"'), during);
    assert.match(during, /tasks .* 0\/3 \| failed 0 \| \S+ \| waiting: no worker offers/);
    p.waiting(null);
    await tick(250);
    p.stop();
    const after = text().slice(during.length);
    assert.match(after, /tasks .* 0\/3 \| failed 0 \| \S+/);
    assert.ok(!after.includes('waiting'), after);
  });
});
