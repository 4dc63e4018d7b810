import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  deadlineError,
  grantedSlots,
  lostRuns,
  progressEveryMs,
  runDeadline,
  type SentRun,
} from './deadline.js';

const SEED = 12_002;
const watch = { graceMs: 5000, watchProgress: true };

void test('runDeadline: no limit set -> no deadline', () => {
  const run = { sentAt: 1000, progressAt: 1000 };
  assert.equal(runDeadline(run, { timeoutMs: 0, heartbeatTimeoutMs: 0 }, watch), null);
});

void test('runDeadline: timeoutMs counts from the send, plus the grace', () => {
  const run = { sentAt: 1000, progressAt: 50_000 };
  assert.deepEqual(runDeadline(run, { timeoutMs: 2000, heartbeatTimeoutMs: 0 }, watch), {
    at: 8000,
    limit: 'timeoutMs',
  });
});

void test('runDeadline: heartbeatTimeoutMs counts from the last progress, so a run that shows progress never reaches it', () => {
  const limits = { timeoutMs: 0, heartbeatTimeoutMs: 1000 };
  assert.deepEqual(runDeadline({ sentAt: 0, progressAt: 0 }, limits, watch), {
    at: 6000,
    limit: 'heartbeatTimeoutMs',
  });
  // Progress every 900 ms for a day: the deadline always lies ahead.
  for (let t = 0; t < 86_400_000; t += 900_000) {
    const d = runDeadline({ sentAt: 0, progressAt: t }, limits, watch);
    assert.ok(d !== null && d.at > t + 900, `at ${t}`);
  }
});

void test('runDeadline: the earlier of the two limits wins', () => {
  const limits = { timeoutMs: 10_000, heartbeatTimeoutMs: 1000 };
  assert.equal(
    runDeadline({ sentAt: 0, progressAt: 0 }, limits, watch)?.limit,
    'heartbeatTimeoutMs',
  );
  assert.equal(runDeadline({ sentAt: 0, progressAt: 9500 }, limits, watch)?.limit, 'timeoutMs');
});

void test('runDeadline: a worker that cannot report progress is never cut for missing heartbeats', () => {
  const limits = { timeoutMs: 0, heartbeatTimeoutMs: 1000 };
  assert.equal(
    runDeadline({ sentAt: 0, progressAt: 0 }, limits, { graceMs: 0, watchProgress: false }),
    null,
  );
});

void test('runDeadline: options stored before heartbeatTimeoutMs existed have no heartbeat limit', () => {
  const old = { timeoutMs: 0 } as { timeoutMs: number; heartbeatTimeoutMs: number };
  assert.equal(runDeadline({ sentAt: 0, progressAt: 0 }, old, watch), null);
});

void test('runDeadline: never before the limit plus the grace (property)', () => {
  fc.assert(
    fc.property(
      fc.nat(1e9),
      fc.nat(1e6),
      fc.nat(1e6),
      fc.nat(1e6),
      fc.nat(1e5),
      (sentAt, progressAfter, timeoutMs, heartbeatTimeoutMs, graceMs) => {
        const run = { sentAt, progressAt: sentAt + progressAfter };
        const d = runDeadline(
          run,
          { timeoutMs, heartbeatTimeoutMs },
          { graceMs, watchProgress: true },
        );
        if (timeoutMs === 0 && heartbeatTimeoutMs === 0) return d === null;
        assert.ok(d !== null);
        if (d.limit === 'timeoutMs') assert.equal(d.at, sentAt + timeoutMs + graceMs);
        else assert.equal(d.at, run.progressAt + heartbeatTimeoutMs + graceMs);
        if (timeoutMs > 0) assert.ok(d.at <= sentAt + timeoutMs + graceMs);
        if (heartbeatTimeoutMs > 0)
          assert.ok(d.at <= run.progressAt + heartbeatTimeoutMs + graceMs);
        return true;
      },
    ),
    { seed: SEED, numRuns: 500 },
  );
});

void test('deadlineError: kind timeout, naming the limit that ran out', () => {
  const limits = { timeoutMs: 3000, heartbeatTimeoutMs: 700 };
  const ref = { taskId: 4, attempt: 2 };
  const a = deadlineError('timeoutMs', ref, limits, 5000);
  assert.equal(a.kind, 'timeout');
  assert.match(a.message, /timeoutMs \(3000\)/);
  const b = deadlineError('heartbeatTimeoutMs', ref, limits, 5000);
  assert.equal(b.kind, 'timeout');
  assert.match(b.message, /heartbeatTimeoutMs \(700\)/);
});

void test('progressEveryMs: a quarter of the limit, at least 10 ms', () => {
  assert.equal(progressEveryMs(60_000), 15_000);
  assert.equal(progressEveryMs(20), 10);
});

void test('lostRuns: sent in a frame the worker received and not held -> lost; later frames and queued runs are not', () => {
  const sent: SentRun[] = [
    { taskId: 1, attempt: 1, frame: 3 },
    { taskId: 2, attempt: 1, frame: 3 },
    { taskId: 3, attempt: 1, frame: 5 },
    { taskId: 4, attempt: 1, frame: null },
    { taskId: 5, attempt: 2, frame: 0 },
  ];
  const held = [
    { taskId: 1, attempt: 1 },
    { taskId: 5, attempt: 1 }, // an older attempt: not the run sent
  ];
  assert.deepEqual(
    lostRuns(sent, 4, held).map((r) => r.taskId),
    [2, 5],
  );
  assert.deepEqual(
    lostRuns(sent, 5, held).map((r) => r.taskId),
    [2, 3, 5],
  );
  assert.deepEqual(
    lostRuns(sent, 2, []).map((r) => r.taskId),
    [5],
  );
});

void test('lostRuns: a run the worker holds is never lost (property)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ taskId: fc.integer({ min: 1, max: 50 }), frame: fc.nat(20) })),
      fc.nat(20),
      (runs, frames) => {
        const sent = runs.map((r) => ({ ...r, attempt: 1 }));
        return lostRuns(sent, frames, sent).length === 0;
      },
    ),
    { seed: SEED, numRuns: 200 },
  );
});

void test('grantedSlots: what was announced, at most the cap', () => {
  assert.equal(grantedSlots(100_000, 1024), 1024);
  assert.equal(grantedSlots(8, 1024), 8);
});
