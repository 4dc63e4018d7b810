import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GroupView } from '../client/index.js';
import { DEFAULT_TASK_OPTIONS } from '../core/types.js';
import { describeGroup } from './status.js';
import { groupsTable } from './views.js';
import { resultLine } from './submit.js';
import { ago, formatTable } from './table.js';

const group: GroupView = {
  id: 'g1',
  handler: 'square',
  state: 'sealed',
  policy: 'collectAll',
  idempotencyKey: null,
  createdAt: 1_000,
  sealedAt: 1_000,
  finishedAt: null,
  options: DEFAULT_TASK_OPTIONS,
  total: 10,
  pending: 3,
  running: 2,
  succeeded: 4,
  failed: 1,
  canceled: 0,
  done: false,
};

void describe('CLI output', () => {
  void it('aligns table columns', () => {
    const t = formatTable(
      ['A', 'LONGER'],
      [
        ['xxxx', '1'],
        ['y', '22'],
      ],
    );
    assert.equal(t, 'A     LONGER\nxxxx  1\ny     22');
  });

  void it('says how long ago', () => {
    assert.deepEqual(
      [ago(4_000), ago(120_000), ago(7_200_000), ago(2 * 86_400_000)],
      ['4s ago', '2m ago', '2h ago', '2d ago'],
    );
  });

  void it('lists groups with their progress and counters', () => {
    const lines = groupsTable([group], 61_000).split('\n');
    assert.match(
      lines[0]!,
      /^GROUP\s+HANDLER\s+STATE\s+PROGRESS\s+OK\s+FAILED\s+RUNNING\s+PENDING/,
    );
    assert.deepEqual(lines[1]!.split(/\s+/), [
      'g1',
      'square',
      'sealed',
      '50%',
      '4',
      '1',
      '2',
      '3',
      '0',
      '10',
      '1m',
      'ago',
    ]);
  });

  void it("describes one group's counters", () => {
    const text = describeGroup(group);
    assert.match(text, /^group\s+g1$/m);
    assert.match(text, /^failed\s+1$/m);
    assert.doesNotMatch(text, /finished/);
    assert.doesNotMatch(text, /waiting/);
  });

  void it('says why a waiting group waits, for how long, what to do and when it gives up', () => {
    const waiting = {
      code: 'no_handler' as const,
      message: 'no worker offers handler "sqaure"; connected workers offer: square',
      since: 2_000,
    };
    const g = {
      ...group,
      handler: 'sqaure',
      options: { ...group.options, scheduleTimeoutMs: 60_000 },
      waiting,
    };
    const text = describeGroup(g, 32_000);
    assert.match(
      text,
      /^waiting\s+no worker offers handler "sqaure"; connected workers offer: square$/m,
    );
    assert.match(text, /^waiting for\s+30\.0s \(since 1970-01-01T00:00:02\.000Z, no_handler\)$/m);
    assert.match(
      text,
      /^to fix\s+start a worker whose handler module exports "sqaure", or cancel/m,
    );
    assert.match(
      text,
      /^gives up\s+in 30\.0s: its pending tasks fail as unschedulable \(scheduleTimeoutMs 60000\)$/m,
    );
  });

  void it('writes result lines in the documented shape', () => {
    assert.equal(
      resultLine({ index: 0, taskId: 7, state: 'succeeded', value: 1, attempt: 1 }, false),
      '{"index":0,"state":"succeeded","value":1}',
    );
    const failed = {
      index: 2,
      taskId: 9,
      state: 'failed' as const,
      attempt: 3,
      error: { kind: 'error' as const, message: 'boom' },
    };
    assert.equal(
      resultLine(failed, false),
      '{"index":2,"state":"failed","error":{"kind":"error","message":"boom"}}',
    );
    assert.deepEqual(JSON.parse(resultLine(failed, true)), failed);
  });
});
