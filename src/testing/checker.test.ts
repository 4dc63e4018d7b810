import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ANOMALY_KINDS,
  check,
  formatReport,
  nearestRank,
  type AnomalyKind,
  type FinalState,
  type Report,
} from './checker.js';
import {
  readHistory,
  type FaultKind,
  type HistoryLine,
  type RunAck,
  type WaitOk,
} from './history.js';
import type { EventView, GroupView, TaskView } from '../protocol/http.js';
import { DEFAULT_TASK_OPTIONS } from '../core/types.js';

const SEED = 4242;

/** Tasks of the tests double their input. */
const expected = (handler: string, input: unknown): unknown =>
  handler === 'double' ? (input as number) * 2 : undefined;
const options = { expected };

type Dist<T> = T extends unknown ? Omit<T, 't' | 'proc'> : never;

/** Builds a history and the final state it should end in, one step at a time. */
class Run {
  t = 1_000;
  lines: HistoryLine[] = [];
  final: FinalState = { groups: [], tasks: [], events: [] };
  private seq = 0;

  add(proc: string, line: Dist<HistoryLine>, dt = 10): this {
    this.t += dt;
    this.lines.push({ t: this.t, proc, ...line });
    return this;
  }

  /** A client submits `inputs` under `key`; the group and its pending tasks exist. */
  submit(proc: string, key: string, groupId: string, inputs: number[], firstTaskId: number): this {
    this.add(proc, { type: 'submit.invoke', key, handler: 'double', inputs });
    this.add(proc, { type: 'submit.ok', key, groupId });
    this.final.groups.push(groupView(groupId, key, inputs.length));
    inputs.forEach((_, index) =>
      this.final.tasks.push({
        taskId: firstTaskId + index,
        groupId,
        index,
        state: 'pending',
        attempt: 0,
      }),
    );
    return this;
  }

  /** The next line is written at `t`. */
  at(t: number): this {
    this.t = t - 10;
    return this;
  }

  start(proc: string, taskId: number, attempt: number): this {
    const task = this.task(taskId);
    return this.add(proc, {
      type: 'run.start',
      taskId,
      attempt,
      groupId: task.groupId,
      index: task.index,
    });
  }

  end(proc: string, taskId: number, attempt: number, value: unknown = this.right(taskId)): this {
    return this.add(proc, { type: 'run.end', taskId, attempt, ok: true, value });
  }

  fail(proc: string, taskId: number, attempt: number): this {
    return this.add(proc, { type: 'run.end', taskId, attempt, ok: false });
  }

  ack(proc: string, taskId: number, attempt: number, status: RunAck['status']): this {
    this.add(proc, { type: 'run.ack', taskId, attempt, status });
    const end = this.lines.find((l) => isEnd(l, taskId, attempt, true));
    if (status === 'committed' && end?.type === 'run.end') {
      Object.assign(this.task(taskId), {
        state: 'succeeded',
        attempt,
        value: end.value,
        seq: ++this.seq,
      });
    }
    return this;
  }

  /** One whole run that commits. */
  commit(proc: string, taskId: number, attempt: number): this {
    return this.start(proc, taskId, attempt)
      .end(proc, taskId, attempt)
      .ack(proc, taskId, attempt, 'committed');
  }

  fault(kind: FaultKind, target: string): this {
    return this.add('nemesis', { type: 'fault.start', kind, target });
  }

  healed(kind: FaultKind, target: string): this {
    return this.add('nemesis', { type: 'fault.end', kind, target });
  }

  /** A worker process is welcomed as session `workerId`. */
  session(proc: string, workerId: string): this {
    return this.add(proc, { type: 'worker.session', workerId, resumed: false });
  }

  /** The coordinator logs an event now (the next line's time). */
  event(type: string, fields: Omit<EventView, 'seq' | 'at' | 'type'> = {}): this {
    this.t += 10;
    this.final.events.push({ seq: this.final.events.length + 1, at: this.t, type, ...fields });
    return this;
  }

  /** The coordinator declares the session `workerId` of `name` dead, requeuing `requeued`. */
  dead(workerId: string, name?: string, requeued: number[] = []): this {
    const data = { ...(name ? { name } : {}), reason: 'silent', silentMs: 2000, requeued };
    return this.event('worker.dead', { workerId, data });
  }

  group(groupId: string): GroupView {
    const g = this.final.groups.find((x) => x.id === groupId);
    assert.ok(g, `no group ${groupId}`);
    return g;
  }

