import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import fc from 'fast-check';
import {
  canTakeWork,
  DEFAULT_LIVENESS,
  judgeWorker,
  nextJudgementAt,
  STALL_TOLERANCE_MS,
  stallGraceMs,
  stalledMs,
  type LivenessOptions,
  type SessionView,
} from './liveness.js';
import type { WorkerHealth } from './types.js';

const SEED = 5_000_001;
const check = <Ts>(p: fc.IProperty<Ts>) => fc.assert(p, { seed: SEED, numRuns: 400 });

const o = DEFAULT_LIVENESS; // heartbeat 500, dead after 2000, close grace 500
const session = (over: Partial<SessionView> = {}): SessionView => ({
  lastSeenAt: 1000,
  closedAt: null,
  draining: false,
  ...over,
});
const at = (s: SessionView, ...times: number[]) => times.map((t) => judgeWorker(s, t, o));

void test('judgeWorker: connected and beating -> alive; a missed beat (> 1.5 beats) -> suspect', () => {
  assert.deepEqual(at(session(), 1000, 1500, 1750), ['alive', 'alive', 'alive']);
  assert.deepEqual(at(session(), 1751, 2500, 2999), ['suspect', 'suspect', 'suspect']);
});

void test('judgeWorker: dead at deadAfterMs of silence, not a millisecond before', () => {
  assert.deepEqual(at(session(), 2999, 3000, 1e12), ['suspect', 'dead', 'dead']);
});

void test('judgeWorker: a closed connection is suspect within the grace, dead at closeGraceMs', () => {
  const s = session({ closedAt: 1200 });
  assert.deepEqual(at(s, 1200, 1699, 1700, 5000), ['suspect', 'suspect', 'dead', 'dead']);
  // Closed at once after a beat: still suspect (no new work), not alive.
  assert.deepEqual(at(session({ closedAt: 1000 }), 1000, 1499, 1500), [
    'suspect',
    'suspect',
    'dead',
  ]);
});

void test('judgeWorker: draining keeps its runs while silent, until dead', () => {
  const s = session({ draining: true });
  assert.deepEqual(at(s, 1000, 1751, 2999, 3000), ['draining', 'draining', 'draining', 'dead']);
  const closed = session({ draining: true, closedAt: 1200 });
  assert.deepEqual(at(closed, 1200, 1699, 1700), ['draining', 'draining', 'dead']);
});

void test('canTakeWork: only an alive worker gets new tasks', () => {
  const all: WorkerHealth[] = ['alive', 'suspect', 'draining', 'dead'];
  assert.deepEqual(
    all.map((h) => canTakeWork(h)),
    [true, false, false, false],
  );
});

// Whole milliseconds, as the shell's clock gives them. Even heartbeats here;
// odd ones are checked by the test below.
const opts: fc.Arbitrary<LivenessOptions> = fc
  .record({
    halfBeat: fc.integer({ min: 1, max: 1000 }),
    deadExtra: fc.integer({ min: 1, max: 5000 }),
    closeGraceMs: fc.integer({ min: 1, max: 5000 }),
  })
  .map(({ halfBeat, deadExtra, closeGraceMs }) => ({
    heartbeatMs: 2 * halfBeat,
    deadAfterMs: 2 * halfBeat + deadExtra,
    closeGraceMs,
  }));
const sessions: fc.Arbitrary<SessionView> = fc
  .record({
    lastSeenAt: fc.integer({ min: 0, max: 1e9 }),
    closeAfter: fc.option(fc.integer({ min: -100, max: 10_000 }), { nil: null }),
    draining: fc.boolean(),
  })
  .map(({ lastSeenAt, closeAfter, draining }) => ({
    lastSeenAt,
    closedAt: closeAfter === null ? null : lastSeenAt + closeAfter,
    draining,
  }));

const rank: Record<WorkerHealth, number> = { alive: 0, suspect: 1, draining: 1, dead: 2 };

void test('judgeWorker: for a fixed session, health only gets worse as time passes', () => {
  check(
    fc.property(
      sessions,
      opts,
      fc.integer({ min: -100, max: 20_000 }),
      fc.nat(20_000),
      (s, lo, a, step) => {
        const t1 = s.lastSeenAt + a;
        const t2 = t1 + step;
        const h1 = judgeWorker(s, t1, lo);
        const h2 = judgeWorker(s, t2, lo);
        assert.ok(rank[h1] <= rank[h2], `${h1} at ${t1} then ${h2} at ${t2}`);
        if (h1 === 'dead') assert.equal(h2, 'dead');
        // Draining is the session's flag, not a function of time.
        if (h1 !== 'dead') assert.equal(h1 === 'draining', s.draining);
        if (h2 !== 'dead') assert.equal(h2 === 'draining', s.draining);
        // A new sign of life is what brings a suspect back.
        if (h2 === 'suspect' && s.closedAt === null) {
          assert.equal(judgeWorker({ ...s, lastSeenAt: t2 }, t2, lo), 'alive');
        }
      },
    ),
  );
});

