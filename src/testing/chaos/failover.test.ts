import { it } from 'node:test';
import assert from 'node:assert/strict';
import type { HistoryLine } from '../history.js';
import { formatFailovers, summarizeFailovers } from './failover.js';

const failover = (kind: 'leader-kill' | 'leader-db-cut', ms: number, epoch: number | null) =>
  ({
    type: 'failover',
    t: 0,
    proc: 'nemesis',
    kind,
    target: 'coordinator-0',
    from: 1,
    epoch,
    leader: epoch === null ? null : 'coordinator-1',
    ms,
  }) as const satisfies HistoryLine;

it('summarizes failovers: nearest-rank percentiles overall and by kind, timeouts apart', () => {
  const lines: HistoryLine[] = [
    failover('leader-kill', 900, 2),
    failover('leader-kill', 700, 3),
    failover('leader-db-cut', 4200, 4),
    failover('leader-db-cut', 30_000, null),
    { type: 'fault.start', t: 0, proc: 'nemesis', kind: 'leader-kill', target: 'coordinator-0' },
  ];
  const s = summarizeFailovers(lines);
  assert.equal(s.samples, 3);
  assert.equal(s.timeouts, 1);
  assert.equal(s.p50Ms, 900);
  assert.equal(s.p99Ms, 4200);
  assert.equal(s.maxMs, 4200);
  assert.deepEqual(s.byKind['leader-kill'], { samples: 2, p50Ms: 700, p99Ms: 900, maxMs: 900 });
  assert.equal(s.byKind['leader-db-cut']?.samples, 1);
  assert.match(formatFailovers(s).join('\n'), /failover timeouts\s+1/);
});

it('no failovers: no figures', () => {
  const s = summarizeFailovers([]);
  assert.deepEqual([s.samples, s.p50Ms, s.timeouts], [0, null, 0]);
});