  /** A client's wait resolves: reads the group as it is now, and the group is done. */
  wait(proc: string, groupId: string): this {
    const group = this.final.groups.find((g) => g.id === groupId);
    if (group) group.done = true;
    const outcomes = this.final.tasks
      .filter((t) => t.groupId === groupId)
      .map((t) => ({ index: t.index, taskId: t.taskId, state: t.state, value: t.value }));
    return this.add(proc, { type: 'wait.ok', groupId, outcomes });
  }

  task(taskId: number): TaskView {
    const task = this.final.tasks.find((t) => t.taskId === taskId);
    assert.ok(task, `no task ${taskId}`);
    return task;
  }

  right(taskId: number): number {
    const task = this.task(taskId);
    const invoke = this.lines.find((l) => l.type === 'submit.ok' && l.groupId === task.groupId);
    const inputs = this.lines.find(
      (l) => l.type === 'submit.invoke' && invoke?.type === 'submit.ok' && l.key === invoke.key,
    );
    return ((inputs?.type === 'submit.invoke' ? inputs.inputs[task.index] : 0) as number) * 2;
  }
}

function isEnd(l: HistoryLine, taskId: number, attempt: number, ok: boolean): boolean {
  return l.type === 'run.end' && l.taskId === taskId && l.attempt === attempt && l.ok === ok;
}

function groupView(id: string, key: string, total: number): GroupView {
  return {
    id,
    handler: 'double',
    state: 'done',
    policy: 'collectAll',
    idempotencyKey: key,
    createdAt: 0,
    sealedAt: 0,
    finishedAt: 0,
    options: { ...DEFAULT_TASK_OPTIONS },
    total,
    pending: 0,
    running: 0,
    succeeded: total,
    failed: 0,
    canceled: 0,
    done: false,
  };
}

/**
 * A clean run with the usual trouble: a worker killed mid-run (re-run
 * elsewhere), a retry after a handler error, a late report answered stale, a
 * resent report answered already_final, and a submit retried under its key.
 */
function clean(): Run {
  const r = new Run();
  r.submit('client-1', 'k1', 'g1', [1, 2, 3], 1);
  r.add('client-1', { type: 'submit.ok', key: 'k1', groupId: 'g1' }); // a retried submit: the same group
  r.submit('client-2', 'k2', 'g2', [10], 4);
  r.group('g1').options.timeoutMs = 1000;
  r.group('g2').options.heartbeatTimeoutMs = 1000;
  r.session('worker-1', 'w1').session('worker-2', 'w2').session('worker-3', 'w3');
  r.start('worker-1', 1, 1).start('worker-2', 2, 1).start('worker-3', 3, 1);
  r.fault('worker-kill', 'worker-1').dead('w1', 'worker-1', [1]);
  r.end('worker-2', 2, 1).ack('worker-2', 2, 1, 'committed');
  r.start('worker-2', 1, 2).end('worker-2', 1, 2).ack('worker-2', 1, 2, 'committed');
  r.fail('worker-3', 3, 1).ack('worker-3', 3, 1, 'committed'); // an error: retried
  r.start('worker-3', 3, 2).end('worker-3', 3, 2).ack('worker-3', 3, 2, 'committed');
  r.ack('worker-3', 3, 2, 'already_final'); // a resent report after a reconnect
  r.start('worker-3', 4, 1).fault('partition-both', 'worker-3').dead('w3', 'worker-3', [4]);
  r.start('worker-2', 4, 2).end('worker-2', 4, 2).ack('worker-2', 4, 2, 'committed');
  r.end('worker-3', 4, 1).ack('worker-3', 4, 1, 'stale'); // healed, reported late
  r.wait('client-1', 'g1').wait('client-2', 'g2');
  return r;
}

function only(report: Report, kind: AnomalyKind): void {
  const others = report.anomalies.filter((a) => a.kind !== kind);
  assert.deepEqual(others, [], `only ${kind} expected:\n${formatReport(report)}`);
  assert.ok(report.counts[kind] > 0, `${kind} not found:\n${formatReport(report)}`);
  assert.equal(report.ok, false);
}

void test('a clean history with kills, retries and stale reports passes', () => {
  const r = clean();
  const report = check(r.lines, r.final, options);
  assert.equal(report.ok, true, formatReport(report));
  assert.deepEqual(report.anomalies, []);
  assert.deepEqual(report.counts, Object.fromEntries(ANOMALY_KINDS.map((k) => [k, 0])));
  assert.equal(report.groups, 2);
  assert.equal(report.tasks, 4);
  assert.deepEqual(report.faults, { 'worker-kill': 1, 'partition-both': 1 });
  assert.equal(report.reassignment.samples, 1);
  assert.equal(report.reassignment.notRerun, 0);
  assert.deepEqual(report.judged, { deaths: 2, limitedRuns: 7 });
});

