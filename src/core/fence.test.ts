import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkFence, type FenceOutcome, type FencedTask } from './fence.js';
import type { TaskState } from './types.js';

const SEED = 77;

void test('checkFence: the full table of (state, attempt, workerId)', () => {
  // The task holds attempt 4 on worker w1 (or no worker, for the null rows).
  const rows: [TaskState, string | null, number, string, FenceOutcome][] = [
    // state, task's workerId, reported attempt, reporting worker, outcome
    ['running', 'w1', 4, 'w1', 'ok'],
    ['running', 'w1', 3, 'w1', 'stale'], // an older attempt
    ['running', 'w1', 5, 'w1', 'stale'], // a newer attempt than the store knows
    ['running', 'w1', 4, 'w2', 'stale'], // another worker's lease
    ['running', 'w1', 3, 'w2', 'stale'],
    ['running', null, 4, 'w1', 'stale'],
    ['pending', 'w1', 4, 'w1', 'stale'], // went back to pending (lease revoked)
    ['pending', null, 4, 'w1', 'stale'],
    ['pending', null, 3, 'w2', 'stale'],
    ['succeeded', 'w1', 4, 'w1', 'already_final'],
    ['succeeded', 'w1', 3, 'w2', 'already_final'],
    ['succeeded', null, 4, 'w1', 'already_final'],
    ['failed', 'w1', 4, 'w1', 'already_final'],
    ['failed', 'w1', 3, 'w2', 'already_final'],
    ['failed', null, 4, 'w1', 'already_final'],
    ['canceled', 'w1', 4, 'w1', 'already_final'],
    ['canceled', 'w1', 3, 'w2', 'already_final'],
    ['canceled', null, 4, 'w1', 'already_final'],
  ];
  for (const [state, holder, attempt, workerId, want] of rows) {
    const task: FencedTask = { state, attempt: 4, workerId: holder };
    assert.equal(
      checkFence(task, attempt, workerId),
      want,
      `${state} held by ${holder}, report ${attempt} from ${workerId}`,
    );
  }
});

void test('checkFence: ok exactly for the running attempt on its worker; final beats stale', () => {
  const states: TaskState[] = ['pending', 'running', 'succeeded', 'failed', 'canceled'];
  const ids = fc.constantFrom('w1', 'w2', 'w3');
  fc.assert(
    fc.property(
      fc.constantFrom(...states),
      fc.nat(5),
      fc.option(ids, { nil: null }),
      fc.nat(5),
      ids,
      (state, taskAttempt, holder, attempt, workerId) => {
        const task = { state, attempt: taskAttempt, workerId: holder };
        const snapshot = { ...task };
        const got = checkFence(task, attempt, workerId);
        const final = state === 'succeeded' || state === 'failed' || state === 'canceled';
        const holds = state === 'running' && taskAttempt === attempt && holder === workerId;
        assert.equal(got, final ? 'already_final' : holds ? 'ok' : 'stale');
        assert.deepEqual(task, snapshot);
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});
