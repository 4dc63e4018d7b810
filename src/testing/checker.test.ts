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
  type RunAdd,
  type RunSpawn,
  type WaitOk,
} from './history.js';
import type { EventView, GroupView, TaskView } from '../protocol/http.js';
import { DEFAULT_TASK_OPTIONS } from '../core/types.js';

const SEED = 4242;

/**
 * Tasks of the tests double their input (`double`, and `crawl`, whose tasks
 * add to their group); a `sum` task spawns a group of `double` over its input
 * and returns the sum of their results.
 */
const expected = (handler: string, input: unknown): unknown => {
  if (handler === 'double' || handler === 'crawl') return (input as number) * 2;
  if (handler === 'sum') return (input as number[]).reduce((a, x) => a + x * 2, 0);
  return undefined;
};
/** A crawl's root input n grows its group to n + 3 tasks (see `trees`). */
const expectedTasks = (handler: string, inputs: readonly unknown[]): number | undefined =>
  handler === 'crawl' ? inputs.reduce<number>((n, x) => n + (x as number) + 3, 0) : undefined;
const options = { expected, expectedTasks };

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
  submit(
    proc: string,
    key: string,
    groupId: string,
    inputs: unknown[],
    firstTaskId: number,
    handler = 'double',
  ): this {
    this.add(proc, { type: 'submit.invoke', key, handler, inputs });
    this.add(proc, { type: 'submit.ok', key, groupId });
    this.final.groups.push(groupView(groupId, key, inputs.length, handler));
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

  nextTaskId(): number {
    return Math.max(0, ...this.final.tasks.map((t) => t.taskId)) + 1;
  }

  /** New pending tasks of a group at its next indexes; returns the first index. */
  private grow(groupId: string, n: number): number {
    const g = this.group(groupId);
    const first = g.total;
    for (let k = 0; k < n; k++)
      this.final.tasks.push({
        taskId: this.nextTaskId(),
        groupId,
        index: first + k,
        state: 'pending',
        attempt: 0,
      });
    g.total += n;
    return first;
  }

  /**
   * A run of `taskId` adds `inputs` to its group under `key` (ctx.add): new
   * tasks at the group's next indexes, or, for a key the task used before,
   * nothing added and the first add's answer. `anew`: a broken coordinator
   * that adds again under a used key.
   */
  addTasks(
    proc: string,
    taskId: number,
    attempt: number,
    key: string,
    inputs: unknown[],
    anew = false,
  ): this {
    const { groupId } = this.task(taskId);
    const prev = this.lines.find(
      (l): l is RunAdd => !anew && l.type === 'run.add' && l.taskId === taskId && l.key === key,
    );
    const first = prev ? prev.first : this.grow(groupId, inputs.length);
    const count = prev ? prev.count : inputs.length;
    return this.add(proc, {
      type: 'run.add',
      taskId,
      attempt,
      groupId,
      key,
      first,
      count,
      inputs,
    });
  }

  /**
   * A run of `taskId` spawns a group of `handler` over `inputs` under `key`
   * (ctx.spawn): the group `childId`, sealed, its tasks pending; or, for a key
   * the task used before, the first spawn's group. `anew`: a broken
   * coordinator that makes a new group under a used key.
   */
  spawnGroup(
    proc: string,
    taskId: number,
    attempt: number,
    key: string,
    handler: string,
    inputs: unknown[],
    childId: string,
    anew = false,
  ): this {
    const { groupId } = this.task(taskId);
    const prev = this.lines.find(
      (l): l is RunSpawn => !anew && l.type === 'run.spawn' && l.taskId === taskId && l.key === key,
    );
    if (!prev) {
      this.final.groups.push({
        ...groupView(childId, null, 0, handler),
        state: 'sealed',
        finishedAt: null,
        parent: { groupId, taskId },
      });
      this.grow(childId, inputs.length);
    }
    return this.add(proc, {
      type: 'run.spawn',
      taskId,
      attempt,
      groupId,
      key,
      childId: prev ? prev.childId : childId,
      handler,
      inputs,
    });
  }

  /** The group becomes done now. */
  finish(groupId: string): this {
    this.t += 10;
    Object.assign(this.group(groupId), { state: 'done', done: true, finishedAt: this.t });
    return this;
  }

  /** A run's wait on its child group resolves: it reads the child as it is now. */
  waited(proc: string, taskId: number, attempt: number, childId: string): this {
    const tasks = this.final.tasks.filter((t) => t.groupId === childId);
    const succeeded = tasks.filter((t) => t.state === 'succeeded').length;
    return this.add(proc, {
      type: 'run.waited',
      taskId,
      attempt,
      childId,
      total: tasks.length,
      succeeded,
    });
  }

  /** The task's result committed now (its finishedAt). */
  committedNow(taskId: number): this {
    this.task(taskId).finishedAt = this.t;
    return this;
  }

  /** One whole run that commits `value`, finishing the task now. */
  commitValue(proc: string, taskId: number, attempt: number, value: unknown): this {
    return this.start(proc, taskId, attempt)
      .end(proc, taskId, attempt, value)
      .ack(proc, taskId, attempt, 'committed')
      .committedNow(taskId);
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

function groupView(id: string, key: string | null, total: number, handler = 'double'): GroupView {
  return {
    id,
    handler,
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

// ---- Trees: ctx.add and ctx.spawn

/** One way a tree can go wrong (`trees` plays it in place of the right step). */
type TreeFlaw =
  | 'addAgain'
  | 'overlap'
  | 'extraTask'
  | 'spawnAgain'
  | 'extraChild'
  | 'childMissing'
  | 'parentEarly'
  | 'childNotDone'
  | 'groupEarly'
  | 'shortRead'
  | 'wrongSum';

/**
 * Trees appended to a run. A crawl (root input 1, so 4 tasks in the end):
 * its root adds [2, 3] under the default key, fails on purpose, runs again,
 * repeats that add (answered the same indexes) and adds [4] under "more";
 * the group is done after the root commits. A sum: its parent spawns a
 * child group of `double` over [1, 2], fails on purpose, runs again, is
 * answered the same child for the same key, waits for the child to be done
 * and commits 2 + 4 = 6. With a flaw, one step goes wrong.
 */
function trees(r: Run, flaw?: TreeFlaw): void {
  const root = r.nextTaskId();
  r.submit('client-1', 'k-grown', 'grown', [1], root, 'crawl');
  r.start('worker-1', root, 1).addTasks('worker-1', root, 1, '#0', [2, 3]);
  r.fail('worker-1', root, 1).ack('worker-1', root, 1, 'committed');
  r.start('worker-2', root, 2).addTasks('worker-2', root, 2, '#0', [2, 3], flaw === 'addAgain');
  if (flaw === 'overlap') {
    // "more" answered the index #2, which "#0" already holds: no new task.
    r.add('worker-2', {
      type: 'run.add',
      taskId: root,
      attempt: 2,
      groupId: 'grown',
      key: 'more',
      first: 2,
      count: 1,
      inputs: [4],
    });
  } else {
    r.addTasks('worker-2', root, 2, 'more', [4]);
  }
  for (const t of r.final.tasks.filter((x) => x.groupId === 'grown' && x.index > 0)) {
    const add = r.lines.find(
      (l): l is RunAdd =>
        l.type === 'run.add' &&
        l.groupId === 'grown' &&
        t.index >= l.first &&
        t.index < l.first + l.count,
    );
    r.commitValue(
      'worker-3',
      t.taskId,
      1,
      (add?.inputs[t.index - (add?.first ?? 0)] as number) * 2,
    );
  }
  if (flaw === 'extraTask') {
    // A task no add accounts for (say, an add applied twice, the history seeing one answer).
    const extra = r.nextTaskId();
    r.final.tasks.push({ taskId: extra, groupId: 'grown', index: 4, state: 'pending', attempt: 0 });
    r.group('grown').total += 1;
    r.commitValue('worker-3', extra, 1, 6);
  }
  if (flaw === 'groupEarly') r.finish('grown');
  r.end('worker-2', root, 2, 2).ack('worker-2', root, 2, 'committed').committedNow(root);
  if (flaw !== 'groupEarly') r.finish('grown');
  r.wait('client-1', 'grown');
  if (flaw === 'shortRead') {
    // The client read the group done before the root's adds: only the root.
    const w = r.lines.at(-1);
    if (w?.type === 'wait.ok') w.outcomes = w.outcomes.filter((o) => o.index === 0);
  }

  const parent = r.nextTaskId();
  r.submit('client-1', 'k-tree', 'tree', [[1, 2]], parent, 'sum');
  r.start('worker-1', parent, 1).spawnGroup('worker-1', parent, 1, '#0', 'double', [1, 2], 'child');
  r.fail('worker-1', parent, 1).ack('worker-1', parent, 1, 'committed');
  r.start('worker-2', parent, 2);
  r.spawnGroup('worker-2', parent, 2, '#0', 'double', [1, 2], 'child2', flaw === 'spawnAgain');
  const child = flaw === 'spawnAgain' ? 'child2' : 'child';
  const leaves = r.final.tasks.filter((t) => t.groupId === child);
  for (const t of leaves) {
    if (flaw === 'childNotDone' && t.index === 1) continue;
    r.commitValue('worker-3', t.taskId, 1, (t.index + 1) * 2);
  }
  if (flaw === 'extraChild') {
    // A second child of the parent, answered to no spawn of it.
    r.final.groups.push({
      ...groupView('child3', null, 0, 'double'),
      parent: { groupId: 'tree', taskId: parent },
    });
  }
  if (flaw !== 'parentEarly' && flaw !== 'childNotDone') r.finish(child);
  r.waited('worker-2', parent, 2, child);
  const sum = flaw === 'wrongSum' ? 7 : 6;
  r.end('worker-2', parent, 2, sum).ack('worker-2', parent, 2, 'committed').committedNow(parent);
  if (flaw === 'parentEarly') r.finish(child);
  if (flaw === 'childMissing') {
    r.final.groups = r.final.groups.filter((g) => g.id !== child);
    r.final.tasks = r.final.tasks.filter((t) => t.groupId !== child);
  }
  r.finish('tree').wait('client-1', 'tree');
}

/** A tree flaw played after a clean run with the usual trouble. */
function flawed(flaw?: TreeFlaw): Report {
  const r = clean();
  trees(r, flaw);
  return check(r.lines, r.final, options);
}

void test('trees: adds and spawns repeated by runs again, parents done after their children, pass', () => {
  const report = flawed();
  assert.equal(report.ok, true, formatReport(report));
  assert.deepEqual(report.trees, {
    grownGroups: 1,
    adds: 2,
    addedTasks: 3,
    addsRepeated: 1,
    childGroups: 1,
    spawnsRepeated: 1,
    waitedParents: 1,
  });
  assert.match(
    formatReport(report),
    /^grown groups \/ adds +1 \/ 2 \(3 tasks; 1 made again by a later attempt\)$/m,
  );
  assert.match(formatReport(report), /^child groups +1 \(1 spawns made again/m);
  assert.match(formatReport(report), /^parents that waited +1$/m);
});

void test('added_twice: a run again of the adder is answered other indexes for the same key', () => {
  const report = flawed('addAgain');
  only(report, 'added_twice');
  assert.match(
    report.anomalies[0]?.detail ?? '',
    /add "#0" to group grown was answered tasks #1\.\.#2 \(attempt 1, worker-1\) and tasks #3\.\.#4 \(attempt 2, worker-2\)/,
  );
  // The group's size gives it away too: 6 tasks where its submit and adds make 4.
  assert.ok(report.anomalies.some((a) => /has 6 tasks, 1 made with it and 3 added/.test(a.detail)));
  assert.ok(report.anomalies.some((a) => /grow to 4: a task was added twice/.test(a.detail)));
});

void test('added_twice: a group with a task no add accounts for', () => {
  const report = flawed('extraTask');
  only(report, 'added_twice');
  assert.match(report.anomalies[0]?.detail ?? '', /has 5 tasks.*: 1 tasks no add accounts for/);
});

void test('added_twice: a run again of the parent is answered a new child for the same key', () => {
  const report = flawed('spawnAgain');
  only(report, 'added_twice');
  assert.equal(report.counts.added_twice, 1);
  assert.match(
    report.anomalies[0]?.detail ?? '',
    /spawn "#0" was answered 2 child groups: child \(attempt 1, worker-1\), child2 \(attempt 2, worker-2\)/,
  );
});

void test('added_twice: a succeeded parent with a child group none of its spawns was answered', () => {
  const report = flawed('extraChild');
  only(report, 'added_twice');
  assert.match(
    report.anomalies[0]?.detail ?? '',
    /succeeded with 2 child groups; child3 answered none of its spawns \("#0" -> child\)/,
  );
});

void test('lost: two adds answered the same index; a spawned child missing', () => {
  const overlap = flawed('overlap');
  only(overlap, 'lost');
  assert.match(overlap.anomalies[0]?.detail ?? '', /gave task #2 to two adds/);
  const missing = flawed('childMissing');
  only(missing, 'lost');
  assert.ok(
    missing.anomalies.some((a) => /child group child, missing from the final state/.test(a.detail)),
    formatReport(missing),
  );
});

void test('parent_done_early: a parent committed before its child group was done', () => {
  const report = flawed('parentEarly');
  only(report, 'parent_done_early');
  assert.equal(report.counts.parent_done_early, 1);
  assert.match(
    report.anomalies[0]?.detail ?? '',
    /read its child group child done .* it ended at t=/,
  );
});

void test('parent_done_early: a parent committed with its child group never done', () => {
  const report = flawed('childNotDone');
  only(report, 'parent_done_early');
  assert.match(report.anomalies[0]?.detail ?? '', /it is sealed in the final state/);
});

void test('parent_done_early: a grown group done before its adder finished, or read short', () => {
  const early = flawed('groupEarly');
  only(early, 'parent_done_early');
  assert.equal(early.counts.parent_done_early, 1);
  assert.match(
    early.anomalies[0]?.detail ?? '',
    /group grown became done at t=\d+, before its task/,
  );
  const short = flawed('shortRead');
  only(short, 'parent_done_early');
  assert.match(short.anomalies[0]?.detail ?? '', /read group grown done with 1 tasks .*; it has 4/);
});

void test('unexpected_result: a tree sum that is not the sum of its leaves', () => {
  const report = flawed('wrongSum');
  only(report, 'unexpected_result');
  assert.match(report.anomalies[0]?.detail ?? '', /\(sum #0\) is 7, expected 6/);
  // An added task and a child's task are judged by the inputs their add and spawn gave.
  const r = clean();
  trees(r);
  const added = r.final.tasks.find((t) => t.groupId === 'grown' && t.index === 3);
  const leaf = r.final.tasks.find((t) => t.groupId === 'child' && t.index === 1);
  assert.ok(added && leaf);
  added.value = 9;
  leaf.value = 9;
  for (const l of r.lines) {
    if (l.type === 'wait.ok')
      for (const o of l.outcomes) if (o.taskId === added.taskId) o.value = 9;
    if (l.type === 'run.end' && (l.taskId === added.taskId || l.taskId === leaf.taskId))
      l.value = 9;
  }
  const wrong = check(r.lines, r.final, options);
  only(wrong, 'unexpected_result');
  assert.deepEqual(
    wrong.anomalies.map((a) => a.detail).sort(),
    [
      `task ${added.taskId} (crawl #3, added by task ${added.taskId - 3} under "more") is 9, expected 8`,
      `task ${leaf.taskId} (double #1) is 9, expected 4`,
    ].sort(),
  );
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
function simulate(plan: Plan, withTrees = false): Run {
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
  if (withTrees) trees(r);
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
  added_twice: [
    (r, pick) => trees(r, at(['addAgain', 'extraTask', 'spawnAgain', 'extraChild'] as const, pick)),
  ],
  parent_done_early: [
    (r, pick) =>
      trees(r, at(['parentEarly', 'childNotDone', 'groupEarly', 'shortRead'] as const, pick)),
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
    fc.property(planArb, fc.boolean(), (plan, withTrees) => {
      const r = simulate(plan, withTrees);
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