void test('lost: an acknowledged group missing from the final state', () => {
  const r = clean();
  r.final.groups = r.final.groups.filter((g) => g.id !== 'g2');
  r.final.tasks = r.final.tasks.filter((t) => t.groupId !== 'g2');
  const report = check(r.lines, r.final, options);
  only(report, 'lost');
  assert.ok(report.anomalies.some((a) => a.groupId === 'g2' && a.key === 'k2'));
});

void test('lost: a group with fewer tasks than submitted, and its committed task gone', () => {
  const r = clean();
  r.final.tasks = r.final.tasks.filter((t) => t.taskId !== 2);
  const report = check(r.lines, r.final, options);
  only(report, 'lost');
  assert.equal(report.counts.lost, 2); // the group short of a task; the commit of task 2
  assert.ok(report.anomalies.some((a) => a.taskId === 2));
});

void test('lost: a committed result whose task went back to pending', () => {
  const r = new Run().submit('client-1', 'k1', 'g1', [1], 1);
  r.start('worker-1', 1, 1).end('worker-1', 1, 1).ack('worker-1', 1, 1, 'committed');
  Object.assign(r.task(1), { state: 'pending', value: undefined, seq: null });
  r.add('client-1', { type: 'wait.ok', groupId: 'g1', outcomes: [] }); // a wait that read nothing
  Object.assign(r.final.groups[0] ?? {}, { done: true });
  const report = check(r.lines, r.final, options);
  only(report, 'lost');
  assert.equal(report.anomalies[0]?.taskId, 1);
});

void test('committed_twice: two runs of one task acked committed', () => {
  const r = new Run().submit('client-1', 'k1', 'g1', [5], 1);
  r.start('worker-1', 1, 1).start('worker-2', 1, 1).end('worker-1', 1, 1).end('worker-2', 1, 1);
  r.ack('worker-1', 1, 1, 'committed').ack('worker-2', 1, 1, 'committed');
  r.wait('client-1', 'g1');
  const report = check(r.lines, r.final, options);
  only(report, 'committed_twice');
  assert.equal(report.counts.committed_twice, 1);
  assert.equal(report.anomalies[0]?.taskId, 1);
});

void test('committed_twice: two final tasks share a seq', () => {
  const r = clean();
  r.task(2).seq = r.task(1).seq;
  only(check(r.lines, r.final, options), 'committed_twice');
});

void test('committed_twice: one key acknowledged as two groups', () => {
  const r = clean();
  r.submit('client-3', 'k1', 'g3', [1, 2, 3], 5);
  r.commit('worker-1', 5, 1)
    .commit('worker-1', 6, 1)
    .commit('worker-1', 7, 1)
    .wait('client-3', 'g3');
  const report = check(r.lines, r.final, options);
  only(report, 'committed_twice');
  assert.equal(report.anomalies[0]?.key, 'k1');
});

void test('stale_accepted: the final task holds another attempt than the committed one', () => {
  const r = clean();
  r.task(4).attempt = 1; // attempt 2 was committed; attempt 1 was answered stale
  const report = check(r.lines, r.final, options);
  only(report, 'stale_accepted');
  assert.equal(report.anomalies[0]?.taskId, 4);
});

void test('stale_accepted: the final value is not the committed run value', () => {
  // A handler whose result depends on the run (not deterministic): the checker has no expectation.
  const r = new Run().submit('client-1', 'k1', 'g1', [1], 1);
  r.start('worker-1', 1, 1).start('worker-2', 1, 2);
  r.end('worker-2', 1, 2, 'by worker-2').ack('worker-2', 1, 2, 'committed');
  r.end('worker-1', 1, 1, 'by worker-1').ack('worker-1', 1, 1, 'stale');
  r.task(1).value = 'by worker-1'; // the loser's result overwrote the winner's
  r.wait('client-1', 'g1');
  const report = check(r.lines, r.final, { expected: () => undefined });
  only(report, 'stale_accepted');
  assert.equal(report.counts.stale_accepted, 1);
});

