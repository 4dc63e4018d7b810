/**
 * Waiting frees the slot, the coordinator's side (Session): a suspended run
 * holds no slot, a resume takes one back when one is free and waits ahead of
 * new runs when none is, and a run that leaves is forgotten everywhere.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_TASK_OPTIONS } from '../core/types.js';
import { Session } from './sessions.js';

function session(slots: number): Session {
  const s = new Session({
    workerId: 'w_1',
    token: 't',
    name: 'n',
    slots,
    labels: [],
    handlers: ['h'],
    now: 0,
    leaseReports: true,
  });
  s.attach({ send: () => {}, close: () => {}, framesSent: 0 });
  return s;
}

const options = { ...DEFAULT_TASK_OPTIONS, heartbeatTimeoutMs: 1_000, timeoutMs: 0 };

/** A lease claimed and sent, as the lifecycle does it. */
function sent(s: Session, taskId: number, attempt = 1): void {
  s.claim(taskId);
  s.markSent({ taskId, attempt, options }, 0);
}

void describe('Session: suspended runs', () => {
  it('a suspended run holds no slot; its resume takes one at once when one is free', () => {
    const s = session(1);
    sent(s, 1);
    assert.deepEqual([s.freeSlots(), s.free()], [0, 0]);
    assert.equal(s.suspend(1, 1, 10), true);
    assert.deepEqual([s.freeSlots(), s.free(), s.suspendedCount], [1, 1, 1]);
    assert.equal(s.askResume({ taskId: 1, attempt: 1, seq: 0 }, 5), 'granted');
    assert.deepEqual([s.freeSlots(), s.suspendedCount], [0, 0]);
  });

  it('a resume with every slot taken waits, ahead of new runs, and is granted when a slot frees', () => {
    const s = session(1);
    sent(s, 1);
    s.suspend(1, 1, 10);
    sent(s, 2); // the freed slot went to another run
    assert.equal(s.askResume({ taskId: 1, attempt: 1, seq: 3 }, 5), 'queued');
    // The ask holds its claim on the next slot: nothing more is claimed for this worker.
    assert.equal(s.free(), 0);
    assert.deepEqual(s.grantResumes(6), []);
    s.reported(2, 7);
    assert.deepEqual(s.grantResumes(8), [{ taskId: 1, attempt: 1, seq: 3 }]);
    assert.deepEqual([s.freeSlots(), s.suspendedCount], [0, 0]);
  });

  it('asks are served oldest first, one per free slot', () => {
    const s = session(2);
    for (const id of [1, 2]) sent(s, id);
    for (const id of [1, 2]) s.suspend(id, 1, 10);
    for (const id of [3, 4]) sent(s, id);
    assert.equal(s.askResume({ taskId: 2, attempt: 1, seq: 0 }, 1), 'queued');
    assert.equal(s.askResume({ taskId: 1, attempt: 1, seq: 0 }, 1), 'queued');
    s.reported(3, 2);
    assert.deepEqual(
      s.grantResumes(2).map((g) => g.taskId),
      [2],
    );
    s.reported(4, 3);
    assert.deepEqual(
      s.grantResumes(3).map((g) => g.taskId),
      [1],
    );
  });

  it('past the cap a suspend is not taken: the run keeps its slot and its resume is granted at once', () => {
    const s = session(2);
    for (const id of [1, 2]) sent(s, id);
    assert.equal(s.suspend(1, 1, 1), true);
    assert.equal(s.suspend(2, 1, 1), false);
    assert.deepEqual([s.freeSlots(), s.suspendedCount], [1, 1]);
    assert.equal(s.askResume({ taskId: 2, attempt: 1, seq: 0 }, 1), 'granted');
  });

  it('a suspend or resume of an attempt this session did not send changes nothing', () => {
    const s = session(1);
    sent(s, 1, 2);
    assert.equal(s.suspend(1, 1, 10), false, 'an older attempt');
    assert.equal(s.suspend(9, 1, 10), false, 'a run never sent');
    assert.equal(s.freeSlots(), 0);
    assert.equal(s.askResume({ taskId: 1, attempt: 1, seq: 0 }, 1), 'stale');
    assert.equal(s.suspend(1, 2, 10), true);
    assert.equal(s.suspend(1, 2, 10), true, 'a repeat (after a reconnect) is taken');
    assert.equal(s.suspendedCount, 1);
  });

  it('a run that ends while suspended or asking is forgotten there too', () => {
    const s = session(1);
    sent(s, 1);
    s.suspend(1, 1, 10);
    sent(s, 2);
    s.askResume({ taskId: 1, attempt: 1, seq: 0 }, 1);
    s.forget(1);
    assert.equal(s.suspendedCount, 0);
    s.reported(2, 2);
    assert.deepEqual(s.grantResumes(3), [], 'no grant for a run that is gone');
    assert.equal(s.freeSlots(), 1);
  });

  it('a suspended run is not cut for missing heartbeats; its clock starts again when it resumes', () => {
    const s = session(1);
    sent(s, 1);
    s.suspend(1, 1, 10);
    assert.deepEqual(s.overdue(60_000, 0), [], 'waiting on children is not silence');
    assert.equal(s.askResume({ taskId: 1, attempt: 1, seq: 0 }, 60_000), 'granted');
    assert.deepEqual(s.overdue(60_500, 0), []);
    assert.deepEqual(
      s.overdue(61_001, 0).map((o) => o.limit),
      ['heartbeatTimeoutMs'],
    );
  });

  it('the view counts suspended runs as waiting, not running', () => {
    const s = session(1);
    sent(s, 1);
    s.suspend(1, 1, 10);
    sent(s, 2);
    const o = { heartbeatMs: 500, deadAfterMs: 2_000, closeGraceMs: 1_000 };
    const v = s.view(0, o);
    assert.deepEqual([v.running, v.waiting, v.slots], [1, 1, 1]);
  });
});
