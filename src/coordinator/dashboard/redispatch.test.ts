import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RedispatchTracker, joinNames } from './redispatch.js';

const death = (requeued: number[], poisoned: number[] = []) => ({
  workerId: 'w_2',
  name: 'w2',
  reason: 'disconnected',
  requeued,
  poisoned,
  at: 10_000,
});

describe('RedispatchTracker', () => {
  it('writes the sentence once every task of the dead worker runs again, with where and how long', () => {
    const t = new RedispatchTracker();
    const first = t.died(death([1, 2, 3]));
    assert.equal(first.final, false);
    assert.equal(
      first.text,
      'w2 dead (disconnected): 3 tasks back to pending, waiting to run again',
    );
    assert.equal(t.following, true);
    assert.equal(t.dispatched(99, 'w1', 10_100), null, 'a task of no dead worker');
    const mid = t.dispatched(1, 'w1', 10_300)!;
    assert.equal(mid.final, false);
    assert.match(mid.text, /1 re-dispatched to w1 so far$/);
    t.dispatched(2, 'w3', 10_500);
    const last = t.dispatched(3, 'w1', 10_800)!;
    assert.equal(last.final, true);
    assert.equal(last.workerId, 'w_2');
    assert.equal(last.at, 10_000, 'the entry keeps the time of the death');
    assert.equal(
      last.text,
      'w2 dead (disconnected): 3 tasks back to pending, re-dispatched to w1 and w3 in 0.8 s',
    );
    assert.equal(t.following, false, 'nothing left to follow');
    assert.equal(
      t.dispatched(3, 'w1', 11_000),
      null,
      'a later run of the same task is not counted',
    );
  });

  it('a worker that held nothing gets a final sentence at once', () => {
    const t = new RedispatchTracker();
    const r = t.died(death([]));
    assert.equal(r.final, true);
    assert.equal(r.text, 'w2 dead (disconnected): it held no tasks');
    assert.equal(t.following, false);
  });

  it('poisoned tasks are told; after the bound the sentence says what is still waiting', () => {
    const t = new RedispatchTracker(5000);
    t.died(death([1, 2], [7]));
    t.dispatched(1, 'w1', 10_200);
    assert.deepEqual(t.expire(14_999), [], 'not yet');
    const [r] = t.expire(15_000);
    assert.equal(r!.final, true);
    assert.equal(
      r!.text,
      'w2 dead (disconnected): 2 tasks back to pending, 1 task failed as poison, 1 re-dispatched to w1; 1 not re-dispatched within 5.0 s',
    );
    assert.equal(t.following, false);
    assert.equal(t.dispatched(2, 'w1', 16_000), null, 'a closed death takes no more');
  });

  it('joins names the way a sentence does', () => {
    assert.equal(joinNames(['a']), 'a');
    assert.equal(joinNames(['a', 'b']), 'a and b');
    assert.equal(joinNames(['a', 'b', 'c']), 'a, b and c');
  });
});