void test('stale_accepted: a stale run value kept, the committed ack lost with its worker', () => {
  const play = (finalValue: string): Report => {
    const r = new Run().submit('client-1', 'k1', 'g1', [1], 1);
    r.start('worker-1', 1, 1).fault('worker-stop', 'worker-1');
    r.start('worker-2', 1, 2).end('worker-2', 1, 2, 'by worker-2');
    r.fault('worker-kill', 'worker-2'); // committed, but killed before writing the ack
    r.end('worker-1', 1, 1, 'by worker-1').ack('worker-1', 1, 1, 'stale');
    Object.assign(r.task(1), { state: 'succeeded', attempt: 2, value: finalValue, seq: 1 });
    r.wait('client-1', 'g1');
    return check(r.lines, r.final, { expected: () => undefined });
  };
  only(play('by worker-1'), 'stale_accepted');
  assert.equal(play('by worker-2').ok, true); // the winner's value: clean
});

void test('changed_after_read: a client read a value the final state no longer has', () => {
  const r = clean();
  const wait = r.lines.find((l): l is WaitOk => l.type === 'wait.ok' && l.groupId === 'g1');
  const outcome = wait?.outcomes[1];
  assert.ok(outcome);
  outcome.value = 999;
  const report = check(r.lines, r.final, options);
  only(report, 'changed_after_read');
  assert.equal(report.anomalies[0]?.taskId, 2);
});

void test('changed_after_read: a read state that changed', () => {
  const r = clean();
  const wait = r.lines.find((l): l is WaitOk => l.type === 'wait.ok' && l.groupId === 'g2');
  const outcome = wait?.outcomes[0];
  assert.ok(outcome);
  outcome.state = 'failed';
  outcome.value = undefined;
  only(check(r.lines, r.final, options), 'changed_after_read');
});

void test('unexpected_result: a succeeded task with the wrong result, consistently stored', () => {
  const r = new Run().submit('client-1', 'k1', 'g1', [1, 2], 1);
  r.commit('worker-1', 1, 1);
  r.start('worker-1', 2, 1).end('worker-1', 2, 1, 5).ack('worker-1', 2, 1, 'committed'); // 2 * 2 is not 5
  r.wait('client-1', 'g1');
  const report = check(r.lines, r.final, options);
  only(report, 'unexpected_result');
  assert.deepEqual(
    report.anomalies.map((a) => [a.taskId, a.groupId, a.key]),
    [[2, 'g1', 'k1']],
  );
});

void test('wait_unresolved: no wait.ok for an acknowledged group', () => {
  const r = clean();
  r.lines = r.lines.filter((l) => !(l.type === 'wait.ok' && l.groupId === 'g2'));
  const report = check(r.lines, r.final, options);
  only(report, 'wait_unresolved');
  assert.equal(report.anomalies[0]?.groupId, 'g2');
});

void test('wait_unresolved: a group not done in the final state', () => {
  const r = clean();
  const g1 = r.final.groups.find((g) => g.id === 'g1');
  assert.ok(g1);
  Object.assign(g1, { done: false, state: 'sealed' });
  only(check(r.lines, r.final, options), 'wait_unresolved');
});

// Defaults of `regroup server`: deadAfterMs 2000, closeGraceMs 500, timeoutGraceMs 5000. So a
// death is blamed on a fault up to 2 x 2000 + 500 + 1000 = 5500 ms after it ended, and a run
// with timeoutMs 1000 may run 1000 + 5000 + (2000 + 1000) = 9000 ms.

/** worker-1 runs task 1 (group g1) from t=10 000; worker-2 is up, never faulted. */
function oneRun(): Run {
  const r = new Run().submit('client-1', 'k1', 'g1', [1], 1);
  r.session('worker-1', 'w1').session('worker-2', 'w2');
  r.at(10_000).start('worker-1', 1, 1);
  return r;
}

void test('healthy_declared_dead: a worker never faulted, known by its session', () => {
  const r = oneRun();
  r.at(11_000).dead('w2', undefined, [2]); // no name in the event: the session line names worker-2
  r.at(11_500).end('worker-1', 1, 1).ack('worker-1', 1, 1, 'committed').wait('client-1', 'g1');
  const report = check(r.lines, r.final, options);
  only(report, 'healthy_declared_dead');
  assert.equal(report.anomalies[0]?.worker, 'worker-2');
  assert.match(report.anomalies[0]?.detail ?? '', /in the whole run/);
  assert.equal(report.judged.deaths, 1);
});

void test('healthy_declared_dead: a worker declared dead long after its fault, not during or just after it', () => {
  const play = (deathAt: number): Report => {
    const r = oneRun();
    r.at(10_500).fault('partition-both', 'worker-1');
    r.at(13_000).healed('partition-both', 'worker-1');
    r.at(deathAt).dead('w1', 'worker-1', [1]);
    r.at(deathAt + 100)
      .start('worker-2', 1, 2)
      .end('worker-2', 1, 2);
    r.ack('worker-2', 1, 2, 'committed').wait('client-1', 'g1');
    return check(r.lines, r.final, options);
  };
  assert.equal(play(12_600).ok, true, 'during the partition');
  assert.equal(play(18_400).ok, true, '5.4 s after it healed');
  const late = play(18_700); // 5.7 s after it healed
  only(late, 'healthy_declared_dead');
  assert.match(late.anomalies[0]?.detail ?? '', /partition-both ended at t=13000, 5700 ms before/);
});

