import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { RegroupError } from '../core/errors.js';
import { CLEAR_SCREEN, watch } from './watch.js';

function sink(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (d) => (text += String(d)));
  return { out, text: () => text };
}

/** Silences stderr (reportError writes there) while `fn` runs, and returns what was written. */
async function capturingStderr<T>(fn: () => Promise<T>): Promise<{ value: T; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = (chunk: string) => {
    stderr += chunk;
    return true;
  };
  try {
    return { value: await fn(), stderr };
  } finally {
    process.stderr.write = write;
  }
}

void describe('watch', () => {
  void it('draws frames one after another without clearing when not a terminal; the signal ends it with 0', async () => {
    const { out, text } = sink();
    const ac = new AbortController();
    let n = 0;
    const code = await watch(
      async () => {
        n++;
        if (n === 3) ac.abort();
        return `frame ${n}`;
      },
      { intervalMs: 1, out, clear: false, json: false, signal: ac.signal },
    );
    assert.equal(code, 0);
    assert.equal(text(), 'frame 1\nframe 2\n', 'the frame drawn after the signal is dropped');
    assert.ok(!text().includes(CLEAR_SCREEN));
  });

  void it('clears the screen before each frame on a terminal', async () => {
    const { out, text } = sink();
    const ac = new AbortController();
    let n = 0;
    await watch(
      async () => {
        if (++n === 2) setImmediate(() => ac.abort());
        return `f${n}`;
      },
      { intervalMs: 50, out, clear: true, json: false, signal: ac.signal },
    );
    assert.equal(text(), `${CLEAR_SCREEN}f1\n${CLEAR_SCREEN}f2\n`);
  });

  void it('reports a retryable error and goes on; a final error ends the watch with 2', async () => {
    const { out, text } = sink();
    const ac = new AbortController();
    let n = 0;
    const { value, stderr } = await capturingStderr(() =>
      watch(
        async () => {
          n++;
          if (n === 1) throw new RegroupError('unavailable', 'coordinator restarting');
          if (n === 2) return 'ok';
          throw new RegroupError('group_not_found', 'no group with id g9');
        },
        { intervalMs: 1, out, clear: false, json: false, signal: ac.signal },
      ),
    );
    assert.equal(value, 2);
    assert.equal(text(), 'ok\n');
    assert.equal(
      stderr,
      'regroup: unavailable: coordinator restarting\nregroup: group_not_found: no group with id g9\n',
    );
  });
});