void test('nextJudgementAt: examples with the default options', () => {
  assert.equal(nextJudgementAt(session(), o), 1751);
  assert.equal(nextJudgementAt(session({ closedAt: 1100 }), o), 1600);
  assert.equal(
    nextJudgementAt(session(), { heartbeatMs: 500, deadAfterMs: 600, closeGraceMs: 500 }),
    1600,
  );
});

void test('nextJudgementAt: the verdict does not change in [now, nextJudgementAt)', () => {
  check(
    fc.property(
      sessions,
      opts,
      fc.integer({ min: -100, max: 20_000 }),
      fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { maxLength: 20 }),
      (s, lo, a, fractions) => {
        const now = s.lastSeenAt + a;
        const next = nextJudgementAt(s, lo);
        const h = judgeWorker(s, now, lo);
        // Whole-ms sample points, including the last one before `next`.
        const points = fractions.map((f) => now + Math.floor(f * (next - now)));
        points.push(Math.ceil(next) - 1);
        for (const t of points) {
          if (t < now || t >= next) continue;
          assert.equal(judgeWorker(s, t, lo), h, `at ${t} (now ${now}, next ${next})`);
        }
      },
    ),
  );
});

void test('nextJudgementAt: for a fresh session the verdict does change at that time', () => {
  check(
    fc.property(sessions, opts, (s0, lo) => {
      const s = { ...s0, closedAt: null, draining: false };
      const next = nextJudgementAt(s, lo);
      assert.equal(judgeWorker(s, s.lastSeenAt, lo), 'alive');
      assert.notEqual(judgeWorker(s, next, lo), 'alive');
    }),
  );
});

void test('nextJudgementAt: with an odd heartbeatMs the suspect change is not later than predicted', () => {
  const lo = { heartbeatMs: 3, deadAfterMs: 100, closeGraceMs: 50 };
  const s = session({ lastSeenAt: 0 });
  const next = nextJudgementAt(s, lo);
  for (let t = 0; t < next; t++) assert.equal(judgeWorker(s, t, lo), 'alive', `at ${t}`);
});

describe('stalledMs: time the coordinator itself could not hear', () => {
  it('is 0 for a sweep on time or late by timer jitter', () => {
    assert.equal(stalledMs(1000, 1100, 100), 0);
    assert.equal(stalledMs(1000, 1100 + STALL_TOLERANCE_MS, 100), 0);
  });
  it('is the whole lateness of a sweep held up longer than the tolerance', () => {
    assert.equal(stalledMs(1000, 1100 + STALL_TOLERANCE_MS + 1, 100), STALL_TOLERANCE_MS + 1);
    assert.equal(stalledMs(1000, 6100, 100), 5000);
  });
  it('credited to a session, keeps a worker that beat just before a 5 s stall alive', () => {
    const o = { heartbeatMs: 500, deadAfterMs: 2000, closeGraceMs: 500 };
    const s = { lastSeenAt: 1000, closedAt: null, draining: false };
    const now = 1000 + 100 + 5000;
    assert.equal(judgeWorker(s, now, o), 'dead', 'without the credit');
    const credited = { ...s, lastSeenAt: Math.min(now, s.lastSeenAt + stalledMs(1000, now, 100)) };
    assert.equal(judgeWorker(credited, now, o), 'alive');
  });
});

void test('after a stall that cuts connections, no session is judged dead before its grace ends', () => {
  assert.equal(stallGraceMs(o.deadAfterMs - o.heartbeatMs - 1, o), 0, 'too short to cut a socket');
  const g = stallGraceMs(5000, o);
  assert.equal(g, 2 * o.deadAfterMs + o.closeGraceMs);
  // Silent since 1000 and closed at 1200; the stall ended at 1500.
  const s = session({ closedAt: 1200, graceUntil: 1500 + g });
  assert.deepEqual(at(s, 1700, 3000, 1500 + g - 1), ['suspect', 'suspect', 'suspect']);
  assert.deepEqual(at(s, 1500 + g), ['dead']);
  // A draining session stays draining through the grace.
  assert.deepEqual(at(session({ draining: true, graceUntil: 9000 }), 5000), ['draining']);
});
