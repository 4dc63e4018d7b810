import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GroupView, TaskView, WorkerView } from '../client/index.js';
import { DEFAULT_TASK_OPTIONS } from '../core/types.js';
import {
  duration,
  groupLine,
  progressPercent,
  retryLine,
  groupsTable,
  printable,
  taskDuration,
  tasksTable,
  throwSite,
  waitingDeadline,
  waitingFix,
  waitingLine,
  waitingLines,
  waitingNotes,
  workersTable,
  type Waiting,
} from './views.js';

function group(over: Partial<GroupView>): GroupView {
  return {
    id: 'g1',
    handler: 'square',
    state: 'sealed',
    policy: 'collectAll',
    idempotencyKey: null,
    createdAt: 1_000,
    sealedAt: 1_000,
    finishedAt: null,
    options: DEFAULT_TASK_OPTIONS,
    total: 3,
    pending: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    canceled: 0,
    done: false,
    ...over,
  };
}

const worker: WorkerView = {
  workerId: 'w_abc',
  name: 'node-1',
  health: 'draining',
  connected: true,
  slots: 8,
  running: 3,
  waiting: 0,
  labels: [],
  handlers: ['square', 'tile'],
  lastSeenAgoMs: 2_400,
  tasksDone: 41,
};

void describe('CLI views', () => {
  void it('progress counts final tasks and never shows 100% while one is outstanding', () => {
    assert.equal(
      progressPercent(group({ succeeded: 1, failed: 1, canceled: 0, pending: 1 })),
      '66%',
    );
    assert.equal(progressPercent(group({ total: 1000, succeeded: 999, running: 1 })), '99%');
    assert.equal(progressPercent(group({ succeeded: 3, state: 'done', done: true })), '100%');
    assert.equal(progressPercent(group({ total: 0, state: 'open' })), '-');
    assert.equal(progressPercent(group({ total: 0, state: 'done', done: true })), '100%');
  });

  void it('lists workers with state, heartbeat age, slots in use and tasks done', () => {
    const lines = workersTable([
      worker,
      { ...worker, connected: false, health: 'dead', running: 0 },
      { ...worker, connected: false, health: 'suspect' },
    ]).split('\n');
    assert.match(lines[0]!, /^WORKER\s+NAME\s+STATE\s+HEARTBEAT\s+SLOTS\s+DONE\s+HANDLERS$/);
    assert.deepEqual(lines[1]!.split(/\s{2,}/), [
      'w_abc',
      'node-1',
      'draining',
      '2s ago',
      '3/8',
      '41',
      'square,tile',
    ]);
    // Dead says it all; a live session that lost its socket says so.
    assert.match(lines[2]!, /\sdead\s+2s ago\s+0\/8\s/);
    assert.match(lines[3]!, /suspect \(disconnected\)/);
  });

  void it('lists tasks with attempt, worker, duration and a clipped one-line error', () => {
    const tasks: TaskView[] = [
      {
        taskId: 7,
        groupId: 'g1',
        index: 0,
        state: 'failed',
        attempt: 3,
        workerId: 'w_abc',
        startedAt: 10_000,
        finishedAt: 12_500,
        error: { kind: 'error', message: `boom\n${'x'.repeat(100)}` },
      },
      { taskId: 8, groupId: 'g1', index: 1, state: 'pending', attempt: 0, workerId: null },
    ];
    const lines = tasksTable(tasks, 20_000).split('\n');
    assert.match(lines[0]!, /^INDEX\s+TASK\s+STATE\s+ATTEMPT\s+WORKER\s+DURATION\s+ERROR$/);
    const cells = lines[1]!.split(/\s{2,}/);
    assert.deepEqual(cells.slice(0, 6), ['0', '7', 'failed', '3', 'w_abc', '2.5s']);
    assert.ok(cells[6]!.startsWith('error: boom xxx'), cells[6]);
    assert.equal(cells[6]!.length, 60);
    assert.ok(cells[6]!.endsWith('…'));
    assert.deepEqual(lines[2]!.split(/\s{2,}/), ['1', '8', 'pending', '0', '-', '-']);
  });

  void it('shows under a failed task where its handler threw; with stacks, the whole stack', () => {
    const stack = [
      '    at readFile (node:fs/promises:1:1)',
      '    at parse (file:///app/node_modules/lib/index.js:10:3)',
      '    at crunch (file:///home/ada/handlers.js:7:11)',
      '    at async run (file:///home/ada/handlers.js:20:5)',
    ].join('\n');
    const failed: TaskView = {
      taskId: 7,
      groupId: 'g1',
      index: 0,
      state: 'failed',
      attempt: 1,
      workerId: 'w_abc',
      error: { kind: 'error', name: 'ReferenceError', message: 'doStep is not defined', stack },
    };
    const succeeded: TaskView = { ...failed, taskId: 8, index: 1, state: 'succeeded' };
    const plain: TaskView = {
      ...failed,
      taskId: 9,
      index: 2,
      error: { kind: 'timeout', message: 't' },
    };
    const lines = tasksTable([failed, succeeded, plain], 0).split('\n');
    assert.equal(lines.length, 5);
    assert.match(lines[1]!, /failed .*error: ReferenceError: doStep is not defined$/);
    assert.equal(lines[2], '  at crunch (/home/ada/handlers.js:7:11)');
    assert.match(lines[3]!, /^1\s+8\s+succeeded/, 'no stack under a task that succeeded after all');
    assert.match(lines[4]!, /^2\s+9\s+failed.*timeout: t$/);
    const full = tasksTable([failed], 0, { stacks: true }).split('\n');
    assert.deepEqual(full.slice(2), [
      '  at readFile (node:fs/promises:1:1)',
      '  at parse (/app/node_modules/lib/index.js:10:3)',
      '  at crunch (/home/ada/handlers.js:7:11)',
      '  at async run (/home/ada/handlers.js:20:5)',
    ]);
    assert.equal(throwSite('    at a (node:x:1:1)\n    at b (node:y:1:1)'), 'at a (node:x:1:1)');
    assert.equal(throwSite('custom trace'), 'custom trace');
  });

  void it('shows every string of a table printable; nothing drives the terminal', () => {
    const evil = 'a\x1b[2J\x07\u009b\u202eb';
    const shown = 'a\\u001b[2J\\u0007\\u009b\\u202eb';
    const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;
    const workers = workersTable([{ ...worker, name: evil, handlers: [evil] }]);
    assert.ok(!raw.test(workers), workers);
    assert.ok(workers.includes(`w_abc   ${shown}`), workers);
    const groups = groupsTable([group({ id: evil })], 0);
    assert.ok(!raw.test(groups) && groups.includes(shown), groups);
    const task: TaskView = {
      taskId: 1,
      groupId: 'g',
      index: 0,
      state: 'failed',
      attempt: 1,
      workerId: evil,
      error: {
        kind: 'error',
        message: evil,
        name: evil,
        stack: `    at ${evil} (file:///x.js:1:1)`,
      },
    };
    const tasks = tasksTable([task], 0);
    assert.ok(!raw.test(tasks), tasks);
    assert.ok(tasks.split('\n')[2] === `  at ${shown} (/x.js:1:1)`, tasks);
  });

  void it('formats durations', () => {
    assert.deepEqual(
      [duration(850), duration(4_230), duration(185_000), duration(7_830_000)],
      ['850ms', '4.2s', '3m05s', '2h10m'],
    );
    const running: TaskView = {
      taskId: 1,
      groupId: 'g',
      index: 0,
      state: 'running',
      attempt: 1,
      startedAt: 1_000,
      finishedAt: null,
    };
    assert.equal(taskDuration(running, 3_000), '2.0s', 'a running task: so far');
    assert.equal(taskDuration({ ...running, state: 'pending', startedAt: null }, 3_000), '-');
  });

  void it('says what a cancel and a retry did in one line', () => {
    assert.equal(
      groupLine(group({ state: 'canceled', succeeded: 1, canceled: 2, done: true })),
      'group g1: canceled (1 succeeded, 0 failed, 2 canceled, 0 running, 0 pending; 3 tasks)',
    );
    assert.equal(
      retryLine('g1', { retried: 2, group: group({ pending: 2 }) }),
      'group g1: 2 failed tasks back to pending; the group is sealed again',
    );
    assert.equal(
      retryLine('g1', { retried: 0, group: group({ state: 'done', done: true }) }),
      'group g1: no failed tasks, nothing retried (done)',
    );
  });

  void it('says why a group waits and what to do, by code; user-given names are quoted', () => {
    const noHandler: Waiting = {
      code: 'no_handler',
      message: 'no worker offers handler "sqaure"; connected workers offer: crunch, square',
      since: 1_000,
    };
    const g = group({ handler: 'sqaure', pending: 3 });
    assert.equal(
      waitingLine(noHandler),
      'waiting: no worker offers handler "sqaure"; connected workers offer: crunch, square',
    );
    assert.equal(
      waitingFix(g, noHandler),
      'start a worker whose handler module exports "sqaure", or cancel the group (regroup cancel g1) and submit again with the right --handler',
    );
    const labeled = group({ options: { ...DEFAULT_TASK_OPTIONS, requires: ['gpu', 'ssd'] } });
    assert.equal(
      waitingFix(labeled, { code: 'no_label', message: 'm', since: 0 }),
      'start a worker whose handler module exports "square" and --labels gpu,ssd, or cancel the group (regroup cancel g1)',
    );
    assert.equal(
      waitingFix(group({ handler: 'a"b' }), { code: 'no_worker', message: 'm', since: 0 }),
      'start a worker whose handler module exports "a\\"b" (regroup worker --url <coordinator> --handlers <module>)',
    );
  });

  void it('never sends a control character of a user-given label to the terminal', () => {
    assert.equal(printable('gpu\x1b[2J\nx\u009b'), 'gpu\\u001b[2J\\u000ax\\u009b');
    const w: Waiting = { code: 'no_label', message: 'has labels \x1b]0;pwned\x07', since: 0 };
    assert.equal(waitingLine(w), 'waiting: has labels \\u001b]0;pwned\\u0007');
    assert.equal(printable('plain "sqaure", ü'), 'plain "sqaure", ü');
  });

  void it('says when a schedule timeout gives up on a waiting group (none by default)', () => {
    const w: Waiting = { code: 'no_worker', message: 'no worker is connected', since: 10_000 };
    assert.equal(waitingDeadline(group({}), w, 20_000), null, 'scheduleTimeoutMs 0: waits forever');
    const timed = group({ options: { ...DEFAULT_TASK_OPTIONS, scheduleTimeoutMs: 60_000 } });
    assert.equal(
      waitingDeadline(timed, w, 20_000),
      'in 50.0s: its pending tasks fail as unschedulable (scheduleTimeoutMs 60000)',
    );
    assert.match(waitingDeadline(timed, w, 90_000)!, /^now: /);
    assert.deepEqual(waitingLines(timed, w, 20_000), [
      'waiting: no worker is connected',
      '  to fix: start a worker whose handler module exports "square" (regroup worker --url <coordinator> --handlers <module>)',
      '  gives up in 50.0s: its pending tasks fail as unschedulable (scheduleTimeoutMs 60000)',
    ]);
  });

  void it('marks waiting groups in the table and says why under it', () => {
    const w: Waiting = { code: 'no_worker', message: 'no worker is connected', since: 0 };
    const groups = [group({ id: 'g1', waiting: w, pending: 3 }), group({ id: 'g2' })];
    const lines = groupsTable(groups, 61_000).split('\n');
    assert.deepEqual(lines[1]!.split(/\s{2,}/).slice(0, 3), ['g1', 'square', 'sealed (waiting)']);
    assert.deepEqual(lines[2]!.split(/\s{2,}/).slice(0, 3), ['g2', 'square', 'sealed']);
    assert.deepEqual(waitingNotes(groups), ['', 'group g1 waits: no worker is connected']);
    assert.deepEqual(waitingNotes([group({})]), []);
    const many = Array.from({ length: 12 }, (_, i) => group({ id: `g${i}`, waiting: w }));
    const notes = waitingNotes(many);
    assert.equal(notes.length, 12);
    assert.equal(notes[11], 'and 2 more waiting groups (regroup status <group> says why)');
  });
});
