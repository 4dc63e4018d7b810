/** How the CLI shows a tree of groups: parent and children columns, a group's place, a cancel's descendants. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GroupView } from '../client/index.js';
import { DEFAULT_TASK_OPTIONS } from '../core/types.js';
import { childrenLines, describeGroup } from './status.js';
import { cancelLine, groupsTable } from './views.js';

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
    parent: null,
    total: 3,
    pending: 3,
    running: 0,
    succeeded: 0,
    failed: 0,
    canceled: 0,
    done: false,
    ...over,
  };
}

const cellsOf = (line: string): string[] => line.split(/\s{2,}/);

void describe('CLI views of a tree', () => {
  void it('adds PARENT and CHILDREN columns only to a page that has them', () => {
    const flat = groupsTable([group({ children: 0 })], 61_000).split('\n');
    assert.doesNotMatch(flat[0]!, /PARENT|CHILDREN/);
    const tree = groupsTable(
      [
        group({ id: 'root', children: 2 }),
        group({ id: 'kid', parent: { groupId: 'root', taskId: 7 }, children: 0 }),
        group({ id: 'old' }),
      ],
      61_000,
    ).split('\n');
    assert.deepEqual(cellsOf(tree[0]!), [
      'GROUP',
      'PARENT',
      'HANDLER',
      'STATE',
      'PROGRESS',
      'OK',
      'FAILED',
      'RUNNING',
      'PENDING',
      'CANCELED',
      'TOTAL',
      'CHILDREN',
      'CREATED',
    ]);
    assert.deepEqual(cellsOf(tree[1]!).slice(0, 2), ['root', '-']);
    assert.equal(cellsOf(tree[1]!)[11], '2');
    assert.deepEqual(cellsOf(tree[2]!).slice(0, 2), ['kid', 'root']);
    // A view without a count (an older coordinator): "-", not 0.
    assert.equal(cellsOf(tree[3]!)[11], '-');
  });

  void it("describes a group's parent and children count", () => {
    const kid = describeGroup(
      group({ id: 'kid', parent: { groupId: 'root', taskId: 7 }, children: 3 }),
    );
    assert.match(kid, /^parent\s+root \(task 7\)$/m);
    assert.match(kid, /^children\s+3$/m);
    const lone = describeGroup(group({}));
    assert.doesNotMatch(lone, /^parent|^children/m);
  });

  void it('lists the first children under a group and says where the rest are', () => {
    const kids = [group({ id: 'c1', parent: { groupId: 'root', taskId: 1 } })];
    const lines = childrenLines(
      group({ id: 'root', children: 9 }),
      { groups: kids, next: 'c1' },
      61_000,
    );
    assert.equal(lines[0], 'children (9; the first 1, oldest first)');
    assert.match(lines[1]!, /^GROUP\s+PARENT\s+HANDLER/);
    assert.equal(lines.at(-1), 'more: regroup groups --parent root --after c1');
    const all = childrenLines(group({ id: 'root', children: 1 }), { groups: kids, next: null });
    assert.equal(all[0], 'children (1, oldest first)');
    assert.doesNotMatch(all.join('\n'), /more:/);
  });

  void it('says how many descendant groups a cancel ended, when it ended any', () => {
    const g = group({ state: 'canceled', pending: 0, canceled: 3, done: true });
    assert.equal(
      cancelLine({ ...g, descendants: 0 }),
      'group g1: canceled (0 succeeded, 0 failed, 3 canceled, 0 running, 0 pending; 3 tasks)',
    );
    assert.match(cancelLine({ ...g, descendants: 1 }), /; 1 descendant group canceled with it$/);
    assert.match(cancelLine({ ...g, descendants: 12 }), /; 12 descendant groups canceled with it$/);
  });
});
