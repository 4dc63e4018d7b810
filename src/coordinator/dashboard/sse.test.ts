import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SseHub, type Sink, type SseTimers } from './sse.js';

/** A clock and timers that move only when told. */
class FakeTimers implements SseTimers {
  t = 0;
  private q: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now = (): number => this.t;
  set = (fn: () => void, ms: number): unknown => {
    const id = ++this.ids;
    this.q.push({ at: this.t + ms, fn, id });
    return id;
  };
  clear = (h: unknown): void => {
    this.q = this.q.filter((x) => x.id !== h);
  };
  get pending(): number {
    return this.q.length;
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.q.sort((a, b) => a.at - b.at);
      const next = this.q[0];
      if (!next || next.at > end) break;
      this.q.shift();
      this.t = next.at;
      next.fn();
    }
    this.t = end;
  }
}

class FakeSink implements Sink {
  text = '';
  ended = false;
  full = false;
  write(t: string): boolean {
    this.text += t;
    return !this.full;
  }
  end(): void {
    this.ended = true;
  }
  events(kind: string): unknown[] {
    return this.text
      .split('\n\n')
      .filter((b) => b.includes(`event: ${kind}\n`))
      .map((b) => JSON.parse(b.slice(b.indexOf('data: ') + 6)) as unknown);
  }
}

function hub(timers: FakeTimers) {
  let version = 0;
  let sent = 0;
  const h = new SseHub({
    snapshot: () => ({ version }),
    update: () => (version === sent ? null : { version: (sent = version) }),
    minGapMs: 500,
    heartbeatMs: 15_000,
    timers,
  });
  return { h, bump: () => version++ };
}

describe('SseHub', () => {
  it('sends a snapshot first, then coalesces many changes into one update per 500 ms', () => {
    const timers = new FakeTimers();
    const { h, bump } = hub(timers);
    const sink = new FakeSink();
    h.add(sink);
    assert.match(sink.text, /^retry: 2000\nevent: snapshot\ndata: \{"version":0\}\n\n$/);
    for (let i = 0; i < 100; i++) {
      bump();
      h.changed();
    }
    timers.advance(0);
    assert.deepEqual(sink.events('update'), [{ version: 100 }], 'one update for 100 changes');
    for (let i = 0; i < 49; i++) {
      bump();
      h.changed();
      timers.advance(10);
    }
    assert.equal(sink.events('update').length, 1, '490 ms after the first update: still one');
    bump();
    h.changed();
    timers.advance(10);
    assert.deepEqual(sink.events('update').at(-1), { version: 150 }, 'the next carries all 50');
    timers.advance(5000);
    assert.equal(h.updatesSent, 2, 'nothing changed since: nothing more');
  });

  it('sends nothing while nothing changes but a keep-alive comment, and runs no timer without clients', () => {
    const timers = new FakeTimers();
    const { h } = hub(timers);
    h.changed();
    assert.equal(timers.pending, 0, 'no client: no timer');
    const sink = new FakeSink();
    const c = h.add(sink);
    h.changed();
    timers.advance(1000);
    assert.equal(sink.events('update').length, 0, 'nothing changed: no update');
    timers.advance(15_000);
    assert.match(sink.text, /\n: keep-alive\n\n$/);
    c.remove();
    assert.equal(timers.pending, 0, 'the last client gone: no timer left');
  });

  it('a client that falls behind gets no updates until drained, then a fresh snapshot', () => {
    const timers = new FakeTimers();
    const { h, bump } = hub(timers);
    const slow = new FakeSink();
    const fast = new FakeSink();
    const c = h.add(slow);
    h.add(fast);
    slow.full = true;
    bump();
    h.changed();
    timers.advance(0);
    bump();
    h.changed();
    timers.advance(500);
    assert.equal(slow.events('update').length, 1, 'the write that returned false, then nothing');
    assert.equal(fast.events('update').length, 2);
    slow.full = false;
    c.drained();
    assert.deepEqual(slow.events('snapshot').at(-1), { version: 2 });
  });

  it('stop ends every stream and clears its timers; later clients are ended at once', () => {
    const timers = new FakeTimers();
    const { h, bump } = hub(timers);
    const a = new FakeSink();
    h.add(a);
    bump();
    h.changed();
    h.stop();
    assert.equal(a.ended, true);
    assert.equal(timers.pending, 0);
    const b = new FakeSink();
    h.add(b);
    assert.equal(b.ended, true);
    assert.equal(b.text, '');
  });
});