void test('healthy_declared_dead: faults on other workers or the coordinator do not excuse a death', () => {
  const r = oneRun();
  r.at(10_100).fault('worker-kill', 'worker-1').fault('coordinator-kill', 'coordinator');
  r.at(10_500).dead('w2', 'worker-2');
  r.at(11_000).start('worker-2', 1, 2).end('worker-2', 1, 2);
  r.ack('worker-2', 1, 2, 'committed').wait('client-1', 'g1');
  only(check(r.lines, r.final, options), 'healthy_declared_dead');
});

void test('healthy_declared_dead: deaths after the harness stopped the workers are not judged', () => {
  const r = oneRun();
  r.at(11_000).end('worker-1', 1, 1).ack('worker-1', 1, 1, 'committed').wait('client-1', 'g1');
  r.add('harness', { type: 'harness.stop' });
  r.dead('w1', 'worker-1').dead('w2', 'worker-2');
  const report = check(r.lines, r.final, options);
  assert.equal(report.ok, true, formatReport(report));
  assert.equal(report.judged.deaths, 0);
});

void test('ran_past_limit: a run reported after its timeoutMs + grace + detection, not before', () => {
  const play = (reportAt: number, limits: Partial<GroupView['options']>): Report => {
    const r = oneRun();
    Object.assign(r.group('g1').options, limits);
    r.at(reportAt).end('worker-1', 1, 1).ack('worker-1', 1, 1, 'committed').wait('client-1', 'g1');
    return check(r.lines, r.final, options);
  };
  const timeout = { timeoutMs: 1000 };
  assert.equal(play(18_900, timeout).ok, true, '8.9 s');
  const late = play(19_100, timeout);
  only(late, 'ran_past_limit');
  assert.equal(late.anomalies[0]?.taskId, 1);
  assert.match(
    late.anomalies[0]?.detail ?? '',
    /running 9110 ms.*limit is 9000 ms \(timeoutMs 1000/,
  );
  assert.equal(play(18_900, { heartbeatTimeoutMs: 1000 }).ok, true);
  only(play(19_100, { heartbeatTimeoutMs: 1000 }), 'ran_past_limit');
  // Both: the earlier deadline counts.
  only(play(19_100, { timeoutMs: 60_000, heartbeatTimeoutMs: 1000 }), 'ran_past_limit');
  // No limit: a run may take as long as it takes.
  const free = play(70_000, {});
  assert.equal(free.ok, true, formatReport(free));
  assert.equal(free.judged.limitedRuns, 0);
});

void test("ran_past_limit: a run's end is its first sign: a death, a later attempt, the final task", () => {
  // worker-1 is killed; the task runs again only 30 s later (a backlog), but it left worker-1 at its death.
  const play = (deathEvent: boolean): Report => {
    const r = oneRun();
    r.group('g1').options.timeoutMs = 1000;
    r.at(10_100).fault('worker-kill', 'worker-1');
    if (deathEvent) r.at(10_700).dead('w1', 'worker-1', [1]);
    r.at(11_000).healed('worker-kill', 'worker-1');
    r.at(40_000).start('worker-2', 1, 2).end('worker-2', 1, 2);
    r.ack('worker-2', 1, 2, 'committed').wait('client-1', 'g1');
    return check(r.lines, r.final, options);
  };
  assert.equal(play(true).ok, true, formatReport(play(true)));
  only(play(false), 'ran_past_limit');
  // The committed ack lost with its worker: the final task's finishedAt ends the run.
  const r = oneRun();
  r.group('g1').options.timeoutMs = 1000;
  r.at(10_400).end('worker-1', 1, 1);
  Object.assign(r.task(1), {
    state: 'succeeded',
    attempt: 1,
    value: 2,
    seq: 1,
    finishedAt: 10_450,
  });
  r.at(60_000).wait('client-1', 'g1');
  assert.equal(check(r.lines, r.final, options).ok, true);
  // A task event of that attempt ends it too (here the coordinator's own timeout).
  const t = oneRun();
  t.group('g1').options.timeoutMs = 1000;
  t.at(16_000).event('task.retried', { taskId: 1, groupId: 'g1', data: { attempt: 1 } });
  t.at(50_000).commit('worker-2', 1, 2).wait('client-1', 'g1');
  assert.equal(check(t.lines, t.final, options).ok, true);
});

void test('ran_past_limit: a run still running when the harness stopped', () => {
  const r = oneRun();
  r.group('g1').options.timeoutMs = 1000;
  Object.assign(r.task(1), { state: 'running', attempt: 1 });
  r.at(15_000).wait('client-1', 'g1');
  assert.equal(check(r.lines, r.final, options).ok, true, 'stopped 5 s in');
  r.at(30_000).add('harness', { type: 'harness.stop' });
  const report = check(r.lines, r.final, options);
  only(report, 'ran_past_limit');
  assert.match(report.anomalies[0]?.detail ?? '', /still running at the end/);
});

void test('ran_past_limit: a fault on the coordinator starts the count again at its end', () => {
  const play = (faultFrom: number, faultTo: number, reportAt: number): Report => {
    const r = oneRun();
    r.group('g1').options.timeoutMs = 1000;
    r.at(faultFrom).fault('coordinator-kill', 'coordinator');
    r.at(faultTo).healed('coordinator-kill', 'coordinator');
    r.at(reportAt).end('worker-1', 1, 1).ack('worker-1', 1, 1, 'committed').wait('client-1', 'g1');
    return check(r.lines, r.final, options);
  };
  assert.equal(play(15_000, 16_000, 24_900).ok, true, '8.9 s after the restart');
  only(play(15_000, 16_000, 25_100), 'ran_past_limit'); // 9.1 s after it
  // Already past its limit when the coordinator went down: judged at that moment.
  const before = play(19_500, 20_000, 21_000);
  only(before, 'ran_past_limit');
  assert.match(before.anomalies[0]?.detail ?? '', /running 9500 ms, from t=10000 to t=19500/);
  // Reported while the coordinator is down, within its limit before: clean.
  assert.equal(play(18_000, 30_000, 25_000).ok, true);
});

void test('nearestRank: the smallest value with at least p% of samples at or below it', () => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(nearestRank(xs, 50), 50);
  assert.equal(nearestRank(xs, 99), 99);
  assert.equal(nearestRank(xs, 100), 100);
  assert.equal(nearestRank([7], 50), 7);
  assert.equal(nearestRank([1, 2, 3], 50), 2);
  assert.equal(nearestRank([1, 2, 3, 4], 50), 2);
  assert.equal(nearestRank([], 50), null);
});

void test('reassignment latency: runs interrupted by kills and stops, measured to their next start', () => {
  const r = new Run().submit('client-1', 'k1', 'g1', [1, 2, 3, 4, 5, 6], 1);
  r.at(10_000).start('worker-1', 1, 1).start('worker-1', 2, 1).start('worker-1', 3, 1);
  r.end('worker-1', 3, 1).ack('worker-1', 3, 1, 'committed'); // ended before the kill: not interrupted
  r.at(20_000).fault('worker-kill', 'worker-1'); // tasks 1 and 2 interrupted
  r.at(20_100).start('worker-2', 2, 2); // +100
  r.at(20_300).start('worker-1', 1, 2); // the restarted worker-1, a higher attempt: +300
  r.start('worker-3', 4, 1);
  r.at(30_000).fault('worker-stop', 'worker-3'); // task 4 interrupted
  r.add('nemesis', { type: 'fault.end', kind: 'worker-stop', target: 'worker-3' });
  r.at(31_000).start('worker-2', 4, 2); // +1000
  r.start('worker-2', 5, 1);
  // Task 1 attempt 2 interrupted; task 2 of worker-1's first life is not counted again.
  r.at(40_000).fault('worker-kill', 'worker-1');
  r.at(40_200).start('worker-3', 1, 3); // +200
  r.end('worker-3', 1, 3).ack('worker-3', 1, 3, 'committed');
  r.start('worker-3', 6, 1);
  r.at(50_000).fault('worker-stop', 'worker-3'); // task 6 interrupted...
  r.at(51_000).end('worker-3', 6, 1).ack('worker-3', 6, 1, 'committed'); // ...resumed in time: never re-run
  const report = check(r.lines, r.final, options);
  assert.equal(report.reassignment.samples, 4); // 100, 200, 300, 1000
  assert.equal(report.reassignment.p50Ms, 200);
  assert.equal(report.reassignment.p99Ms, 1000);
  assert.equal(report.reassignment.maxMs, 1000);
  assert.equal(report.reassignment.notRerun, 1);
  assert.deepEqual(report.faults, { 'worker-kill': 2, 'worker-stop': 2 });
});

void test('a torn last line and files out of order are read and checked', () => {
  const r = clean();
  const dir = mkdtempSync(join(tmpdir(), 'regroup-checker-'));
  try {
    const byProc = new Map<string, HistoryLine[]>();
    for (const l of r.lines) byProc.set(l.proc, [...(byProc.get(l.proc) ?? []), l]);
    for (const [proc, lines] of byProc) {
      // Each file written backwards: the reader must sort by time across and within files.
      const text = lines
        .map((l) => JSON.stringify(l) + '\n')
        .reverse()
        .join('');
      writeFileSync(join(dir, `${proc}.jsonl`), text);
    }
    // worker-1 was killed writing a line: half a JSON object, no newline.
    const torn = JSON.stringify({
      t: r.t + 1,
      proc: 'worker-1',
      type: 'run.ack',
      taskId: 1,
      attempt: 1,
      status: 'committed',
    });
    writeFileSync(join(dir, 'worker-1.jsonl'), torn.slice(0, torn.length - 9), { flag: 'a' });
    writeFileSync(join(dir, 'notes.txt'), 'not a history\n');
    const history = readHistory(dir);
    assert.equal(history.length, r.lines.length);
    const report = check(history, r.final, options);
    assert.equal(report.ok, true, formatReport(report));
    assert.equal(report.reassignment.samples, 1);
    // The checker sorts by itself too.
    assert.deepEqual(check([...r.lines].reverse(), r.final, options), report);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('formatReport: one line per figure, then the anomalies', () => {
  const r = clean();
  r.task(4).attempt = 1;
  const text = formatReport(check(r.lines, r.final, options));
  const lines = text.split('\n');
  assert.match(text, /^groups +2$/m);
  assert.match(text, /^tasks +4$/m);
  assert.match(text, /^fault worker-kill +1$/m);
  assert.match(text, /^reassignment p50 +\d+ ms$/m);
  assert.match(text, /^not rerun +0$/m);
  assert.match(text, /^stale_accepted +1$/m);
  assert.match(text, /^lost +0$/m);
  assert.match(text, /^result +FAIL \(1 anomalies\)$/m);
  assert.match(lines.at(-1) ?? '', /^ {2}stale_accepted: task 4 attempt 2/);
  assert.match(formatReport(check(clean().lines, clean().final, options)), /^result +OK$/m);
});

// ---- The property: simulated clean runs pass; one injected anomaly is found, by kind.

interface Plan {
  groups: number[][];
  /** Per run: which worker, and how the run ends. */
  runs: { worker: number; end: 'ok' | 'kill' | 'fail' | 'stale' | 'stop' }[];
}

const planArb: fc.Arbitrary<Plan> = fc.record({
  groups: fc.array(fc.array(fc.integer({ min: -50, max: 50 }), { minLength: 1, maxLength: 4 }), {
    minLength: 1,
    maxLength: 4,
  }),
  runs: fc.array(
    fc.record({
      worker: fc.integer({ min: 1, max: 3 }),
      end: fc.constantFrom('ok', 'ok', 'kill', 'fail', 'stale', 'stop'),
    }),
    { maxLength: 40 },
  ),
});

/** Plays a plan: tasks run one after another; each takes runs from the plan until one commits. */
function simulate(plan: Plan): Run {
  const r = new Run();
  let taskId = 1;
  plan.groups.forEach((inputs, g) => {
    r.submit(`client-${g % 2}`, `k${g}`, `g${g}`, inputs, taskId);
    if (g % 2 === 1) r.group(`g${g}`).options.timeoutMs = 1000;
    taskId += inputs.length;
  });
  let next = 0;
  for (const task of [...r.final.tasks]) {
    for (let attempt = 1; ; attempt++) {
      const step = plan.runs[next++] ?? { worker: 1, end: 'ok' as const };
      const end = attempt >= 5 ? 'ok' : step.end;
      const w = `worker-${step.worker}`;
      r.start(w, task.taskId, attempt);
      if (end === 'ok') {
        r.end(w, task.taskId, attempt).ack(w, task.taskId, attempt, 'committed');
        break;
      }
      if (end === 'kill' || end === 'stop')
        r.fault(end === 'kill' ? 'worker-kill' : 'worker-stop', w);
      if (end === 'fail') r.fail(w, task.taskId, attempt).ack(w, task.taskId, attempt, 'committed');
      if (end === 'stale') r.end(w, task.taskId, attempt).ack(w, task.taskId, attempt, 'stale');
    }
  }
  plan.groups.forEach((_, g) => r.wait(`client-${g % 2}`, `g${g}`));
  return r;
}

type Injector = (r: Run, pick: number) => void;

const at = <T>(xs: T[], pick: number): T => {
  const x = xs[pick % xs.length];
  assert.ok(x !== undefined);
  return x;
};

/** Each makes exactly one kind of anomaly on purpose. */
const injectors: Record<AnomalyKind, Injector[]> = {
  lost: [
    (r, pick) => {
      const t = at(r.final.tasks, pick);
      r.final.tasks = r.final.tasks.filter((x) => x !== t);
    },
    (r, pick) => {
      const g = at(r.final.groups, pick);
      r.final.groups = r.final.groups.filter((x) => x !== g);
      r.final.tasks = r.final.tasks.filter((t) => t.groupId !== g.id);
    },
  ],
  committed_twice: [
    (r, pick) => {
      const ack = at(
        r.lines.filter(
          (l) =>
            l.type === 'run.ack' &&
            l.status === 'committed' &&
            r.task(l.taskId).attempt === l.attempt,
        ),
        pick,
      );
      const { t: _t, proc, ...line } = ack;
      r.add(proc, line, 1); // the same report acked committed again
    },
    (r, pick) => {
      if (r.final.tasks.length < 2) return injectors.committed_twice[0]?.(r, pick);
      const a = at(r.final.tasks, pick);
      const b = at(r.final.tasks, pick + 1);
      b.seq = a.seq;
    },
  ],
  stale_accepted: [
    (r, pick) => {
      const t = at(r.final.tasks, pick);
      t.attempt = pick % 2 === 0 ? t.attempt + 1 : t.attempt - 1 || t.attempt + 1;
    },
  ],
  changed_after_read: [
    (r, pick) => {
      const o = at(
        r.lines.filter((l): l is WaitOk => l.type === 'wait.ok').flatMap((w) => w.outcomes),
        pick,
      );
      if (pick % 2 === 0) o.value = (o.value as number) + 1;
      else o.state = 'canceled';
    },
  ],
  unexpected_result: [
    (r, pick) => {
      const t = at(r.final.tasks, pick);
      const wrong = (t.value as number) + 1;
      t.value = wrong;
      for (const l of r.lines) {
        if (l.type === 'run.end' && l.taskId === t.taskId && l.ok) l.value = wrong;
        if (l.type === 'wait.ok')
          for (const o of l.outcomes) if (o.taskId === t.taskId) o.value = wrong;
      }
    },
  ],
  wait_unresolved: [
    (r, pick) => {
      const w = at(
        r.lines.filter((l) => l.type === 'wait.ok'),
        pick,
      );
      r.lines = r.lines.filter((l) => l !== w);
    },
    (r, pick) => {
      at(r.final.groups, pick).done = false;
    },
  ],
  healthy_declared_dead: [
    (r) => {
      r.dead('w9', 'worker-9'); // a worker no fault ever named (the plans use workers 1 to 3)
    },
    (r, pick) => {
      r.session('worker-8', 'w8').dead('w8', undefined, [at(r.final.tasks, pick).taskId]);
    },
  ],
  ran_past_limit: [
    (r, pick) => {
      // A minute passes right after a run starts: nothing else was running then.
      const start = at(
        r.lines.filter((l) => l.type === 'run.start'),
        pick,
      );
      if (start.type !== 'run.start') return;
      r.group(start.groupId).options.timeoutMs = 1000;
      for (const l of r.lines) if (l.t > start.t) l.t += 60_000;
    },
  ],
};

void test('property: a simulated clean run always passes, with every interrupted run re-run', () => {
  fc.assert(
    fc.property(planArb, (plan) => {
      const r = simulate(plan);
      const report = check(r.lines, r.final, options);
      assert.equal(report.ok, true, formatReport(report));
      const stops = r.lines.filter((l) => l.type === 'fault.start').length;
      assert.equal(report.reassignment.samples, stops);
      assert.equal(report.reassignment.notRerun, 0);
    }),
    { seed: SEED, numRuns: 300 },
  );
});

void test('property: one injected anomaly is always found, and only that kind', () => {
  const injection = fc.record({
    kind: fc.constantFrom(...ANOMALY_KINDS),
    variant: fc.nat(),
    pick: fc.nat(),
  });
  fc.assert(
    fc.property(planArb, injection, (plan, { kind, variant, pick }) => {
      const r = simulate(plan);
      at(injectors[kind], variant)(r, pick);
      only(check(r.lines, r.final, options), kind);
    }),
    { seed: SEED, numRuns: 600 },
  );
});
